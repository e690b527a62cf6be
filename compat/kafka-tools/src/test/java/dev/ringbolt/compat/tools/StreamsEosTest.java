package dev.ringbolt.compat.tools;

import static dev.ringbolt.compat.tools.Tools.BOOTSTRAP;
import static dev.ringbolt.compat.tools.Tools.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Kafka Streams 4.3 with processing.guarantee=exactly_once_v2 against the broker (issue 18,
 * optional group `transactions`): WordCountApp, run as a real application in a child JVM, counts
 * the words of known input; mid-stream, while input still arrives, the JVM is killed with SIGKILL
 * (no close, no commit: its open transaction is left to the broker) and a second instance starts on
 * the same state directory, fences the first's transactional producer, restores its store from the
 * changelog and goes on. A read_committed consumer of the output must then see, for every word,
 * the counts 1, 2, ..., n exactly: a duplicate or a lost update from the crash shows as a repeated
 * or missing count, a wrong total as a wrong n.
 *
 * <p>This needs from the broker transactions (InitProducerId with a transactional id, AddPartitionsToTxn,
 * AddOffsetsToTxn, TxnOffsetCommit, EndTxn, read_committed Fetch), consumer groups, and the admin
 * APIs Streams uses for its internal topics (CreateTopics, DescribeTopics, DescribeConfigs,
 * DeleteRecords on the repartition topic).
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class StreamsEosTest {
  static final String[] VOCABULARY = {"apple", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron", "iris",
      "juniper", "kelp", "lumen"};
  static final int LINES = 600;
  static final int WORDS_PER_LINE = 5;

  final List<Process> apps = new ArrayList<>();
  Path appLog;

  @AfterEach
  void stopApps() throws InterruptedException {
    for (Process p : apps) {
      if (p.isAlive()) {
        p.destroyForcibly();
        p.waitFor(30, TimeUnit.SECONDS);
      }
    }
  }

  static String line(int i) {
    StringBuilder b = new StringBuilder();
    for (int j = 0; j < WORDS_PER_LINE; j++) {
      if (j > 0) {
        b.append(' ');
      }
      b.append(VOCABULARY[(i * 7 + j * j * 3 + i / 13) % VOCABULARY.length]);
    }
    return b.toString();
  }

  static Map<String, Long> expectedCounts() {
    Map<String, Long> m = new TreeMap<>();
    for (int i = 0; i < LINES; i++) {
      for (String w : line(i).split(" ")) {
        m.merge(w, 1L, Long::sum);
      }
    }
    return m;
  }

  Process startApp(String appId, String in, String out, Path stateDir, int n) throws IOException {
    appLog = Path.of("target", "streams-app-" + appId + "-" + n + ".log").toAbsolutePath();
    String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    Path log4j = Path.of("src/test/resources/connect-log4j2.properties").toAbsolutePath();
    ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xms128m", "-Xmx384m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Dlog4j2.configurationFile=" + log4j.toUri(), "-cp", cp,
        WordCountApp.class.getName(), BOOTSTRAP, appId, in, out, stateDir.toString());
    pb.redirectErrorStream(true).redirectOutput(appLog.toFile());
    Process p = pb.start();
    apps.add(p);
    System.out.println("streams app " + n + ": pid " + p.pid() + ", log " + appLog);
    return p;
  }

  String logTail() {
    try {
      List<String> lines = Files.readAllLines(appLog, StandardCharsets.UTF_8);
      return String.join("\n", lines.subList(Math.max(0, lines.size() - 60), lines.size()));
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }

  void await(String what, int seconds, Process app, BooleanSupplier done) throws InterruptedException {
    long deadline = System.currentTimeMillis() + seconds * 1000L;
    while (!done.getAsBoolean()) {
      if (app != null && !app.isAlive()) {
        org.junit.jupiter.api.Assertions.fail("the streams app exited (" + app.exitValue() + ") while waiting for " + what
            + "\n---- last lines of " + appLog + "\n" + logTail());
      }
      if (System.currentTimeMillis() > deadline) {
        org.junit.jupiter.api.Assertions.fail("timed out after " + seconds + " s waiting for " + what
            + "\n---- last lines of " + appLog + "\n" + logTail());
      }
      Thread.sleep(200);
    }
  }

  /** A read_committed consumer of the output that accumulates, per word, the counts in offset order. */
  static final class OutputReader implements AutoCloseable {
    final KafkaConsumer<String, Long> consumer;
    final Map<String, List<Long>> counts = new TreeMap<>();
    int records;

    OutputReader(String topic) {
      Properties p = new Properties();
      p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
      p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
      consumer = new KafkaConsumer<>(p, new StringDeserializer(), new LongDeserializer());
      List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
      consumer.assign(tps);
      consumer.seekToBeginning(tps);
    }

    void poll() {
      for (ConsumerRecord<String, Long> r : consumer.poll(Duration.ofMillis(100))) {
        counts.computeIfAbsent(r.key(), k -> new ArrayList<>()).add(r.value());
        records++;
      }
    }

    boolean reached(Map<String, Long> want) {
      poll();
      for (Map.Entry<String, Long> e : want.entrySet()) {
        List<Long> got = counts.get(e.getKey());
        if (got == null || got.isEmpty() || got.get(got.size() - 1) < e.getValue()) {
          return false;
        }
      }
      return true;
    }

    @Override
    public void close() {
      consumer.close();
    }
  }

  /** The partitions' end offsets for a consumer of that isolation level: LSO (read_committed) or high watermark. */
  static Map<TopicPartition, Long> endOffsets(String topic, IsolationLevel isolation) throws Exception {
    Map<TopicPartition, OffsetSpec> spec = Map.of(new TopicPartition(topic, 0), OffsetSpec.latest(),
        new TopicPartition(topic, 1), OffsetSpec.latest());
    try (Admin a = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP))) {
      Map<TopicPartition, Long> out = new TreeMap<>((x, y) -> Integer.compare(x.partition(), y.partition()));
      a.listOffsets(spec, new ListOffsetsOptions(isolation)).all().get(30, TimeUnit.SECONDS)
          .forEach((tp, info) -> out.put(tp, info.offset()));
      return out;
    }
  }

  static boolean openTransaction(String topic) {
    Map<TopicPartition, Long> lso;
    Map<TopicPartition, Long> hw;
    try {
      lso = endOffsets(topic, IsolationLevel.READ_COMMITTED);
      hw = endOffsets(topic, IsolationLevel.READ_UNCOMMITTED);
    } catch (Exception e) {
      throw new RuntimeException(e);
    }
    return lso.entrySet().stream().anyMatch(e -> e.getValue() < hw.get(e.getKey()));
  }

  @Test
  void wordCountExactlyOnceAcrossKill(@TempDir Path stateDir) throws Exception {
    Assumptions.assumeTrue("1".equals(System.getenv("RINGBOLT_COMPAT_TRANSACTIONS")),
        "transactions (issue 18): set RINGBOLT_COMPAT_TRANSACTIONS=1");
    String appId = unique("wordcount");
    String in = appId + "-lines";
    String out = appId + "-counts";
    try (Admin a = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP))) {
      a.createTopics(List.of(new NewTopic(in, 2, (short) 1), new NewTopic(out, 2, (short) 1))).all().get(30, TimeUnit.SECONDS);
    }
    Properties pp = new Properties();
    pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    pp.put(ProducerConfig.ACKS_CONFIG, "all");
    pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    Map<String, Long> want = expectedCounts();
    try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer());
        OutputReader reader = new OutputReader(out)) {
      int first = LINES / 3;
      for (int i = 0; i < first; i++) {
        producer.send(new ProducerRecord<>(in, "line-" + i, line(i)));
      }
      producer.flush();

      Process app1 = startApp(appId, in, out, stateDir, 1);
      await("committed output from the first instance", 120, app1, () -> {
        reader.poll();
        return reader.records >= first * WORDS_PER_LINE / 2;
      });

      // The rest of the input arrives over about 4 s; the first instance dies a second into it.
      CompletableFuture<Void> feed = CompletableFuture.runAsync(() -> {
        for (int i = first; i < LINES; i++) {
          producer.send(new ProducerRecord<>(in, "line-" + i, line(i)));
          if (i % 10 == 0) {
            producer.flush();
            try {
              Thread.sleep(100);
            } catch (InterruptedException e) {
              throw new RuntimeException(e);
            }
          }
        }
        producer.flush();
      });
      // Kill while a transaction of the first instance has output in the log: the output's last
      // stable offset (read_committed end) behind its high watermark.
      Thread.sleep(500);
      await("an open transaction of the first instance on the output", 30, app1, () -> openTransaction(out));
      app1.destroyForcibly();
      assertTrue(app1.waitFor(30, TimeUnit.SECONDS));
      reader.poll();
      int atKill = reader.records;
      System.out.println("first instance killed (SIGKILL) with " + atKill + " committed output records of "
          + LINES * WORDS_PER_LINE);
      assertTrue(atKill < LINES * WORDS_PER_LINE, "the kill came after all the output: not mid-stream");

      Process app2 = startApp(appId, in, out, stateDir, 2);
      feed.get(60, TimeUnit.SECONDS);
      await("every word's final count from the second instance", 150, app2, () -> reader.reached(want));
      // Anything more (a duplicate) would arrive within the next commits.
      long until = System.currentTimeMillis() + 3000;
      while (System.currentTimeMillis() < until) {
        reader.poll();
      }
      long all = endOffsets(out, IsolationLevel.READ_UNCOMMITTED).values().stream().mapToLong(Long::longValue).sum();
      System.out.println("output: " + reader.records + " records (read_committed), " + all
          + " offsets in the log (aborted output of the killed instance and markers included)");
      for (Map.Entry<String, Long> e : want.entrySet()) {
        List<Long> seq = new ArrayList<>();
        for (long c = 1; c <= e.getValue(); c++) {
          seq.add(c);
        }
        assertEquals(seq, reader.counts.get(e.getKey()), "counts of \"" + e.getKey() + "\" in the output");
      }
      assertEquals(want.keySet(), reader.counts.keySet(), "words in the output");
      assertEquals(LINES * WORDS_PER_LINE, reader.records, "output records: one per input word");
    }
  }
}
