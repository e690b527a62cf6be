package dev.ringbolt.compat;

import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Helpers shared by the transaction suites: transactional producers, consumers of either isolation
 * level, and reads of whole partitions. A read stops at the end offset the same consumer reports
 * (the last stable offset for read_committed, the high watermark otherwise), not after a quiet
 * period: a read_committed consumer that saw fewer records than the end offset allows would fail
 * on its count, one that saw aborted records on its contents.
 */
final class Txn {
  static final String BOOTSTRAP = ClientsTest.BOOTSTRAP;

  private Txn() {}

  static boolean enabled() {
    return "1".equals(System.getenv("RINGBOLT_COMPAT_TRANSACTIONS"));
  }

  static final String DISABLED = "transactions (issue 18): set RINGBOLT_COMPAT_TRANSACTIONS=1";

  static KafkaProducer<String, String> producer(String transactionalId, Map<String, Object> extra) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    p.putAll(extra);
    return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
  }

  static KafkaProducer<String, String> producer(String transactionalId) {
    return producer(transactionalId, Map.of());
  }

  static KafkaConsumer<String, String> consumer(boolean readCommitted, String group) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, readCommitted ? "read_committed" : "read_uncommitted");
    if (group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    return new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
  }

  static List<TopicPartition> partitions(String topic, int n) {
    List<TopicPartition> tps = new ArrayList<>();
    for (int p = 0; p < n; p++) {
      tps.add(new TopicPartition(topic, p));
    }
    return tps;
  }

  /** End offsets as a consumer of that isolation level sees them: LSO (read_committed) or high watermark. */
  static Map<TopicPartition, Long> endOffsets(String topic, int n, boolean readCommitted) {
    try (KafkaConsumer<String, String> c = consumer(readCommitted, null)) {
      return c.endOffsets(partitions(topic, n), Duration.ofSeconds(30));
    }
  }

  /**
   * Every record of the partitions from offset 0 up to the end offsets this consumer reports, by
   * partition in offset order. Fails if the end is not reached within 30 s.
   */
  static Map<Integer, List<ConsumerRecord<String, String>>> readAll(String topic, int n, boolean readCommitted) {
    Map<Integer, List<ConsumerRecord<String, String>>> got = new HashMap<>();
    try (KafkaConsumer<String, String> c = consumer(readCommitted, null)) {
      List<TopicPartition> tps = partitions(topic, n);
      c.assign(tps);
      c.seekToBeginning(tps);
      Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
      for (TopicPartition tp : tps) {
        got.put(tp.partition(), new ArrayList<>());
      }
      long deadline = System.currentTimeMillis() + 30_000;
      while (true) {
        boolean done = true;
        for (TopicPartition tp : tps) {
          if (c.position(tp, Duration.ofSeconds(30)) < end.get(tp)) {
            done = false;
          }
        }
        if (done) {
          break;
        }
        if (System.currentTimeMillis() > deadline) {
          fail("reading " + topic + " (" + (readCommitted ? "read_committed" : "read_uncommitted") + ") did not reach "
              + end + " within 30 s; got " + counts(got));
        }
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
          got.get(r.partition()).add(r);
        }
      }
    }
    return got;
  }

  /**
   * What a read_committed consumer sees once no transaction is open: waits (up to 30 s) until the
   * last stable offsets reach the high watermarks, then reads. Kafka answers EndTxn once the
   * PrepareCommit/PrepareAbort is durable and writes the markers after, so a commit that returned
   * is not yet visible; a reader must wait for the LSO to move, as this does.
   */
  static Map<Integer, List<ConsumerRecord<String, String>>> readStable(String topic, int n) throws InterruptedException {
    awaitStable(topic, n, 30);
    return readAll(topic, n, true);
  }

  static Map<Integer, Integer> counts(Map<Integer, List<ConsumerRecord<String, String>>> got) {
    Map<Integer, Integer> m = new HashMap<>();
    got.forEach((p, rs) -> m.put(p, rs.size()));
    return m;
  }

  /** The values read, partition by partition, in offset order. */
  static List<String> values(Map<Integer, List<ConsumerRecord<String, String>>> got) {
    List<String> out = new ArrayList<>();
    got.keySet().stream().sorted().forEach(p -> got.get(p).forEach(r -> out.add(r.value())));
    return out;
  }

  /** Waits up to `seconds` until the read_committed end offsets reach the high watermarks: no open transaction. */
  static Map<TopicPartition, Long> awaitStable(String topic, int n, int seconds) throws InterruptedException {
    long deadline = System.currentTimeMillis() + seconds * 1000L;
    while (true) {
      Map<TopicPartition, Long> lso = endOffsets(topic, n, true);
      Map<TopicPartition, Long> hw = endOffsets(topic, n, false);
      if (lso.equals(hw)) {
        return hw;
      }
      if (System.currentTimeMillis() > deadline) {
        fail(topic + ": the last stable offsets " + lso + " did not reach the high watermarks " + hw + " within "
            + seconds + " s (a transaction stayed open)");
      }
      Thread.sleep(250);
    }
  }

  static byte[] utf8(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }
}
