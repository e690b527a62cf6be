package dev.ringbolt.compat.tools;

import static dev.ringbolt.compat.tools.Tools.BOOTSTRAP;
import static dev.ringbolt.compat.tools.Tools.configs;
import static dev.ringbolt.compat.tools.Tools.consumerGroups;
import static dev.ringbolt.compat.tools.Tools.deleteRecords;
import static dev.ringbolt.compat.tools.Tools.getOffsets;
import static dev.ringbolt.compat.tools.Tools.logDirs;
import static dev.ringbolt.compat.tools.Tools.table;
import static dev.ringbolt.compat.tools.Tools.topics;
import static dev.ringbolt.compat.tools.Tools.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ringbolt.compat.tools.Tools.Result;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Predicate;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kafka 4.3's command-line tools against the broker (issue 17): kafka-topics, kafka-configs,
 * kafka-delete-records, kafka-get-offsets, kafka-log-dirs and kafka-consumer-groups, each checked on
 * its exit status and the values it prints, and cross-checked with the Java client where a tool's
 * output alone could hide a no-op. Note that kafka-consumer-groups exits 0 even when its request
 * failed (it prints the error): its checks are on the output.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ToolsTest {
  static Admin admin() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    return Admin.create(p);
  }

  static KafkaProducer<String, String> producer() {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
  }

  /** Writes `count` records to each partition, record i of partition p with timestamp base + i * 1000. */
  static void produce(String topic, int partitions, int count, long base) throws Exception {
    try (KafkaProducer<String, String> p = producer()) {
      List<Future<RecordMetadata>> fs = new ArrayList<>();
      for (int part = 0; part < partitions; part++) {
        for (int i = 0; i < count; i++) {
          fs.add(p.send(new ProducerRecord<>(topic, part, base + i * 1000L, "k" + i, "value " + part + "/" + i)));
        }
      }
      for (Future<RecordMetadata> f : fs) {
        f.get(30, TimeUnit.SECONDS);
      }
    }
  }

  static void ok(Result r) {
    assertEquals(0, r.code(), r.show());
  }

  static void assertContains(Result r, String want) {
    assertTrue(r.out().contains(want), "output lacks \"" + want + "\":\n" + r.show());
  }

  /** Reruns a command until its result passes `check` (Kafka applies admin changes through its metadata log), up to 15 s. */
  static Result await(Supplier<Result> cmd, Predicate<Result> check) throws InterruptedException {
    long deadline = System.currentTimeMillis() + 15_000;
    while (true) {
      Result r = cmd.get();
      if (check.test(r) || System.currentTimeMillis() > deadline) {
        return r;
      }
      Thread.sleep(200);
    }
  }

  static String createTopic(String prefix, int partitions) {
    String topic = unique(prefix);
    Result r = topics("--create", "--topic", topic, "--partitions", Integer.toString(partitions), "--replication-factor", "1");
    ok(r);
    assertEquals(List.of("Created topic " + topic + "."), r.lines(), r.show());
    return topic;
  }

  // ---- kafka-topics ------------------------------------------------------------------------------

  /** "Topic: t\tTopicId: ...\tPartitionCount: 3\t..." → PartitionCount and the partition lines. */
  static int partitionCount(Result r, String topic) {
    for (String l : r.lines()) {
      if (l.startsWith("Topic: " + topic + "\t")) {
        for (String field : l.split("\t")) {
          if (field.startsWith("PartitionCount: ")) {
            return Integer.parseInt(field.substring("PartitionCount: ".length()).trim());
          }
        }
      }
    }
    fail("no PartitionCount for " + topic + ":\n" + r.show());
    return -1;
  }

  static List<String> partitionLines(Result r, String topic) {
    return r.lines().stream().map(String::trim).filter(l -> l.startsWith("Topic: " + topic + "\tPartition: ")).toList();
  }

  @Test
  void topicsCreateDescribeAlterPartitions() throws Exception {
    String topic = createTopic("tools-topics", 1);
    Result d = topics("--describe", "--topic", topic);
    ok(d);
    assertEquals(1, partitionCount(d, topic));
    assertTrue(d.out().contains("ReplicationFactor: 1"), d.show());

    Result alter = topics("--alter", "--topic", topic, "--partitions", "3");
    ok(alter);
    d = await(() -> topics("--describe", "--topic", topic), r -> partitionCount(r, topic) == 3);
    ok(d);
    assertEquals(3, partitionCount(d, topic), d.show());
    List<String> parts = partitionLines(d, topic);
    assertEquals(3, parts.size(), d.show());
    for (int p = 0; p < 3; p++) {
      assertTrue(parts.get(p).startsWith("Topic: " + topic + "\tPartition: " + p + "\tLeader: "), d.show());
      assertFalse(parts.get(p).contains("Leader: none") || parts.get(p).contains("Leader: -1"), "partition " + p + " has a leader:\n" + d.show());
    }

    // Reducing (or keeping) the partition count fails with Kafka's error and changes nothing.
    // (Kafka 4.3: "The topic T currently has 3 partition(s); 2 would not be an increase.", from the
    // broker's INVALID_PARTITIONS error message; AdminTest checks the error code itself.)
    Result fewer = topics("--alter", "--topic", topic, "--partitions", "2");
    assertEquals(1, fewer.code(), fewer.show());
    assertTrue(fewer.out().startsWith("Error while executing topic command : ") && fewer.out().contains("currently has 3 partition"),
        fewer.show());
    Result same = topics("--alter", "--topic", topic, "--partitions", "3");
    assertEquals(1, same.code(), same.show());
    assertEquals(3, partitionCount(topics("--describe", "--topic", topic), topic));

    // The new partitions take data.
    produce(topic, 3, 5, System.currentTimeMillis());
    Result end = getOffsets("--topic", topic, "--time", "-1");
    ok(end);
    assertEquals(Set.of(topic + ":0:5", topic + ":1:5", topic + ":2:5"), Set.copyOf(end.lines()), end.show());

    Result list = topics("--list");
    ok(list);
    assertTrue(list.lines().contains(topic), list.show());
  }

  // ---- kafka-configs ----------------------------------------------------------------------------

  /** The "  name=value sensitive=... synonyms={...}" line of `name` in a --describe output, or null. */
  static String configLine(Result r, String name) {
    for (String l : r.lines()) {
      if (l.trim().startsWith(name + "=")) {
        return l.trim();
      }
    }
    return null;
  }

  @Test
  void configsTopicAddDeleteDescribe() throws Exception {
    String topic = createTopic("tools-configs", 1);
    Result d = configs("--entity-type", "topics", "--entity-name", topic, "--describe");
    ok(d);
    assertEquals(List.of("Dynamic configs for topic " + topic + " are:"), d.lines(), d.show());

    Result add = configs("--entity-type", "topics", "--entity-name", topic, "--alter",
        "--add-config", "retention.ms=3600000,cleanup.policy=[compact,delete],max.message.bytes=200000");
    ok(add);
    assertEquals(List.of("Completed updating config for topic " + topic + "."), add.lines(), add.show());
    d = await(() -> configs("--entity-type", "topics", "--entity-name", topic, "--describe"),
        r -> configLine(r, "retention.ms") != null);
    ok(d);
    // Exact synonym lists are AdminTest's; here the value and its source, as the tool prints them.
    assertTrue(configLine(d, "retention.ms").startsWith("retention.ms=3600000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=3600000"),
        d.show());
    assertEquals("cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete, "
        + "DEFAULT_CONFIG:log.cleanup.policy=delete}", configLine(d, "cleanup.policy"), d.show());
    assertEquals("max.message.bytes=200000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:max.message.bytes=200000, "
        + "DEFAULT_CONFIG:message.max.bytes=1048588}", configLine(d, "max.message.bytes"), d.show());

    // Bad values are refused with the broker's message, and nothing changes.
    Result bad = configs("--entity-type", "topics", "--entity-name", topic, "--alter", "--add-config", "retention.ms=soon");
    assertEquals(1, bad.code(), bad.show());
    assertTrue(bad.err().contains("InvalidConfigurationException: Invalid value soon for configuration retention.ms"), bad.show());
    Result badPolicy = configs("--entity-type", "topics", "--entity-name", topic, "--alter", "--add-config", "cleanup.policy=shred");
    assertEquals(1, badPolicy.code(), badPolicy.show());
    assertTrue(badPolicy.err().contains("InvalidConfigurationException"), badPolicy.show());
    Result unknown = configs("--entity-type", "topics", "--entity-name", topic, "--alter", "--add-config", "no.such.config=1");
    assertEquals(1, unknown.code(), unknown.show());

    Result del = configs("--entity-type", "topics", "--entity-name", topic, "--alter", "--delete-config", "retention.ms,cleanup.policy");
    ok(del);
    d = await(() -> configs("--entity-type", "topics", "--entity-name", topic, "--describe"),
        r -> configLine(r, "retention.ms") == null);
    assertEquals(null, configLine(d, "retention.ms"), d.show());
    assertEquals(null, configLine(d, "cleanup.policy"), d.show());
    assertTrue(configLine(d, "max.message.bytes").startsWith("max.message.bytes=200000 "), d.show());

    // --describe --all lists every config with its value, defaults included.
    Result all = configs("--entity-type", "topics", "--entity-name", topic, "--describe", "--all");
    ok(all);
    assertContains(all, "All configs for topic " + topic + " are:");
    assertTrue(configLine(all, "retention.ms").startsWith("retention.ms=604800000 sensitive=false synonyms={"), all.show());
    assertTrue(configLine(all, "segment.bytes").startsWith("segment.bytes=1073741824 sensitive=false synonyms={DEFAULT_CONFIG:log.segment.bytes=1073741824}"),
        all.show());
  }

  /**
   * Broker configs: the cluster default (--entity-default) and one broker (--entity-name ID), each
   * with --add-config, --describe and --delete-config; a bad value is refused. Everything set here
   * is deleted again (the reference run shares its broker with other suites).
   */
  @Test
  void configsBrokerDefaultAndPerBroker() throws Exception {
    String id;
    try (Admin a = admin()) {
      id = Integer.toString(a.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next().id());
    }
    try {
      Result add = configs("--entity-type", "brokers", "--entity-default", "--alter", "--add-config", "log.retention.ms=259200000");
      ok(add);
      assertEquals(List.of("Completed updating default config for brokers in the cluster."), add.lines(), add.show());
      Result d = await(() -> configs("--entity-type", "brokers", "--entity-default", "--describe"),
          r -> configLine(r, "log.retention.ms") != null);
      ok(d);
      assertContains(d, "Default configs for brokers in the cluster are:");
      assertTrue(configLine(d, "log.retention.ms").startsWith(
          "log.retention.ms=259200000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=259200000"), d.show());

      add = configs("--entity-type", "brokers", "--entity-name", id, "--alter", "--add-config", "log.retention.ms=172800000");
      ok(add);
      assertEquals(List.of("Completed updating config for broker " + id + "."), add.lines(), add.show());
      d = await(() -> configs("--entity-type", "brokers", "--entity-name", id, "--describe"),
          r -> configLine(r, "log.retention.ms") != null);
      ok(d);
      assertContains(d, "Dynamic configs for broker " + id + " are:");
      assertTrue(configLine(d, "log.retention.ms").startsWith("log.retention.ms=172800000 sensitive=false synonyms={"
          + "DYNAMIC_BROKER_CONFIG:log.retention.ms=172800000, DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=259200000"), d.show());
      Result all = configs("--entity-type", "brokers", "--entity-name", id, "--describe", "--all");
      ok(all);
      assertContains(all, "All configs for broker " + id + " are:");
      assertTrue(configLine(all, "log.retention.ms").startsWith("log.retention.ms=172800000 "), all.show());
      assertEquals("num.partitions=1 sensitive=false synonyms={STATIC_BROKER_CONFIG:num.partitions=1, DEFAULT_CONFIG:num.partitions=1}",
          configLine(all, "num.partitions"), all.show());

      Result bad = configs("--entity-type", "brokers", "--entity-name", id, "--alter", "--add-config", "log.retention.ms=soon");
      assertEquals(1, bad.code(), bad.show());
      assertTrue(bad.err().contains("InvalidRequestException: Invalid value soon for configuration log.retention.ms"), bad.show());
      bad = configs("--entity-type", "brokers", "--entity-default", "--alter", "--add-config", "message.max.bytes=-5");
      assertEquals(1, bad.code(), bad.show());

      Result del = configs("--entity-type", "brokers", "--entity-name", id, "--alter", "--delete-config", "log.retention.ms");
      ok(del);
      d = await(() -> configs("--entity-type", "brokers", "--entity-name", id, "--describe"),
          r -> configLine(r, "log.retention.ms") == null);
      assertEquals(null, configLine(d, "log.retention.ms"), d.show());
    } finally {
      configs("--entity-type", "brokers", "--entity-name", id, "--alter", "--delete-config", "log.retention.ms");
      Result del = configs("--entity-type", "brokers", "--entity-default", "--alter", "--delete-config", "log.retention.ms");
      ok(del);
    }
    Result d = await(() -> configs("--entity-type", "brokers", "--entity-default", "--describe"),
        r -> configLine(r, "log.retention.ms") == null);
    assertEquals(null, configLine(d, "log.retention.ms"), d.show());
    assertEquals(null, configLine(d, "message.max.bytes"), "the refused message.max.bytes=-5 is not set:\n" + d.show());
  }

  // ---- kafka-delete-records, kafka-get-offsets ---------------------------------------------------

  static Map<String, String> offsetsByPartition(Result r, String topic) {
    Map<String, String> m = new TreeMap<>();
    for (String l : r.lines()) {
      String[] f = l.split(":");
      if (f.length == 3 && f[0].equals(topic)) {
        m.put(f[1], f[2]);
      }
    }
    return m;
  }

  @Test
  void getOffsetsByTime() throws Exception {
    String topic = createTopic("tools-offsets", 2);
    long base = System.currentTimeMillis() - 3_600_000;
    produce(topic, 2, 50, base);
    Result latest = getOffsets("--topic", topic, "--time", "-1");
    ok(latest);
    assertEquals(Map.of("0", "50", "1", "50"), offsetsByPartition(latest, topic), latest.show());
    Result earliest = getOffsets("--topic", topic, "--time", "-2");
    ok(earliest);
    assertEquals(Map.of("0", "0", "1", "0"), offsetsByPartition(earliest, topic), earliest.show());
    // The first record at or after base + 20.5 s is record 21.
    Result byTime = getOffsets("--topic", topic, "--time", Long.toString(base + 20_500));
    ok(byTime);
    assertEquals(Map.of("0", "21", "1", "21"), offsetsByPartition(byTime, topic), byTime.show());
    Result maxTs = getOffsets("--topic", topic, "--time", "-3");
    ok(maxTs);
    assertEquals(Map.of("0", "49", "1", "49"), offsetsByPartition(maxTs, topic), maxTs.show());
    Result one = getOffsets("--topic", topic, "--partitions", "1", "--time", "latest");
    ok(one);
    assertEquals(List.of(topic + ":1:50"), one.lines(), one.show());
    // Later than every record: no offset, so the tool prints no line for either partition.
    Result future = getOffsets("--topic", topic, "--time", Long.toString(System.currentTimeMillis() + 3_600_000));
    ok(future);
    assertEquals(List.of(), future.lines(), future.show());
  }

  @Test
  void deleteRecordsThenGetOffsets(@TempDir Path dir) throws Exception {
    String topic = createTopic("tools-delrec", 2);
    produce(topic, 2, 100, System.currentTimeMillis() - 60_000);
    Path json = dir.resolve("offsets.json");
    Files.writeString(json, "{\"partitions\":[{\"topic\":\"" + topic + "\",\"partition\":0,\"offset\":30},"
        + "{\"topic\":\"" + topic + "\",\"partition\":1,\"offset\":-1}],\"version\":1}", StandardCharsets.UTF_8);
    Result del = deleteRecords("--offset-json-file", json.toString());
    ok(del);
    assertContains(del, "Records delete operation completed:");
    assertContains(del, "partition: " + topic + "-0\tlow_watermark: 30");
    assertContains(del, "partition: " + topic + "-1\tlow_watermark: 100");

    Result earliest = getOffsets("--topic", topic, "--time", "-2");
    ok(earliest);
    assertEquals(Map.of("0", "30", "1", "100"), offsetsByPartition(earliest, topic), earliest.show());
    Result latest = getOffsets("--topic", topic, "--time", "-1");
    assertEquals(Map.of("0", "100", "1", "100"), offsetsByPartition(latest, topic), latest.show());

    // Beyond the high watermark: the tool reports the partition's error; the start stays.
    Files.writeString(json, "{\"partitions\":[{\"topic\":\"" + topic + "\",\"partition\":0,\"offset\":101}],\"version\":1}",
        StandardCharsets.UTF_8);
    Result beyond = deleteRecords("--offset-json-file", json.toString());
    assertContains(beyond, "partition: " + topic + "-0\terror: org.apache.kafka.common.errors.OffsetOutOfRangeException");
    earliest = getOffsets("--topic", topic, "--time", "-2", "--partitions", "0");
    assertEquals(List.of(topic + ":0:30"), earliest.lines(), earliest.show());

    // A consumer from the beginning starts at the new log start.
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
      TopicPartition tp = new TopicPartition(topic, 0);
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      long deadline = System.currentTimeMillis() + 30_000;
      var recs = c.poll(Duration.ofMillis(200));
      while (recs.isEmpty() && System.currentTimeMillis() < deadline) {
        recs = c.poll(Duration.ofMillis(200));
      }
      assertFalse(recs.isEmpty(), "no records after the new log start");
      assertEquals(30L, recs.iterator().next().offset());
      assertEquals("value 0/30", recs.iterator().next().value());
    }
  }

  // ---- kafka-log-dirs -----------------------------------------------------------------------------

  @Test
  void logDirsDescribe() throws Exception {
    String topic = createTopic("tools-logdirs", 2);
    produce(topic, 1, 200, System.currentTimeMillis());
    Result r = logDirs("--describe", "--topic-list", topic);
    ok(r);
    assertContains(r, "Querying brokers for log directories information");
    String json = r.lines().stream().filter(l -> l.startsWith("{")).findFirst().orElse(null);
    assertTrue(json != null, "no JSON line:\n" + r.show());
    JsonNode root = new ObjectMapper().readTree(json);
    assertEquals(1, root.get("version").asInt());
    JsonNode brokers = root.get("brokers");
    assertEquals(1, brokers.size(), r.show());
    Map<String, JsonNode> parts = new TreeMap<>();
    for (JsonNode dir : brokers.get(0).get("logDirs")) {
      assertTrue(dir.get("error").isNull(), r.show());
      assertTrue(dir.get("logDir").asText().startsWith("/"), r.show());
      for (JsonNode p : dir.get("partitions")) {
        parts.put(p.get("partition").asText(), p);
      }
    }
    assertEquals(Set.of(topic + "-0", topic + "-1"), parts.keySet(), "only the listed topic's partitions:\n" + r.show());
    JsonNode p0 = parts.get(topic + "-0");
    assertTrue(p0.get("size").asLong() > 200 * 10, "size of partition 0 with 200 records:\n" + r.show());
    assertEquals(0, p0.get("offsetLag").asLong());
    assertFalse(p0.get("isFuture").asBoolean());
    assertEquals(0, parts.get(topic + "-1").get("size").asLong(), "an empty partition:\n" + r.show());
  }

  // ---- kafka-consumer-groups ---------------------------------------------------------------------

  /** A consumer group member that consumes in a thread until closed, committing the offsets it is told to. */
  static final class Member implements AutoCloseable {
    final KafkaConsumer<String, String> consumer;
    final Thread thread;
    final AtomicBoolean assigned = new AtomicBoolean();
    volatile Map<TopicPartition, OffsetAndMetadata> toCommit;
    volatile int consumed;
    volatile Throwable failure;

    Member(String group, String clientId, String topic) {
      Properties p = new Properties();
      p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
      p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
      p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
      p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      consumer = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer());
      consumer.subscribe(List.of(topic));
      thread = new Thread(this::loop, "member-" + clientId);
      thread.start();
    }

    void loop() {
      try {
        while (true) {
          consumed += consumer.poll(Duration.ofMillis(100)).count();
          assigned.set(!consumer.assignment().isEmpty());
          Map<TopicPartition, OffsetAndMetadata> c = toCommit;
          if (c != null) {
            consumer.commitSync(c);
            toCommit = null;
          }
        }
      } catch (WakeupException e) {
        // closing
      } catch (Throwable t) {
        failure = t;
      }
    }

    void commit(Map<TopicPartition, OffsetAndMetadata> offsets) throws InterruptedException {
      toCommit = offsets;
      long deadline = System.currentTimeMillis() + 30_000;
      while (toCommit != null) {
        if (failure != null || System.currentTimeMillis() > deadline) {
          fail("commit did not happen: " + failure);
        }
        Thread.sleep(50);
      }
    }

    @Override
    public void close() throws InterruptedException {
      consumer.wakeup();
      thread.join(30_000);
      consumer.close(Duration.ofSeconds(10)); // leaves the group
    }
  }

  static Map<String, String> currentOffsets(List<Map<String, String>> rows) {
    return rows.stream().collect(Collectors.toMap(r -> r.get("PARTITION"), r -> r.get("CURRENT-OFFSET"), (a, b) -> a, TreeMap::new));
  }

  static Map<String, String> newOffsets(Result r) {
    return table(r, "GROUP").stream().collect(Collectors.toMap(m -> m.get("PARTITION"), m -> m.get("NEW-OFFSET"), (a, b) -> a, TreeMap::new));
  }

  /** The group's committed offsets as the Java client sees them. */
  static Map<String, String> committed(String group) throws Exception {
    try (Admin a = admin()) {
      return a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS).entrySet().stream()
          .collect(Collectors.toMap(e -> Integer.toString(e.getKey().partition()), e -> Long.toString(e.getValue().offset()),
              (a1, b1) -> a1, TreeMap::new));
    }
  }

  @Test
  void consumerGroupsAllOfIt() throws Exception {
    String topic = createTopic("tools-groups", 2);
    produce(topic, 2, 50, System.currentTimeMillis() - 60_000);
    String group = unique("tools-group");
    String clientId = unique("tools-member");
    TopicPartition tp0 = new TopicPartition(topic, 0);
    TopicPartition tp1 = new TopicPartition(topic, 1);

    try (Member m = new Member(group, clientId, topic)) {
      long deadline = System.currentTimeMillis() + 45_000;
      while (m.consumed < 100) {
        if (m.failure != null || System.currentTimeMillis() > deadline) {
          fail("the member consumed " + m.consumed + " of 100 records: " + m.failure);
        }
        Thread.sleep(50);
      }
      m.commit(Map.of(tp0, new OffsetAndMetadata(20), tp1, new OffsetAndMetadata(35)));

      Result list = consumerGroups("--list");
      ok(list);
      assertTrue(list.lines().contains(group), list.show());
      Result listStable = consumerGroups("--list", "--state", "Stable");
      assertTrue(table(listStable, "GROUP").stream().anyMatch(r -> group.equals(r.get("GROUP")) && "Stable".equals(r.get("STATE"))),
          listStable.show());

      Result offsets = consumerGroups("--describe", "--group", group);
      ok(offsets);
      List<Map<String, String>> rows = table(offsets, "GROUP");
      assertEquals(2, rows.size(), offsets.show());
      assertEquals(Map.of("0", "20", "1", "35"), currentOffsets(rows), offsets.show());
      for (Map<String, String> r : rows) {
        assertEquals(topic, r.get("TOPIC"));
        assertEquals("50", r.get("LOG-END-OFFSET"), offsets.show());
        assertEquals(Integer.toString(50 - Integer.parseInt(r.get("CURRENT-OFFSET"))), r.get("LAG"), offsets.show());
        assertEquals(clientId, r.get("CLIENT-ID"), offsets.show());
        assertTrue(r.get("CONSUMER-ID").startsWith(clientId + "-"), offsets.show());
        assertEquals("/127.0.0.1", r.get("HOST"), "the member's address as the coordinator saw it\n" + offsets.show());
      }
      Result offsetsOpt = consumerGroups("--describe", "--group", group, "--offsets");
      assertEquals(currentOffsets(rows), currentOffsets(table(offsetsOpt, "GROUP")), offsetsOpt.show());

      Result members = consumerGroups("--describe", "--group", group, "--members");
      ok(members);
      List<Map<String, String>> mrows = table(members, "GROUP");
      assertEquals(1, mrows.size(), members.show());
      assertEquals(clientId, mrows.get(0).get("CLIENT-ID"), members.show());
      assertEquals("/127.0.0.1", mrows.get(0).get("HOST"), members.show());
      assertEquals("2", mrows.get(0).get("#PARTITIONS"), members.show());
      Result verbose = consumerGroups("--describe", "--group", group, "--members", "--verbose");
      assertContains(verbose, topic + ":0,1");

      Result state = consumerGroups("--describe", "--group", group, "--state");
      ok(state);
      List<Map<String, String>> srows = table(state, "GROUP");
      assertEquals(1, srows.size(), state.show());
      assertEquals("Stable", srows.get(0).get("STATE"), state.show());
      assertEquals("1", srows.get(0).get("#MEMBERS"), state.show());
      assertEquals("range", srows.get(0).get("ASSIGNMENT-STRATEGY"), state.show());

      // An active group can be neither reset nor deleted.
      Result reset = consumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute");
      assertContains(reset, "Assignments can only be reset if the group '" + group + "' is inactive, but the current state is Stable.");
      Result delete = consumerGroups("--delete", "--group", group);
      assertContains(delete, "Group '" + group + "' could not be deleted due to:");
      assertContains(delete, "GroupNotEmptyException");
      assertEquals(Map.of("0", "20", "1", "35"), committed(group));
    }

    Result state = await(() -> consumerGroups("--describe", "--group", group, "--state"),
        r -> table(r, "GROUP").stream().anyMatch(row -> "Empty".equals(row.get("STATE"))));
    List<Map<String, String>> srows = table(state, "GROUP");
    assertEquals(1, srows.size(), state.show());
    assertEquals("Empty", srows.get(0).get("STATE"), state.show());
    assertEquals("0", srows.get(0).get("#MEMBERS"), state.show());
    Result offsets = consumerGroups("--describe", "--group", group);
    assertTrue(offsets.err().contains("Consumer group '" + group + "' has no active members."), offsets.show());
    assertEquals(Map.of("0", "20", "1", "35"), currentOffsets(table(offsets, "GROUP")), offsets.show());
    for (Map<String, String> r : table(offsets, "GROUP")) {
      assertEquals("-", r.get("CONSUMER-ID"), offsets.show());
    }

    // --reset-offsets: a dry run (the default) prints the plan and changes nothing.
    Result dry = consumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest");
    assertEquals(Map.of("0", "0", "1", "0"), newOffsets(dry), dry.show());
    assertEquals(Map.of("0", "20", "1", "35"), committed(group), "a dry run changed the offsets");

    Result r = consumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute");
    assertEquals(Map.of("0", "0", "1", "0"), newOffsets(r), r.show());
    assertEquals(Map.of("0", "0", "1", "0"), committed(group));

    r = consumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--to-offset", "7", "--execute");
    assertEquals(Map.of("0", "7", "1", "7"), newOffsets(r), r.show());
    assertEquals(Map.of("0", "7", "1", "7"), committed(group));

    r = consumerGroups("--reset-offsets", "--group", group, "--topic", topic + ":1", "--shift-by", "5", "--execute");
    assertEquals(Map.of("1", "12"), newOffsets(r), r.show());
    assertEquals(Map.of("0", "7", "1", "12"), committed(group));

    r = consumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--shift-by", "-10", "--execute");
    assertEquals(Map.of("0", "0", "1", "2"), newOffsets(r), "shifted below the start: clamped to it\n" + r.show());
    assertEquals(Map.of("0", "0", "1", "2"), committed(group));

    r = consumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--to-offset", "70", "--execute");
    assertEquals(Map.of("0", "50", "1", "50"), newOffsets(r), "beyond the end: clamped to it\n" + r.show());

    r = consumerGroups("--reset-offsets", "--group", group, "--all-topics", "--to-latest", "--dry-run");
    assertEquals(Map.of("0", "50", "1", "50"), newOffsets(r), r.show());

    // The describe output follows the committed offsets.
    offsets = consumerGroups("--describe", "--group", group, "--offsets");
    assertEquals(Map.of("0", "50", "1", "50"), currentOffsets(table(offsets, "GROUP")), offsets.show());

    // --delete-offsets of one partition, then of a partition the group has no offset for.
    Result delOffsets = consumerGroups("--delete-offsets", "--group", group, "--topic", topic + ":0");
    assertContains(delOffsets, "Request succeeded for deleting offsets from group " + group + ".");
    List<Map<String, String>> drows = table(delOffsets, "TOPIC");
    assertEquals(1, drows.size(), delOffsets.show());
    assertEquals("0", drows.get(0).get("PARTITION"));
    assertEquals("Successful", drows.get(0).get("STATUS"), delOffsets.show());
    assertEquals(Map.of("1", "50"), committed(group));

    // --delete of the empty group: gone from --list and from describe.
    Result delete = consumerGroups("--delete", "--group", group);
    assertContains(delete, "Deletion of requested consumer groups ('" + group + "') was successful.");
    Result list = await(() -> consumerGroups("--list"), res -> !res.lines().contains(group));
    assertFalse(list.lines().contains(group), list.show());
    Result gone = consumerGroups("--describe", "--group", group);
    assertContains(gone, "GroupIdNotFoundException: Group " + group + " not found.");
    assertEquals(Map.of(), committed(group), "offsets remain after the group was deleted");
  }
}
