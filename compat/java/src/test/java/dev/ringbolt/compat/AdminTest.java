package dev.ringbolt.compat;

import static dev.ringbolt.compat.ClientsTest.BOOTSTRAP;
import static dev.ringbolt.compat.ClientsTest.admin;
import static dev.ringbolt.compat.ClientsTest.createTopic;
import static dev.ringbolt.compat.ClientsTest.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.errors.ThrottlingQuotaExceededException;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.ConfigEntry.ConfigSource;
import org.apache.kafka.clients.admin.DeletedRecords;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.DescribeConfigsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;
import org.apache.kafka.common.errors.OffsetOutOfRangeException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The admin side of kafka-clients 4.3 (issue 17): createPartitions, incremental config changes on
 * topics and brokers with describeConfigs' sources, synonyms and documentation, deleteRecords,
 * describeLogDirs, describeCluster, client quotas with a measured throttle, electLeaders and the
 * reassignment APIs of a single node. Every test checks what the change does to the data path (a
 * producer writing to a new partition, a consumer starting at the new log start, a throttled
 * producer), not only the admin answer.
 *
 * <p>The broker must have been started with {@code num.partitions=1} in its static configuration
 * (Ringbolt: {@code --config compat/java/broker.toml}; the reference Kafka: its server.properties),
 * which {@link #describeBrokerConfigsSourcesAndSynonyms} reads back as STATIC_BROKER_CONFIG. Tests
 * that change a broker-wide setting restore it, since the reference run shares one broker between
 * all suites.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class AdminTest {
  static final long T = 30; // seconds for any admin future

  static <V> V get(org.apache.kafka.common.KafkaFuture<V> f) throws Exception {
    return f.get(T, TimeUnit.SECONDS);
  }

  /** The cause of the exception the future completes with; fails if it completes normally. */
  static Throwable failure(org.apache.kafka.common.KafkaFuture<?> f) {
    ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(T, TimeUnit.SECONDS));
    return e.getCause();
  }

  static KafkaProducer<byte[], byte[]> producer(Map<String, Object> extra) {
    Map<String, Object> p = new HashMap<>();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    p.putAll(extra);
    return new KafkaProducer<>(p, new ByteArraySerializer(), new ByteArraySerializer());
  }

  static KafkaConsumer<byte[], byte[]> consumer(Map<String, Object> extra) {
    Map<String, Object> p = new HashMap<>();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.putAll(extra);
    return new KafkaConsumer<>(p, new ByteArrayDeserializer(), new ByteArrayDeserializer());
  }

  /** Writes `count` records of `size` bytes to one partition, acks=all; returns their offsets. */
  static List<Long> produce(String topic, int partition, int count, int size) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
      List<Future<RecordMetadata>> fs = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        fs.add(p.send(new ProducerRecord<>(topic, partition, null, value(i, size))));
      }
      List<Long> offsets = new ArrayList<>();
      for (Future<RecordMetadata> f : fs) {
        offsets.add(f.get(T, TimeUnit.SECONDS).offset());
      }
      return offsets;
    }
  }

  static byte[] value(int i, int size) {
    byte[] v = new byte[size];
    byte[] head = ("record " + i + " ").getBytes(StandardCharsets.UTF_8);
    for (int j = 0; j < size; j++) {
      v[j] = j < head.length ? head[j] : (byte) ('a' + (i + j) % 26);
    }
    return v;
  }

  /** Reads one partition from `from` until `want` records or 30 s; returns them. */
  static List<ConsumerRecord<byte[], byte[]>> read(TopicPartition tp, Long from, int want) {
    List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
    try (KafkaConsumer<byte[], byte[]> c = consumer(Map.of())) {
      c.assign(List.of(tp));
      if (from == null) {
        c.seekToBeginning(List.of(tp));
      } else {
        c.seek(tp, from);
      }
      long deadline = System.currentTimeMillis() + 30_000;
      while (got.size() < want && System.currentTimeMillis() < deadline) {
        c.poll(Duration.ofMillis(200)).forEach(got::add);
      }
    }
    return got;
  }

  static int nodeId(Admin a) throws Exception {
    Collection<Node> nodes = get(a.describeCluster().nodes());
    assertEquals(1, nodes.size(), "a single-node cluster");
    return nodes.iterator().next().id();
  }

  static Config describe(Admin a, ConfigResource r, boolean synonyms, boolean docs) throws Exception {
    DescribeConfigsOptions o = new DescribeConfigsOptions().includeSynonyms(synonyms).includeDocumentation(docs);
    return get(a.describeConfigs(List.of(r), o).all()).get(r);
  }

  static String synonymsText(ConfigEntry e) {
    return e.synonyms().stream().map(s -> s.source() + ":" + s.name() + "=" + s.value())
        .collect(Collectors.joining(", ", "[", "]"));
  }

  // ---- CreatePartitions ------------------------------------------------------------------------

  /**
   * 1 → 3 partitions; a producer then writes to partition 2 and a consumer reads it back. Asking for
   * fewer or the same number of partitions, or for an unknown topic, is refused with Kafka's errors
   * and changes nothing; validateOnly changes nothing.
   */
  @Test
  void createPartitions() throws Exception {
    String topic = unique("admin-parts");
    createTopic(topic, 1);
    produce(topic, 0, 5, 100);
    try (Admin a = admin()) {
      get(a.createPartitions(Map.of(topic, NewPartitions.increaseTo(2)),
          new org.apache.kafka.clients.admin.CreatePartitionsOptions().validateOnly(true)).all());
      assertEquals(1, partitions(a, topic), "validateOnly must not add partitions");

      get(a.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all());
      long deadline = System.currentTimeMillis() + 30_000;
      while (partitions(a, topic) != 3) {
        if (System.currentTimeMillis() > deadline) {
          fail("describeTopics does not show 3 partitions 30 s after createPartitions");
        }
        Thread.sleep(100);
      }
      Throwable fewer = failure(a.createPartitions(Map.of(topic, NewPartitions.increaseTo(2))).all());
      assertInstanceOf(InvalidPartitionsException.class, fewer, "reducing partitions");
      Throwable same = failure(a.createPartitions(Map.of(topic, NewPartitions.increaseTo(3))).all());
      assertInstanceOf(InvalidPartitionsException.class, same, "the same partition count");
      Throwable unknown = failure(a.createPartitions(Map.of(unique("admin-nosuch"), NewPartitions.increaseTo(2))).all());
      assertInstanceOf(UnknownTopicOrPartitionException.class, unknown, "an unknown topic");
      assertEquals(3, partitions(a, topic));

      TopicPartition tp2 = new TopicPartition(topic, 2);
      assertEquals(List.of(0L, 1L, 2L), produce(topic, 2, 3, 50), "offsets in the new partition");
      List<ConsumerRecord<byte[], byte[]>> got = read(tp2, null, 3);
      assertEquals(3, got.size(), "records read back from the new partition");
      for (int i = 0; i < 3; i++) {
        assertEquals(i, got.get(i).offset());
        assertEquals(new String(value(i, 50), StandardCharsets.UTF_8), new String(got.get(i).value(), StandardCharsets.UTF_8));
      }
      // The old partition is untouched.
      TopicPartition tp0 = new TopicPartition(topic, 0);
      assertEquals(5L, get(a.listOffsets(Map.of(tp0, OffsetSpec.latest())).partitionResult(tp0)).offset());
    }
  }

  static int partitions(Admin a, String topic) throws Exception {
    TopicDescription d = get(a.describeTopics(List.of(topic)).allTopicNames()).get(topic);
    return d.partitions().size();
  }

  // ---- IncrementalAlterConfigs / DescribeConfigs on a topic -------------------------------------

  static void alter(Admin a, ConfigResource r, AlterConfigOp... ops) throws Exception {
    get(a.incrementalAlterConfigs(Map.of(r, List.of(ops))).all());
  }

  static AlterConfigOp op(String name, String value, AlterConfigOp.OpType type) {
    return new AlterConfigOp(new ConfigEntry(name, value), type);
  }

  /**
   * SET, APPEND, SUBTRACT and DELETE on a topic, each seen by describeConfigs with its source; the
   * change is in effect without a restart (a segment.bytes change rolls segments the way describe
   * says). Bad values, unknown names and validateOnly change nothing.
   */
  @Test
  void incrementalAlterTopicConfigs() throws Exception {
    String topic = unique("admin-cfg");
    createTopic(topic, 1);
    ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    try (Admin a = admin()) {
      Config before = describe(a, r, false, false);
      ConfigEntry ret = before.get(TopicConfig.RETENTION_MS_CONFIG);
      assertEquals("604800000", ret.value(), "Kafka's default retention.ms");
      assertEquals(ConfigSource.DEFAULT_CONFIG, ret.source());
      assertEquals("delete", before.get(TopicConfig.CLEANUP_POLICY_CONFIG).value());

      alter(a, r, op(TopicConfig.RETENTION_MS_CONFIG, "3600000", AlterConfigOp.OpType.SET));
      ConfigEntry e = awaitConfig(a, r, TopicConfig.RETENTION_MS_CONFIG, "3600000");
      assertEquals(ConfigSource.DYNAMIC_TOPIC_CONFIG, e.source());

      // APPEND to the default list value, then SUBTRACT: cleanup.policy delete → delete,compact → compact.
      alter(a, r, op(TopicConfig.CLEANUP_POLICY_CONFIG, "compact", AlterConfigOp.OpType.APPEND));
      e = awaitConfig(a, r, TopicConfig.CLEANUP_POLICY_CONFIG, "delete,compact");
      assertEquals(ConfigSource.DYNAMIC_TOPIC_CONFIG, e.source());
      alter(a, r, op(TopicConfig.CLEANUP_POLICY_CONFIG, "delete", AlterConfigOp.OpType.SUBTRACT));
      awaitConfig(a, r, TopicConfig.CLEANUP_POLICY_CONFIG, "compact");

      // Several operations in one request; the others stay.
      alter(a, r, op(TopicConfig.SEGMENT_BYTES_CONFIG, "1048576", AlterConfigOp.OpType.SET),
          op(TopicConfig.MAX_MESSAGE_BYTES_CONFIG, "200000", AlterConfigOp.OpType.SET));
      awaitConfig(a, r, TopicConfig.SEGMENT_BYTES_CONFIG, "1048576");
      Config c = describe(a, r, false, false);
      assertEquals("1048576", c.get(TopicConfig.SEGMENT_BYTES_CONFIG).value());
      assertEquals("200000", c.get(TopicConfig.MAX_MESSAGE_BYTES_CONFIG).value());
      assertEquals("3600000", c.get(TopicConfig.RETENTION_MS_CONFIG).value());

      // Bad input: each refused with InvalidConfigurationException, and nothing of the request applied.
      Map<String, List<AlterConfigOp>> bad = new java.util.LinkedHashMap<>();
      bad.put("a non-number", List.of(op(TopicConfig.RETENTION_MS_CONFIG, "soon", AlterConfigOp.OpType.SET)));
      bad.put("a bad enum value", List.of(op(TopicConfig.CLEANUP_POLICY_CONFIG, "shred", AlterConfigOp.OpType.SET)));
      bad.put("below the minimum", List.of(op(TopicConfig.MIN_CLEANABLE_DIRTY_RATIO_CONFIG, "1.5", AlterConfigOp.OpType.SET)));
      bad.put("segment.bytes below its minimum", List.of(op(TopicConfig.SEGMENT_BYTES_CONFIG, "10", AlterConfigOp.OpType.SET)));
      bad.put("an unknown name", List.of(op("no.such.config", "1", AlterConfigOp.OpType.SET)));
      bad.put("a valid change with a bad one", List.of(op(TopicConfig.RETENTION_MS_CONFIG, "7200000", AlterConfigOp.OpType.SET),
          op(TopicConfig.MAX_MESSAGE_BYTES_CONFIG, "-5", AlterConfigOp.OpType.SET)));
      for (Map.Entry<String, List<AlterConfigOp>> b : bad.entrySet()) {
        Throwable t = failure(a.incrementalAlterConfigs(Map.of(r, b.getValue())).all());
        assertInstanceOf(InvalidConfigurationException.class, t, b.getKey() + ": " + t);
      }
      Throwable appendScalar = failure(a.incrementalAlterConfigs(
          Map.of(r, List.of(op(TopicConfig.RETENTION_MS_CONFIG, "5", AlterConfigOp.OpType.APPEND)))).all());
      assertInstanceOf(InvalidConfigurationException.class, appendScalar, "APPEND to a non-list config: " + appendScalar);
      get(a.incrementalAlterConfigs(Map.of(r, List.of(op(TopicConfig.RETENTION_MS_CONFIG, "60000", AlterConfigOp.OpType.SET))),
          new AlterConfigsOptions().validateOnly(true)).all());
      Config after = describe(a, r, false, false);
      assertEquals("3600000", after.get(TopicConfig.RETENTION_MS_CONFIG).value(), "bad or validate-only requests changed retention.ms");
      assertEquals("200000", after.get(TopicConfig.MAX_MESSAGE_BYTES_CONFIG).value());
      assertEquals("compact", after.get(TopicConfig.CLEANUP_POLICY_CONFIG).value());

      // DELETE returns to the default, with its source.
      alter(a, r, op(TopicConfig.RETENTION_MS_CONFIG, null, AlterConfigOp.OpType.DELETE),
          op(TopicConfig.CLEANUP_POLICY_CONFIG, null, AlterConfigOp.OpType.DELETE));
      awaitConfig(a, r, TopicConfig.RETENTION_MS_CONFIG, "604800000");
      c = describe(a, r, false, false);
      assertEquals("604800000", c.get(TopicConfig.RETENTION_MS_CONFIG).value());
      assertEquals(ConfigSource.DEFAULT_CONFIG, c.get(TopicConfig.RETENTION_MS_CONFIG).source());
      assertEquals("delete", c.get(TopicConfig.CLEANUP_POLICY_CONFIG).value());
      assertEquals(ConfigSource.DYNAMIC_TOPIC_CONFIG, c.get(TopicConfig.SEGMENT_BYTES_CONFIG).source());
    }
  }

  /**
   * max.message.bytes lowered at runtime applies to the running partition: a record above it is
   * refused (RecordTooLargeException), one below it is accepted.
   */
  @Test
  void topicConfigAppliesWithoutRestart() throws Exception {
    String topic = unique("admin-cfg-live");
    createTopic(topic, 1);
    produce(topic, 0, 1, 5000);
    ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
    try (Admin a = admin()) {
      alter(a, r, op(TopicConfig.MAX_MESSAGE_BYTES_CONFIG, "2000", AlterConfigOp.OpType.SET));
      awaitConfig(a, r, TopicConfig.MAX_MESSAGE_BYTES_CONFIG, "2000");
    }
    try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.RETRIES_CONFIG, "0"))) {
      ExecutionException e = assertThrows(ExecutionException.class,
          () -> p.send(new ProducerRecord<>(topic, 0, null, value(1, 5000))).get(T, TimeUnit.SECONDS));
      assertInstanceOf(org.apache.kafka.common.errors.RecordTooLargeException.class, e.getCause());
      assertEquals(1L, p.send(new ProducerRecord<>(topic, 0, null, value(2, 500))).get(T, TimeUnit.SECONDS).offset());
    }
  }

  /**
   * describeConfigs of a topic: every topic config kafka-clients names (TopicConfig), sources,
   * synonyms (the topic override, then the broker settings it falls back to) and documentation
   * only when asked for.
   */
  @Test
  void describeTopicConfigsSynonymsAndDocumentation() throws Exception {
    String topic = unique("admin-desc");
    try (Admin a = admin()) {
      get(a.createTopics(List.of(new org.apache.kafka.clients.admin.NewTopic(topic, 1, (short) 1)
          .configs(Map.of(TopicConfig.RETENTION_MS_CONFIG, "86400000")))).all());
      ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      Config plain = describe(a, r, false, false);
      Set<String> names = plain.entries().stream().map(ConfigEntry::name).collect(Collectors.toCollection(TreeSet::new));
      Set<String> missing = new TreeSet<>(topicConfigNames());
      missing.removeAll(names);
      assertEquals(Set.of(), missing, "topic configs kafka-clients knows that describeConfigs does not list");
      for (ConfigEntry e : plain.entries()) {
        assertTrue(e.synonyms().isEmpty(), "synonyms not requested, yet " + e.name() + " has " + synonymsText(e));
        assertNull(e.documentation(), "documentation not requested, yet " + e.name() + " has some");
        assertFalse(e.isSensitive(), e.name());
      }

      Config full = describe(a, r, true, true);
      ConfigEntry ret = full.get(TopicConfig.RETENTION_MS_CONFIG);
      assertEquals("86400000", ret.value());
      assertEquals(ConfigSource.DYNAMIC_TOPIC_CONFIG, ret.source());
      assertEquals(ConfigEntry.ConfigType.LONG, ret.type());
      assertFalse(ret.isReadOnly());
      // Kafka lists the broker synonyms from the first one that is set (ConfigHelper.configSynonyms:
      // dropWhile name != log.retention.ms): with only log.retention.hours' default behind it, the
      // topic override is the one synonym.
      assertEquals("[DYNAMIC_TOPIC_CONFIG:retention.ms=86400000]", synonymsText(ret));
      assertNotNull(ret.documentation(), "retention.ms documentation");
      assertFalse(ret.documentation().isBlank(), "retention.ms documentation");

      ConfigEntry seg = full.get(TopicConfig.SEGMENT_BYTES_CONFIG);
      assertEquals(ConfigSource.DEFAULT_CONFIG, seg.source());
      assertEquals(ConfigEntry.ConfigType.INT, seg.type());
      assertEquals(List.of("DEFAULT_CONFIG:log.segment.bytes=" + seg.value()),
          seg.synonyms().stream().map(s -> s.source() + ":" + s.name() + "=" + s.value()).collect(Collectors.toList()));
      ConfigEntry cp = full.get(TopicConfig.CLEANUP_POLICY_CONFIG);
      assertEquals(ConfigEntry.ConfigType.LIST, cp.type());
      assertEquals("log.cleanup.policy", cp.synonyms().get(0).name(), synonymsText(cp));
      for (ConfigEntry e : full.entries()) {
        assertNotNull(e.documentation(), e.name() + " has no documentation");
      }

      // Only the configs asked for.
      Config two = get(a.describeConfigs(List.of(r)).all()).get(r);
      assertTrue(two.entries().size() > 20);
    }
  }

  /** The public topic config names of kafka-clients' TopicConfig (its *_CONFIG constants). */
  static Set<String> topicConfigNames() throws IllegalAccessException {
    Set<String> out = new TreeSet<>();
    for (Field f : TopicConfig.class.getFields()) {
      if (Modifier.isStatic(f.getModifiers()) && f.getName().endsWith("_CONFIG") && f.getType() == String.class
          && !f.isAnnotationPresent(Deprecated.class)) {
        out.add((String) f.get(null));
      }
    }
    return out;
  }

  // ---- broker configs ---------------------------------------------------------------------------

  /**
   * The broker's own configs: a statically set one (num.partitions=1, given at start) is
   * STATIC_BROKER_CONFIG with the default as its synonym; an unset one is DEFAULT_CONFIG; broker
   * configs that only the broker may change are read-only.
   */
  @Test
  void describeBrokerConfigsSourcesAndSynonyms() throws Exception {
    try (Admin a = admin()) {
      ConfigResource b = new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(nodeId(a)));
      Config c = describe(a, b, true, true);
      ConfigEntry np = c.get("num.partitions");
      assertNotNull(np, "num.partitions listed");
      assertEquals("1", np.value());
      assertEquals(ConfigSource.STATIC_BROKER_CONFIG, np.source(), "num.partitions was set at start");
      assertEquals(List.of("STATIC_BROKER_CONFIG:num.partitions=1", "DEFAULT_CONFIG:num.partitions=1"),
          np.synonyms().stream().map(s -> s.source() + ":" + s.name() + "=" + s.value()).collect(Collectors.toList()));
      ConfigEntry lrm = c.get("log.retention.ms");
      assertNotNull(lrm, "log.retention.ms listed");
      ConfigEntry mmb = c.get("message.max.bytes");
      assertEquals(ConfigSource.DEFAULT_CONFIG, mmb.source());
      assertEquals("1048588", mmb.value());
      assertNotNull(mmb.documentation());
      for (String n : List.of("log.segment.bytes", "log.retention.bytes", "log.cleanup.policy", "auto.create.topics.enable",
          "log.cleaner.enable", "log.cleaner.threads", "offsets.retention.minutes", "node.id", "log.dirs")) {
        assertNotNull(c.get(n), n + " listed");
      }
      // The default-broker resource (empty name) lists only dynamic defaults: none set here.
      ConfigResource dflt = new ConfigResource(ConfigResource.Type.BROKER, "");
      for (ConfigEntry e : describe(a, dflt, false, false).entries()) {
        assertEquals(ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, e.source(), e.name());
      }
    }
  }

  /**
   * Dynamic broker configs: the cluster default (log.retention.ms) is DYNAMIC_DEFAULT_BROKER_CONFIG
   * on the broker and reaches a topic without an override, with synonyms in Kafka's order; a
   * per-broker setting wins over it (DYNAMIC_BROKER_CONFIG); bad values are refused; DELETE restores.
   */
  @Test
  void incrementalAlterBrokerConfigs() throws Exception {
    String topic = unique("admin-brokercfg");
    createTopic(topic, 1);
    try (Admin a = admin()) {
      String id = Integer.toString(nodeId(a));
      ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, id);
      ConfigResource dflt = new ConfigResource(ConfigResource.Type.BROKER, "");
      ConfigResource tr = new ConfigResource(ConfigResource.Type.TOPIC, topic);
      try {
        alter(a, dflt, op("log.retention.ms", "259200000", AlterConfigOp.OpType.SET));
        ConfigEntry d = awaitConfig(a, dflt, "log.retention.ms", "259200000");
        assertEquals(ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, d.source());
        ConfigEntry onBroker = awaitConfig(a, broker, "log.retention.ms", "259200000");
        assertEquals(ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, onBroker.source());

        ConfigEntry onTopic = awaitConfig(a, tr, TopicConfig.RETENTION_MS_CONFIG, "259200000");
        assertEquals(ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, onTopic.source());
        assertEquals("[DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=259200000, DEFAULT_CONFIG:log.retention.hours=168]",
            synonymsText(onTopic));

        alter(a, broker, op("log.retention.ms", "172800000", AlterConfigOp.OpType.SET));
        onBroker = awaitConfig(a, broker, "log.retention.ms", "172800000");
        assertEquals(ConfigSource.DYNAMIC_BROKER_CONFIG, onBroker.source());
        assertEquals("DYNAMIC_BROKER_CONFIG:log.retention.ms=172800000", synonymOf(onBroker, 0), synonymsText(onBroker));
        assertEquals("DYNAMIC_DEFAULT_BROKER_CONFIG:log.retention.ms=259200000", synonymOf(onBroker, 1), synonymsText(onBroker));
        onTopic = awaitConfig(a, tr, TopicConfig.RETENTION_MS_CONFIG, "172800000");
        assertEquals(ConfigSource.DYNAMIC_BROKER_CONFIG, onTopic.source());

        Map<String, String> bad = Map.of("log.retention.ms", "three days", "message.max.bytes", "-5",
            "log.cleaner.min.cleanable.ratio", "1.5");
        for (Map.Entry<String, String> b : bad.entrySet()) {
          Throwable t = failure(a.incrementalAlterConfigs(Map.of(broker,
              List.of(op(b.getKey(), b.getValue(), AlterConfigOp.OpType.SET)))).all());
          // Kafka answers INVALID_REQUEST for a bad broker config value (INVALID_CONFIG for a topic's).
          assertInstanceOf(InvalidRequestException.class, t, b + ": " + t);
        }
        Throwable ro = failure(a.incrementalAlterConfigs(Map.of(broker,
            List.of(op("log.dirs", "/tmp/elsewhere", AlterConfigOp.OpType.SET)))).all());
        assertInstanceOf(InvalidRequestException.class, ro, "a read-only broker config: " + ro);
        Config after = describe(a, broker, false, false);
        assertEquals("172800000", after.get("log.retention.ms").value());
        assertEquals("1048588", after.get("message.max.bytes").value());
        assertNotNull(after.get("log.cleaner.min.cleanable.ratio"), "log.cleaner.min.cleanable.ratio listed");
        assertEquals(ConfigSource.DEFAULT_CONFIG, after.get("log.cleaner.min.cleanable.ratio").source());
      } finally {
        a.incrementalAlterConfigs(Map.of(broker, List.of(op("log.retention.ms", null, AlterConfigOp.OpType.DELETE)),
            dflt, List.of(op("log.retention.ms", null, AlterConfigOp.OpType.DELETE)))).all().get(T, TimeUnit.SECONDS);
      }
      ConfigEntry back = awaitConfig(a, tr, TopicConfig.RETENTION_MS_CONFIG, "604800000");
      assertEquals(ConfigSource.DEFAULT_CONFIG, back.source());
      awaitConfig(a, dflt, "log.retention.ms", null);
    }
  }

  static String synonymOf(ConfigEntry e, int i) {
    if (e.synonyms().size() <= i) {
      return "no synonym " + i;
    }
    ConfigEntry.ConfigSynonym s = e.synonyms().get(i);
    return s.source() + ":" + s.name() + "=" + s.value();
  }

  /**
   * Kafka applies config changes through its metadata log, so a describe right after an alter may
   * not show them yet: waits up to 15 s for `name` to have `value` (null: to be absent).
   */
  static ConfigEntry awaitConfig(Admin a, ConfigResource r, String name, String value) throws Exception {
    long deadline = System.currentTimeMillis() + 15_000;
    while (true) {
      ConfigEntry e = describe(a, r, true, false).get(name);
      if (value == null ? e == null : e != null && value.equals(e.value()) || System.currentTimeMillis() > deadline) {
        assertEquals(value, e == null ? null : e.value(), r + " " + name);
        return e;
      }
      Thread.sleep(100);
    }
  }

  // ---- DeleteRecords ---------------------------------------------------------------------------

  /**
   * deleteRecords moves the log start: listOffsets earliest and a consumer from the beginning start
   * there, a fetch below it is OFFSET_OUT_OF_RANGE; beyond the high watermark is refused; -1 means
   * the high watermark.
   */
  @Test
  void deleteRecords() throws Exception {
    String topic = unique("admin-delrec");
    createTopic(topic, 2);
    TopicPartition tp = new TopicPartition(topic, 0);
    TopicPartition tp1 = new TopicPartition(topic, 1);
    produce(topic, 0, 100, 200);
    produce(topic, 1, 10, 200);
    try (Admin a = admin()) {
      DeletedRecords d = get(a.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(40))).lowWatermarks().get(tp));
      assertEquals(40L, d.lowWatermark());
      assertEquals(40L, get(a.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp)).offset());
      assertEquals(100L, get(a.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp)).offset());
      // Deleting below the current start is a no-op that reports the start.
      d = get(a.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(10))).lowWatermarks().get(tp));
      assertEquals(40L, d.lowWatermark());

      List<ConsumerRecord<byte[], byte[]>> got = read(tp, null, 60);
      assertEquals(60, got.size());
      assertEquals(40L, got.get(0).offset(), "a consumer from the beginning starts at the new log start");
      assertEquals(new String(value(40, 200), StandardCharsets.UTF_8), new String(got.get(0).value(), StandardCharsets.UTF_8));
      assertEquals(99L, got.get(59).offset());

      try (KafkaConsumer<byte[], byte[]> c = consumer(Map.of(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none"))) {
        c.assign(List.of(tp));
        assertEquals(40L, c.beginningOffsets(List.of(tp)).get(tp));
        c.seek(tp, 5);
        long deadline = System.currentTimeMillis() + 15_000;
        org.apache.kafka.clients.consumer.OffsetOutOfRangeException oor = null;
        while (oor == null && System.currentTimeMillis() < deadline) {
          try {
            assertTrue(c.poll(Duration.ofMillis(200)).isEmpty(), "records below the log start");
          } catch (org.apache.kafka.clients.consumer.OffsetOutOfRangeException e) {
            oor = e;
          }
        }
        assertNotNull(oor, "fetching offset 5 below the log start 40 must be out of range");
        assertEquals(Map.of(tp, 5L), oor.offsetOutOfRangePartitions());
      }

      Throwable beyond = failure(a.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(101))).lowWatermarks().get(tp));
      assertInstanceOf(OffsetOutOfRangeException.class, beyond, "beyond the high watermark");
      assertEquals(40L, get(a.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp)).offset(), "nothing changed");

      d = get(a.deleteRecords(Map.of(tp1, RecordsToDelete.beforeOffset(-1))).lowWatermarks().get(tp1));
      assertEquals(10L, d.lowWatermark(), "-1: up to the high watermark");
      assertEquals(10L, get(a.listOffsets(Map.of(tp1, OffsetSpec.earliest())).partitionResult(tp1)).offset());
      // New records after deleting everything: offsets continue.
      assertEquals(List.of(10L, 11L), produce(topic, 1, 2, 50));
      List<ConsumerRecord<byte[], byte[]>> rest = read(tp1, null, 2);
      assertEquals(List.of(10L, 11L), rest.stream().map(ConsumerRecord::offset).collect(Collectors.toList()));
    }
  }

  // ---- DescribeLogDirs / DescribeCluster ---------------------------------------------------------

  /** A partition with data has at least its payload's size on disk, no lag, not a future replica. */
  @Test
  void describeLogDirs() throws Exception {
    String topic = unique("admin-logdirs");
    createTopic(topic, 2);
    produce(topic, 0, 50, 1000);
    TopicPartition tp0 = new TopicPartition(topic, 0);
    TopicPartition tp1 = new TopicPartition(topic, 1);
    try (Admin a = admin()) {
      int id = nodeId(a);
      Map<String, LogDirDescription> dirs = get(a.describeLogDirs(List.of(id)).allDescriptions()).get(id);
      assertNotNull(dirs, "log dirs of node " + id);
      assertFalse(dirs.isEmpty());
      ReplicaInfo r0 = null;
      ReplicaInfo r1 = null;
      for (Map.Entry<String, LogDirDescription> e : dirs.entrySet()) {
        assertTrue(e.getKey().startsWith("/"), "an absolute log dir path: " + e.getKey());
        LogDirDescription d = e.getValue();
        assertNull(d.error(), "log dir " + e.getKey() + " error");
        assertTrue(d.totalBytes().isPresent() && d.totalBytes().getAsLong() > 0, "total bytes of the volume");
        assertTrue(d.usableBytes().isPresent() && d.usableBytes().getAsLong() > 0, "usable bytes of the volume");
        r0 = r0 != null ? r0 : d.replicaInfos().get(tp0);
        r1 = r1 != null ? r1 : d.replicaInfos().get(tp1);
      }
      assertNotNull(r0, topic + "-0 in a log dir");
      assertNotNull(r1, topic + "-1 in a log dir");
      assertTrue(r0.size() >= 50 * 1000, "size of 50 KB of records: " + r0.size());
      assertTrue(r0.size() < 1_000_000, "size of 50 KB of records: " + r0.size());
      assertEquals(0L, r0.offsetLag());
      assertFalse(r0.isFuture());
      assertEquals(0L, r1.size(), "an empty partition");
    }
  }

  @Test
  void describeCluster() throws Exception {
    try (Admin a = admin()) {
      DescribeClusterResult c = a.describeCluster();
      String clusterId = get(c.clusterId());
      assertNotNull(clusterId);
      assertFalse(clusterId.isEmpty());
      Collection<Node> nodes = get(c.nodes());
      assertEquals(1, nodes.size());
      Node n = nodes.iterator().next();
      assertEquals(BOOTSTRAP, n.host() + ":" + n.port(), "the advertised listener");
      Node controller = get(c.controller());
      assertNotNull(controller);
      assertEquals(n.id(), controller.id(), "the one node is the controller clients see");
      assertEquals(clusterId, get(a.describeCluster().clusterId()), "a stable cluster id");
    }
  }

  /**
   * listConfigResources (ListConfigResources, KIP-1142; kafka-configs uses it for groups and client
   * metrics): the topics and the broker are listed under their types.
   */
  @Test
  void listConfigResources() throws Exception {
    String topic = unique("admin-listcfg");
    createTopic(topic, 1);
    try (Admin a = admin()) {
      String id = Integer.toString(nodeId(a));
      Collection<ConfigResource> all = get(a.listConfigResources(Set.of(ConfigResource.Type.TOPIC, ConfigResource.Type.BROKER),
          new org.apache.kafka.clients.admin.ListConfigResourcesOptions()).all());
      assertTrue(all.contains(new ConfigResource(ConfigResource.Type.TOPIC, topic)), "topic " + topic + " in " + all);
      assertTrue(all.contains(new ConfigResource(ConfigResource.Type.BROKER, id)), "broker " + id + " in " + all);
      Collection<ConfigResource> topics = get(a.listConfigResources(Set.of(ConfigResource.Type.TOPIC),
          new org.apache.kafka.clients.admin.ListConfigResourcesOptions()).all());
      assertTrue(topics.stream().allMatch(r -> r.type() == ConfigResource.Type.TOPIC), topics.toString());
      assertTrue(topics.contains(new ConfigResource(ConfigResource.Type.TOPIC, topic)));
    }
  }

  // ---- ElectLeaders / reassignments ------------------------------------------------------------

  @Test
  void electLeadersAndReassignments() throws Exception {
    String topic = unique("admin-elect");
    createTopic(topic, 2);
    TopicPartition tp0 = new TopicPartition(topic, 0);
    TopicPartition tp1 = new TopicPartition(topic, 1);
    try (Admin a = admin()) {
      for (ElectionType type : ElectionType.values()) {
        Map<TopicPartition, Optional<Throwable>> r = get(a.electLeaders(type, Set.of(tp0, tp1)).partitions());
        assertEquals(Set.of(tp0, tp1), r.keySet(), type.toString());
        for (Optional<Throwable> e : r.values()) {
          assertTrue(e.isPresent(), type + ": the one replica already leads");
          assertInstanceOf(ElectionNotNeededException.class, e.get(), type.toString());
        }
      }
      TopicPartition none = new TopicPartition(unique("admin-nosuch"), 0);
      Optional<Throwable> u = get(a.electLeaders(ElectionType.PREFERRED, Set.of(none)).partitions()).get(none);
      assertTrue(u.isPresent());
      assertInstanceOf(UnknownTopicOrPartitionException.class, u.get());

      assertEquals(Map.of(), get(a.listPartitionReassignments().reassignments()), "nothing is being reassigned");
      assertEquals(Map.of(), get(a.listPartitionReassignments(Set.of(tp0)).reassignments()));
      Map<TopicPartition, Optional<NewPartitionReassignment>> cancel = new HashMap<>();
      cancel.put(tp0, Optional.empty());
      Throwable t = failure(a.alterPartitionReassignments(cancel).all());
      assertInstanceOf(NoReassignmentInProgressException.class, t, "cancelling a reassignment that does not exist");
    }
  }

  // ---- client quotas ---------------------------------------------------------------------------

  static final double RATE = 100 * 1024; // bytes/s
  static final int QUOTA_RECORDS = 1280; // of 1 KB: 1.25 MB
  static final double MIN_SECONDS = 3;

  /** What a throttled client measured. */
  record Throttled(double seconds, int records, double throttleAvg, double throttleMax) {}

  /**
   * Client-id quotas, described back and enforced, produce and fetch at once (two clients, so the
   * test takes the time of one): a producer_byte_rate of 100 KB/s for one client id and a
   * consumer_byte_rate of 100 KB/s for another; the producer sends 1.25 MB, the consumer reads 1.25 MB.
   * Kafka measures a rate over an 11 s window (quota.window.num × quota.window.size.seconds, at
   * least 10 full samples), so about 1 MB passes at full speed (1 MB alone is barely throttled) and
   * the rest is throttled: against Kafka 4.3 the producer takes 4-6 s, the consumer about 12 s
   * (unthrottled, both well under 1 s). The test asserts a lower bound only (3 s), for noise. Each
   * client's throttle-time metrics are > 0: the broker answered with throttle_time_ms. Removing the
   * quotas describes as empty.
   */
  @Test
  @Timeout(value = 180, unit = TimeUnit.SECONDS)
  void quotasThrottleProduceAndFetch() throws Exception {
    String producerId = unique("quota-producer");
    String consumerId = unique("quota-consumer");
    String ptopic = unique("admin-quota-p");
    String ftopic = unique("admin-quota-f");
    createTopic(ptopic, 1);
    createTopic(ftopic, 1);
    produce(ftopic, 0, QUOTA_RECORDS, 1024);
    ClientQuotaEntity pe = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, producerId));
    ClientQuotaEntity ce = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, consumerId));
    java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newFixedThreadPool(2);
    try (Admin a = admin()) {
      get(a.alterClientQuotas(List.of(
          new ClientQuotaAlteration(pe, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", RATE))),
          new ClientQuotaAlteration(ce, List.of(new ClientQuotaAlteration.Op("consumer_byte_rate", RATE))))).all());
      try {
        awaitQuotas(a, ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, producerId))),
            Map.of(pe, Map.of("producer_byte_rate", RATE)));
        awaitQuotas(a, ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, consumerId))),
            Map.of(ce, Map.of("consumer_byte_rate", RATE)));

        Future<Throttled> produced = pool.submit(() -> throttledProduce(producerId, ptopic));
        Future<Throttled> fetched = pool.submit(() -> throttledFetch(consumerId, ftopic));
        Throttled p = produced.get(150, TimeUnit.SECONDS);
        Throttled f = fetched.get(150, TimeUnit.SECONDS);
        System.out.printf("produce quota: 1.25 MB at %.0f B/s took %.1f s, throttle avg %.0f ms max %.0f ms%n",
            RATE, p.seconds(), p.throttleAvg(), p.throttleMax());
        System.out.printf("fetch quota: 1.25 MB at %.0f B/s took %.1f s, throttle avg %.0f ms max %.0f ms%n",
            RATE, f.seconds(), f.throttleAvg(), f.throttleMax());
        assertEquals(QUOTA_RECORDS, f.records(), "records read under the fetch quota");
        assertTrue(p.seconds() >= MIN_SECONDS, "1.25 MB under a 100 KB/s produce quota took only " + p.seconds() + " s");
        assertTrue(p.throttleMax() > 0 && p.throttleAvg() > 0, "producer throttle time: " + p);
        assertTrue(f.seconds() >= MIN_SECONDS, "1.25 MB under a 100 KB/s fetch quota took only " + f.seconds() + " s");
        assertTrue(f.throttleMax() > 0 && f.throttleAvg() > 0, "consumer throttle time: " + f);
      } finally {
        pool.shutdownNow();
        get(a.alterClientQuotas(List.of(
            new ClientQuotaAlteration(pe, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", null))),
            new ClientQuotaAlteration(ce, List.of(new ClientQuotaAlteration.Op("consumer_byte_rate", null))))).all());
      }
      awaitQuotas(a, ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, producerId))),
          Map.of());
    }
  }

  /**
   * request_percentage (KIP-124): a client id allowed 0.001 % of a request thread (10 µs of broker
   * time per second) sends one record at a time; within a few requests the broker answers with a
   * throttle time (at most one 1 s quota window), which the producer's throttle-time metric shows.
   * A producer under another client id, without a quota, is never throttled.
   */
  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void requestQuotaThrottlesABusyProducer() throws Exception {
    String limitedId = unique("request-quota");
    String freeId = unique("no-quota");
    String topic = unique("admin-request-quota");
    createTopic(topic, 1);
    ClientQuotaEntity e = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, limitedId));
    try (Admin a = admin()) {
      get(a.alterClientQuotas(List.of(new ClientQuotaAlteration(e,
          List.of(new ClientQuotaAlteration.Op("request_percentage", 0.001))))).all());
      try {
        awaitQuotas(a, ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, limitedId))),
            Map.of(e, Map.of("request_percentage", 0.001)));
        double limitedMax = sendUntilThrottled(limitedId, topic, 200);
        assertTrue(limitedMax > 0 && limitedMax <= 1000, "throttle of the limited producer: " + limitedMax);
        double freeMax = sendUntilThrottled(freeId, topic, 200);
        assertEquals(0.0, freeMax, "a producer without a quota was throttled");
      } finally {
        get(a.alterClientQuotas(List.of(new ClientQuotaAlteration(e,
            List.of(new ClientQuotaAlteration.Op("request_percentage", null))))).all());
      }
    }
  }

  /** Sends up to `n` records one at a time; returns produce-throttle-time-max once it is > 0. */
  static double sendUntilThrottled(String clientId, String topic, int n) throws Exception {
    try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.CLIENT_ID_CONFIG, clientId,
        ProducerConfig.LINGER_MS_CONFIG, "0"))) {
      double max = 0;
      for (int i = 0; i < n && !(max > 0); i++) {
        p.send(new ProducerRecord<>(topic, 0, null, value(i, 100))).get(30, TimeUnit.SECONDS);
        max = metric(p.metrics(), "producer-metrics", "produce-throttle-time-max");
      }
      return Double.isNaN(max) ? 0 : max;
    }
  }

  /**
   * controller_mutation_rate (KIP-599): 2 partitions/s for one client id, so a bucket of 22
   * partitions (11 one-second samples). Topics of 20, 3 and 1 partitions in one createTopics
   * without retries: the first two are created (the second takes the bucket below zero), the third
   * is refused with ThrottlingQuotaExceededException and the time until the bucket is back at zero;
   * with the Admin's default retry it is created after that time. createPartitions is metered by
   * the same bucket.
   */
  @Test
  @Timeout(value = 120, unit = TimeUnit.SECONDS)
  void controllerMutationQuotaRefusesTopicsOverIt() throws Exception {
    String clientId = unique("mutation-quota");
    String ta = unique("mq-a");
    String tb = unique("mq-b");
    String tc = unique("mq-c");
    ClientQuotaEntity e = new ClientQuotaEntity(Map.of(ClientQuotaEntity.CLIENT_ID, clientId));
    try (Admin a = admin()) {
      get(a.alterClientQuotas(List.of(new ClientQuotaAlteration(e,
          List.of(new ClientQuotaAlteration.Op("controller_mutation_rate", 2.0))))).all());
      try {
        awaitQuotas(a, ClientQuotaFilter.containsOnly(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, clientId))),
            Map.of(e, Map.of("controller_mutation_rate", 2.0)));
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, clientId);
        try (Admin limited = Admin.create(p)) {
          CreateTopicsResult r = limited.createTopics(List.of(new NewTopic(ta, 20, (short) 1),
              new NewTopic(tb, 3, (short) 1), new NewTopic(tc, 1, (short) 1)),
              new CreateTopicsOptions().retryOnQuotaViolation(false));
          get(r.values().get(ta));
          get(r.values().get(tb));
          Throwable t = failure(r.values().get(tc));
          assertTrue(t instanceof ThrottlingQuotaExceededException, "third topic: " + t);
          int throttle = ((ThrottlingQuotaExceededException) t).throttleTimeMs();
          assertTrue(throttle > 0 && throttle <= 500, "throttle " + throttle + " ms for one partition at 2/s");
          long t0 = System.nanoTime();
          get(limited.createTopics(List.of(new NewTopic(tc, 1, (short) 1))).all());
          double waited = (System.nanoTime() - t0) / 1e6;
          assertTrue(waited >= throttle / 2.0, "created after the throttle with the default retry, took " + waited + " ms");
          Throwable grow = failure(limited.createPartitions(Map.of(ta, NewPartitions.increaseTo(21)),
              new CreatePartitionsOptions().retryOnQuotaViolation(false)).all());
          assertTrue(grow instanceof ThrottlingQuotaExceededException, "createPartitions over the quota: " + grow);
          assertEquals(20, get(a.describeTopics(List.of(ta)).allTopicNames()).get(ta).partitions().size());
        }
      } finally {
        get(a.alterClientQuotas(List.of(new ClientQuotaAlteration(e,
            List.of(new ClientQuotaAlteration.Op("controller_mutation_rate", null))))).all());
        a.deleteTopics(List.of(ta, tb, tc)).all().get(T, TimeUnit.SECONDS);
      }
    }
  }

  /**
   * Waits up to 15 s until describeClientQuotas answers `want` (Kafka applies an alteration through
   * its metadata log, so the broker that answers may see it a moment later); asserts it.
   */
  static Map<ClientQuotaEntity, Map<String, Double>> awaitQuotas(Admin a, ClientQuotaFilter filter,
      Map<ClientQuotaEntity, Map<String, Double>> want) throws Exception {
    long deadline = System.currentTimeMillis() + 15_000;
    while (true) {
      Map<ClientQuotaEntity, Map<String, Double>> got = get(a.describeClientQuotas(filter).entities());
      if (want.equals(got) || System.currentTimeMillis() > deadline) {
        assertEquals(want, got, "describeClientQuotas " + filter);
        return got;
      }
      Thread.sleep(100);
    }
  }

  static Throttled throttledProduce(String clientId, String topic) throws Exception {
    long t0 = System.nanoTime();
    try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.CLIENT_ID_CONFIG, clientId,
        ProducerConfig.BATCH_SIZE_CONFIG, "65536"))) {
      List<Future<RecordMetadata>> fs = new ArrayList<>();
      for (int i = 0; i < QUOTA_RECORDS; i++) {
        fs.add(p.send(new ProducerRecord<>(topic, 0, null, value(i, 1024))));
      }
      for (Future<RecordMetadata> f : fs) {
        f.get(120, TimeUnit.SECONDS);
      }
      return new Throttled((System.nanoTime() - t0) / 1e9, fs.size(),
          metric(p.metrics(), "producer-metrics", "produce-throttle-time-avg"),
          metric(p.metrics(), "producer-metrics", "produce-throttle-time-max"));
    }
  }

  static Throttled throttledFetch(String clientId, String topic) {
    TopicPartition tp = new TopicPartition(topic, 0);
    long t0 = System.nanoTime();
    int n = 0;
    try (KafkaConsumer<byte[], byte[]> c = consumer(Map.of(ConsumerConfig.CLIENT_ID_CONFIG, clientId,
        ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "65536"))) {
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      long deadline = System.currentTimeMillis() + 120_000;
      while (n < QUOTA_RECORDS && System.currentTimeMillis() < deadline) {
        n += c.poll(Duration.ofMillis(200)).count();
      }
      return new Throttled((System.nanoTime() - t0) / 1e9, n,
          metric(c.metrics(), "consumer-fetch-manager-metrics", "fetch-throttle-time-avg"),
          metric(c.metrics(), "consumer-fetch-manager-metrics", "fetch-throttle-time-max"));
    }
  }

  static double metric(Map<MetricName, ? extends Metric> metrics, String group, String name) {
    for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
      if (e.getKey().group().equals(group) && e.getKey().name().equals(name)) {
        Object v = e.getValue().metricValue();
        return v instanceof Double ? (Double) v : Double.NaN;
      }
    }
    fail("no metric " + group + "/" + name);
    return Double.NaN;
  }

  /**
   * describeClientQuotas filters (exact entity, default entity, any); bad alterations — an unknown
   * entity type, an unknown quota key, a negative rate — are refused and nothing changes.
   */
  @Test
  void clientQuotasDescribeAndBadInput() throws Exception {
    String user = unique("quota-user");
    String client = unique("quota-client");
    ClientQuotaEntity both = new ClientQuotaEntity(Map.of(ClientQuotaEntity.USER, user, ClientQuotaEntity.CLIENT_ID, client));
    ClientQuotaEntity userOnly = new ClientQuotaEntity(Map.of(ClientQuotaEntity.USER, user));
    try (Admin a = admin()) {
      get(a.alterClientQuotas(List.of(
          new ClientQuotaAlteration(both, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 2048.0),
              new ClientQuotaAlteration.Op("consumer_byte_rate", 4096.0))),
          new ClientQuotaAlteration(userOnly, List.of(new ClientQuotaAlteration.Op("request_percentage", 50.0))))).all());
      try {
        ClientQuotaFilter exact = ClientQuotaFilter.containsOnly(List.of(
            ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, user),
            ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, client)));
        awaitQuotas(a, exact, Map.of(both, Map.of("producer_byte_rate", 2048.0, "consumer_byte_rate", 4096.0)));
        ClientQuotaFilter ofUser = ClientQuotaFilter.contains(List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, user)));
        Map<ClientQuotaEntity, Map<String, Double>> all = awaitQuotas(a, ofUser, Map.of(
            both, Map.of("producer_byte_rate", 2048.0, "consumer_byte_rate", 4096.0),
            userOnly, Map.of("request_percentage", 50.0)));
        // The client-id component alone, with the user unspecified, does not match the user entities.
        assertEquals(Map.of(), get(a.describeClientQuotas(ClientQuotaFilter.containsOnly(List.of(
            ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.CLIENT_ID, client)))).entities()));

        List<ClientQuotaAlteration> bad = List.of(
            new ClientQuotaAlteration(new ClientQuotaEntity(Map.of("bogus-entity", "x")),
                List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1.0))),
            new ClientQuotaAlteration(userOnly, List.of(new ClientQuotaAlteration.Op("no_such_quota", 1.0))),
            new ClientQuotaAlteration(userOnly, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", -1.0))));
        for (ClientQuotaAlteration b : bad) {
          Throwable t = failure(a.alterClientQuotas(List.of(b)).all());
          assertTrue(t instanceof InvalidRequestException || t instanceof InvalidConfigurationException,
              "refused " + b + ": " + t);
        }
        assertEquals(all, get(a.describeClientQuotas(ofUser).entities()), "nothing changed by refused alterations");
      } finally {
        get(a.alterClientQuotas(List.of(
            new ClientQuotaAlteration(both, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", null),
                new ClientQuotaAlteration.Op("consumer_byte_rate", null))),
            new ClientQuotaAlteration(userOnly, List.of(new ClientQuotaAlteration.Op("request_percentage", null))))).all());
      }
    }
  }
}
