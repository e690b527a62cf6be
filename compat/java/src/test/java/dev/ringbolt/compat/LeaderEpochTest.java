package dev.ringbolt.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.QuorumInfo;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.LogTruncationException;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Leader epochs as the Java client uses them (KIP-320): a consumer that seeks to a position with a
 * leader epoch validates it with OffsetForLeaderEpoch before it fetches, so a position past where
 * that epoch ended is reported as log truncation, and a valid one reads on. Also: describing the
 * metadata quorum answers or fails cleanly.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class LeaderEpochTest {
  static KafkaConsumer<byte[], byte[]> consumerWithoutReset() {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, ClientsTest.BOOTSTRAP);
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  static TopicPartition topicWithTenRecords(String prefix) throws Exception {
    String topic = ClientsTest.unique(prefix);
    ClientsTest.createTopic(topic, 1);
    List<ProducerRecord<byte[], byte[]>> recs = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      recs.add(new ProducerRecord<>(topic, 0, null, ("v" + i).getBytes(StandardCharsets.UTF_8)));
    }
    ClientsTest.sendAll(false, recs);
    return new TopicPartition(topic, 0);
  }

  @Test
  void aPositionPastTheEpochsEndIsTruncation() throws Exception {
    TopicPartition tp = topicWithTenRecords("epoch-trunc");
    try (KafkaConsumer<byte[], byte[]> c = consumerWithoutReset()) {
      c.assign(List.of(tp));
      // Epoch 0 ended at the log end, 10: a position at 100 in epoch 0 cannot exist. Without the
      // validation the fetch would get OFFSET_OUT_OF_RANGE instead.
      c.seek(tp, new OffsetAndMetadata(100, Optional.of(0), ""));
      long deadline = System.currentTimeMillis() + 30_000;
      LogTruncationException e = assertThrows(LogTruncationException.class, () -> {
        while (System.currentTimeMillis() < deadline) {
          c.poll(Duration.ofMillis(200));
        }
      });
      Map<TopicPartition, OffsetAndMetadata> divergent = e.divergentOffsets();
      assertEquals(10, divergent.get(tp).offset());
      assertEquals(Optional.of(0), divergent.get(tp).leaderEpoch());
    }
  }

  @Test
  void aValidPositionWithAnEpochReadsOn() throws Exception {
    TopicPartition tp = topicWithTenRecords("epoch-valid");
    try (KafkaConsumer<byte[], byte[]> c = consumerWithoutReset()) {
      c.assign(List.of(tp));
      c.seek(tp, new OffsetAndMetadata(4, Optional.of(0), ""));
      List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
      long deadline = System.currentTimeMillis() + 30_000;
      while (got.size() < 6 && System.currentTimeMillis() < deadline) {
        ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(200));
        rs.forEach(got::add);
      }
      assertEquals(6, got.size());
      assertEquals(4, got.get(0).offset());
      for (ConsumerRecord<byte[], byte[]> r : got) {
        assertEquals(Optional.of(0), r.leaderEpoch(), "the batches' leader epoch");
      }
      assertEquals(10, c.position(tp));
    }
  }

  /**
   * Ringbolt has no KRaft quorum and does not advertise DescribeQuorum, as a ZooKeeper-mode Kafka
   * did not: the call fails at once with UnsupportedVersionException. A KRaft Kafka (the reference
   * run) describes its quorum. Either way it answers within the bound, never hangs.
   */
  @Test
  void describeMetadataQuorumAnswersOrFailsCleanly() throws Exception {
    try (Admin a = ClientsTest.admin()) {
      try {
        QuorumInfo q = a.describeMetadataQuorum().quorumInfo().get(30, TimeUnit.SECONDS);
        assertTrue(q.voters().stream().anyMatch(v -> v.replicaId() == q.leaderId()), q.toString());
      } catch (ExecutionException e) {
        assertInstanceOf(UnsupportedVersionException.class, e.getCause());
        assertTrue(e.getCause().getMessage().contains("DESCRIBE_QUORUM"), e.getCause().getMessage());
      }
    }
  }
}
