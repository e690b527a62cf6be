package dev.ringbolt.compat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConsumerGroupsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The Java reference client (kafka-clients 4.3) against the broker: admin, an acks=all producer with
 * keys, null values, headers and timestamps over several partitions, an assign/seek consumer that must
 * read back exactly that, ListOffsets by time. Idempotence and groups are optional (issues 6 and 5).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ClientsTest {
  static final String BOOTSTRAP = System.getProperty("bootstrap", "127.0.0.1:9092");

  static String unique(String prefix) {
    return prefix + "-" + System.currentTimeMillis() + "-" + UUID.randomUUID().toString().substring(0, 6);
  }

  static Admin admin() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    return Admin.create(p);
  }

  static KafkaProducer<byte[], byte[]> producer(boolean idempotent) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, Boolean.toString(idempotent));
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
  }

  static KafkaConsumer<byte[], byte[]> consumer(String group) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    if (group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    }
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  static void createTopic(String topic, int partitions) throws Exception {
    try (Admin a = admin()) {
      a.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
    }
  }

  /** Sends every record, waits for all acknowledgements, returns them in send order. */
  static List<RecordMetadata> sendAll(boolean idempotent, List<ProducerRecord<byte[], byte[]>> recs) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = producer(idempotent)) {
      List<Future<RecordMetadata>> fs = new ArrayList<>();
      for (ProducerRecord<byte[], byte[]> r : recs) {
        fs.add(p.send(r));
      }
      List<RecordMetadata> out = new ArrayList<>();
      for (Future<RecordMetadata> f : fs) {
        out.add(f.get(30, TimeUnit.SECONDS));
      }
      return out;
    }
  }

  /** Reads the partitions from the beginning until `want` records arrived, plus one more second. */
  static Map<Integer, List<ConsumerRecord<byte[], byte[]>>> readAll(String topic, int partitions, int want) {
    Map<Integer, List<ConsumerRecord<byte[], byte[]>>> got = new TreeMap<>();
    try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
      List<TopicPartition> tps = new ArrayList<>();
      for (int p = 0; p < partitions; p++) {
        tps.add(new TopicPartition(topic, p));
      }
      c.assign(tps);
      c.seekToBeginning(tps);
      int n = 0;
      long deadline = System.currentTimeMillis() + 30_000;
      long extraUntil = 0;
      while (true) {
        long now = System.currentTimeMillis();
        if (n >= want && extraUntil == 0) {
          extraUntil = now + 1000;
        }
        if ((extraUntil != 0 && now > extraUntil) || now > deadline) {
          break;
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          got.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r);
          n++;
        }
      }
    }
    return got;
  }

  static List<ProducerRecord<byte[], byte[]>> records(String topic, int partitions, int count, long baseTs) {
    List<ProducerRecord<byte[], byte[]>> recs = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      byte[] key = i % 5 == 0 ? null : (i % 23 == 0 ? new byte[0] : ("key-" + (i % 17)).getBytes(StandardCharsets.UTF_8));
      byte[] value = i % 7 == 0 ? null : (i % 19 == 0 ? new byte[0] : ("java " + i + " \u0000\u00ff").getBytes(StandardCharsets.UTF_8));
      List<Header> headers = new ArrayList<>();
      if (i % 3 == 0) {
        headers.add(new RecordHeader("trace", ("t" + i).getBytes(StandardCharsets.UTF_8)));
        headers.add(new RecordHeader("nullv", null));
      }
      recs.add(new ProducerRecord<>(topic, i % partitions, baseTs + i, key, value, headers));
    }
    return recs;
  }

  static void roundTrip(boolean idempotent) throws Exception {
    String topic = unique(idempotent ? "java-idem" : "java");
    int partitions = 4;
    createTopic(topic, partitions);
    long base = System.currentTimeMillis() - 3_600_000;
    List<ProducerRecord<byte[], byte[]>> recs = records(topic, partitions, 400, base);
    List<RecordMetadata> acks = sendAll(idempotent, recs);

    Map<Integer, List<Integer>> byPartition = new TreeMap<>(); // partition -> indexes into recs, offset order
    int[] next = new int[partitions];
    for (int i = 0; i < recs.size(); i++) {
      RecordMetadata md = acks.get(i);
      assertEquals(recs.get(i).partition(), md.partition());
      assertEquals(next[md.partition()]++, md.offset(), "acknowledged offsets must be contiguous from 0");
      byPartition.computeIfAbsent(md.partition(), k -> new ArrayList<>()).add(i);
    }

    Map<Integer, List<ConsumerRecord<byte[], byte[]>>> got = readAll(topic, partitions, recs.size());
    for (int p = 0; p < partitions; p++) {
      List<Integer> want = byPartition.get(p);
      List<ConsumerRecord<byte[], byte[]>> g = got.getOrDefault(p, List.of());
      assertEquals(want.size(), g.size(), "partition " + p + " record count");
      for (int j = 0; j < want.size(); j++) {
        ProducerRecord<byte[], byte[]> w = recs.get(want.get(j));
        ConsumerRecord<byte[], byte[]> r = g.get(j);
        String where = "partition " + p + " offset " + r.offset();
        assertEquals(j, r.offset(), where);
        assertArrayEquals(w.key(), r.key(), where + " key");
        assertArrayEquals(w.value(), r.value(), where + " value");
        assertEquals((long) w.timestamp(), r.timestamp(), where + " timestamp");
        Header[] wh = w.headers().toArray();
        Header[] rh = r.headers().toArray();
        assertEquals(wh.length, rh.length, where + " header count");
        for (int h = 0; h < wh.length; h++) {
          assertEquals(wh[h].key(), rh[h].key(), where + " header key");
          assertArrayEquals(wh[h].value(), rh[h].value(), where + " header value");
        }
      }
    }

    try (KafkaConsumer<byte[], byte[]> c = consumer(null)) {
      TopicPartition tp0 = new TopicPartition(topic, 0);
      assertEquals(0L, c.beginningOffsets(List.of(tp0)).get(tp0));
      assertEquals((long) byPartition.get(0).size(), c.endOffsets(List.of(tp0)).get(tp0));
      // Partition 0 holds records 0, 4, 8, ... with timestamps base + i: by time, the first one at
      // or after base + 41 is record 44, at offset 11.
      OffsetAndTimestamp ot = c.offsetsForTimes(Map.of(tp0, base + 41)).get(tp0);
      assertEquals(11L, ot.offset());
      assertEquals(base + 44, ot.timestamp());
    }
  }

  @Test
  void adminCreateDescribeDelete() throws Exception {
    String topic = unique("java-admin");
    try (Admin a = admin()) {
      a.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(30, TimeUnit.SECONDS);
      assertTrue(a.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic));
      TopicDescription d = a.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
      assertEquals(3, d.partitions().size());
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> a.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(30, TimeUnit.SECONDS));
      assertInstanceOf(TopicExistsException.class, e.getCause());
      a.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
      long deadline = System.currentTimeMillis() + 30_000;
      while (a.listTopics().names().get(30, TimeUnit.SECONDS).contains(topic)) {
        if (System.currentTimeMillis() > deadline) {
          fail(topic + " still listed 30 s after delete");
        }
        Thread.sleep(200);
      }
    }
  }

  @Test
  void roundTripPlain() throws Exception {
    roundTrip(false);
  }

  @Test
  void roundTripIdempotent() throws Exception {
    Assumptions.assumeTrue("1".equals(System.getenv("RINGBOLT_COMPAT_IDEMPOTENCE")),
        "idempotent producer (issue 6): set RINGBOLT_COMPAT_IDEMPOTENCE=1");
    roundTrip(true);
  }

  /** Admin.listOffsets with OffsetSpec.maxTimestamp() (ListOffsets v7+, KIP-734) for partition 0. */
  static ListOffsetsResultInfo maxTimestamp(Admin a, String topic) throws Exception {
    TopicPartition tp = new TopicPartition(topic, 0);
    return a.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp).get(30, TimeUnit.SECONDS);
  }

  /** Sends the records with a long linger, so they share one batch, and flushes. */
  static void sendOneBatch(List<ProducerRecord<byte[], byte[]>> recs) throws Exception {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "1000");
    try (KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer())) {
      List<Future<RecordMetadata>> fs = new ArrayList<>();
      for (ProducerRecord<byte[], byte[]> r : recs) {
        fs.add(prod.send(r));
      }
      prod.flush();
      for (Future<RecordMetadata> f : fs) {
        f.get(30, TimeUnit.SECONDS);
      }
    }
  }

  /**
   * The max-timestamp offset is the record carrying the largest timestamp, not the last offset of
   * its batch: three records in one batch with timestamps +100, +400, +250 answer offset 1, +400.
   */
  @Test
  void listOffsetsMaxTimestamp() throws Exception {
    String topic = unique("java-maxts");
    createTopic(topic, 1);
    long base = System.currentTimeMillis() - 60_000;
    try (Admin a = admin()) {
      ListOffsetsResultInfo empty = maxTimestamp(a, topic);
      assertEquals(-1L, empty.offset(), "empty partition offset");
      assertEquals(-1L, empty.timestamp(), "empty partition timestamp");
      List<ProducerRecord<byte[], byte[]>> recs = new ArrayList<>();
      long[] deltas = {100, 400, 250};
      for (int i = 0; i < deltas.length; i++) {
        recs.add(new ProducerRecord<>(topic, 0, base + deltas[i], null, ("m" + i).getBytes(StandardCharsets.UTF_8)));
      }
      sendOneBatch(recs);
      ListOffsetsResultInfo r = maxTimestamp(a, topic);
      assertEquals(1L, r.offset(), "offset of the record with the max timestamp");
      assertEquals(base + 400, r.timestamp());
    }
  }

  /**
   * message.timestamp.type=LogAppendTime: the default (idempotent) producer gets the broker's append
   * time in its acknowledgements, and the consumer sees LOG_APPEND_TIME records carrying it.
   */
  @Test
  void logAppendTimeTopic() throws Exception {
    Assumptions.assumeTrue("1".equals(System.getenv("RINGBOLT_COMPAT_IDEMPOTENCE")),
        "uses the default idempotent producer (issue 6): set RINGBOLT_COMPAT_IDEMPOTENCE=1");
    String topic = unique("java-lat");
    try (Admin a = admin()) {
      a.createTopics(List.of(new NewTopic(topic, 1, (short) 1)
          .configs(Map.of("message.timestamp.type", "LogAppendTime")))).all().get(30, TimeUnit.SECONDS);
    }
    long old = System.currentTimeMillis() - 3_600_000;
    long before = System.currentTimeMillis();
    List<ProducerRecord<byte[], byte[]>> recs = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      recs.add(new ProducerRecord<>(topic, 0, old + i, null, ("lat " + i).getBytes(StandardCharsets.UTF_8)));
    }
    List<RecordMetadata> acks;
    try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(Map.of(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP),
        new ByteArraySerializer(), new ByteArraySerializer())) {
      List<Future<RecordMetadata>> fs = new ArrayList<>();
      for (ProducerRecord<byte[], byte[]> r : recs) {
        fs.add(p.send(r));
      }
      acks = new ArrayList<>();
      for (Future<RecordMetadata> f : fs) {
        acks.add(f.get(30, TimeUnit.SECONDS));
      }
    }
    long after = System.currentTimeMillis();
    for (int i = 0; i < acks.size(); i++) {
      assertEquals(i, acks.get(i).offset());
      long ts = acks.get(i).timestamp();
      assertTrue(ts >= before - 1000 && ts <= after + 1000, "acknowledged timestamp " + ts + " is not the append time");
    }
    List<ConsumerRecord<byte[], byte[]>> got = readAll(topic, 1, 20).get(0);
    assertEquals(20, got.size());
    for (int i = 0; i < got.size(); i++) {
      ConsumerRecord<byte[], byte[]> r = got.get(i);
      assertEquals(org.apache.kafka.common.record.TimestampType.LOG_APPEND_TIME, r.timestampType());
      assertEquals(acks.get(i).timestamp(), r.timestamp(), "record " + i);
    }
  }

  @Test
  void groupCommitAndResume() throws Exception {
    Assumptions.assumeTrue("1".equals(System.getenv("RINGBOLT_COMPAT_GROUPS")),
        "consumer groups (issue 5): set RINGBOLT_COMPAT_GROUPS=1");
    String topic = unique("java-group");
    String group = unique("java-g");
    createTopic(topic, 3);
    sendAll(false, records(topic, 3, 150, System.currentTimeMillis()));
    Map<String, Integer> seen = new HashMap<>();
    try (KafkaConsumer<byte[], byte[]> c = consumer(group)) {
      c.subscribe(List.of(topic));
      long deadline = System.currentTimeMillis() + 45_000;
      while (seen.size() < 150 && System.currentTimeMillis() < deadline) {
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          seen.merge(r.partition() + "/" + r.offset(), 1, Integer::sum);
        }
        c.commitSync();
      }
      assertEquals(Set.of(0, 1, 2), c.assignment().stream().map(TopicPartition::partition).collect(java.util.stream.Collectors.toSet()));
    }
    assertEquals(150, seen.size());
    assertTrue(seen.values().stream().allMatch(n -> n == 1), "each record once");
    sendAll(false, records(topic, 3, 30, System.currentTimeMillis()));
    int resumed = 0;
    try (KafkaConsumer<byte[], byte[]> c = consumer(group)) {
      c.subscribe(List.of(topic));
      long deadline = System.currentTimeMillis() + 45_000;
      long extraUntil = 0;
      while (true) {
        long now = System.currentTimeMillis();
        if (resumed >= 30 && extraUntil == 0) {
          extraUntil = now + 1000;
        }
        if ((extraUntil != 0 && now > extraUntil) || now > deadline) {
          break;
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          assertTrue(r.offset() >= 50, "resumed below the committed offset: " + r.partition() + "/" + r.offset());
          resumed++;
        }
      }
    }
    assertEquals(30, resumed, "records after resuming from committed offsets");
  }

  /** Every operation that applies to the resource type: what a broker without an authorizer reports. */
  static final Set<AclOperation> TOPIC_OPS = Set.of(AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE,
      AclOperation.DELETE, AclOperation.ALTER, AclOperation.DESCRIBE, AclOperation.DESCRIBE_CONFIGS,
      AclOperation.ALTER_CONFIGS);
  static final Set<AclOperation> CLUSTER_OPS = Set.of(AclOperation.CREATE, AclOperation.ALTER, AclOperation.DESCRIBE,
      AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS,
      AclOperation.IDEMPOTENT_WRITE);
  static final Set<AclOperation> GROUP_OPS = Set.of(AclOperation.READ, AclOperation.DELETE, AclOperation.DESCRIBE,
      AclOperation.DESCRIBE_CONFIGS, AclOperation.ALTER_CONFIGS);

  /** describeTopics / describeCluster with includeAuthorizedOperations (Metadata v8+, DescribeCluster). */
  @Test
  void authorizedOperationsTopicAndCluster() throws Exception {
    String topic = unique("java-authz");
    createTopic(topic, 2);
    try (Admin a = admin()) {
      TopicDescription d = a.describeTopics(List.of(topic), new DescribeTopicsOptions().includeAuthorizedOperations(true))
          .allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
      assertEquals(TOPIC_OPS, d.authorizedOperations());
      d = a.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
      assertEquals(null, d.authorizedOperations(), "not requested");

      DescribeClusterResult c = a.describeCluster(new DescribeClusterOptions().includeAuthorizedOperations(true));
      assertEquals(CLUSTER_OPS, c.authorizedOperations().get(30, TimeUnit.SECONDS));
      assertEquals(1, c.nodes().get(30, TimeUnit.SECONDS).size());
      assertTrue(c.controller().get(30, TimeUnit.SECONDS) != null);
      assertTrue(c.clusterId().get(30, TimeUnit.SECONDS) != null);
      assertEquals(null, a.describeCluster().authorizedOperations().get(30, TimeUnit.SECONDS), "not requested");
    }
  }

  /** describeConsumerGroups with includeAuthorizedOperations (DescribeGroups v3+) on a live group. */
  @Test
  void authorizedOperationsGroup() throws Exception {
    Assumptions.assumeTrue("1".equals(System.getenv("RINGBOLT_COMPAT_GROUPS")),
        "consumer groups (issue 5): set RINGBOLT_COMPAT_GROUPS=1");
    String topic = unique("java-authz-g");
    String group = unique("java-authz-grp");
    createTopic(topic, 1);
    try (KafkaConsumer<byte[], byte[]> c = consumer(group); Admin a = admin()) {
      c.subscribe(List.of(topic));
      long deadline = System.currentTimeMillis() + 30_000;
      while (c.assignment().isEmpty()) {
        if (System.currentTimeMillis() > deadline) {
          fail("no assignment");
        }
        c.poll(Duration.ofMillis(200));
      }
      ConsumerGroupDescription g = a.describeConsumerGroups(List.of(group),
          new DescribeConsumerGroupsOptions().includeAuthorizedOperations(true))
          .describedGroups().get(group).get(30, TimeUnit.SECONDS);
      assertEquals(1, g.members().size());
      assertEquals(GROUP_OPS, g.authorizedOperations());
      g = a.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(30, TimeUnit.SECONDS);
      assertEquals(null, g.authorizedOperations(), "not requested");
    }
  }
}
