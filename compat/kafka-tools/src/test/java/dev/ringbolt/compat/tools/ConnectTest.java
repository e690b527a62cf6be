package dev.ringbolt.compat.tools;

import static dev.ringbolt.compat.tools.Tools.BOOTSTRAP;
import static dev.ringbolt.compat.tools.Tools.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * A Kafka Connect 4.3 distributed worker (org.apache.kafka.connect.cli.ConnectDistributed, what
 * bin/connect-distributed.sh runs) against the broker: the worker creates its config, offset and
 * status topics itself (CreateTopics with cleanup.policy=compact; when restarted it finds them and
 * checks, with DescribeConfigs, that they are compacted and only that, else it refuses to start),
 * joins its group (a "connect" protocol group), and runs a FileStreamSource connector posted over
 * its REST API. The
 * file's lines must arrive in the topic; after a clean stop (SIGTERM: the worker commits its source
 * offsets), more lines and a restart, the connector, read back from the config topic, resumes from
 * the offsets it stored: every line exactly once, in order.
 *
 * <p>The worker is a child JVM on this test's classpath (a Kafka distribution's libs/ holds the
 * same jars), bound to 127.0.0.1 on a free port, its log in target/connect-worker-N.log. Every wait
 * has a deadline; a failure shows the tail of the worker's log.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class ConnectTest {
  static final ObjectMapper JSON = new ObjectMapper();
  static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  Process worker;
  Path workerLog;
  int workers;

  @AfterEach
  void stopWorker() throws InterruptedException {
    if (worker != null && worker.isAlive()) {
      worker.destroyForcibly();
      worker.waitFor(30, TimeUnit.SECONDS);
    }
  }

  static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
      return s.getLocalPort();
    }
  }

  void startWorker(Path props) throws IOException {
    workers++;
    workerLog = Path.of("target", "connect-worker-" + workers + ".log").toAbsolutePath();
    String cp = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
    Path log4j = Path.of("src/test/resources/connect-log4j2.properties").toAbsolutePath();
    ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-Dlog4j2.configurationFile=" + log4j.toUri(), "-cp", cp,
        "org.apache.kafka.connect.cli.ConnectDistributed", props.toString());
    pb.redirectErrorStream(true).redirectOutput(workerLog.toFile());
    worker = pb.start();
    System.out.println("connect worker " + workers + ": pid " + worker.pid() + ", log " + workerLog);
  }

  /** Stops the worker as a service manager would: SIGTERM, then waits for its clean shutdown. */
  void stopWorkerCleanly() throws Exception {
    worker.destroy();
    if (!worker.waitFor(60, TimeUnit.SECONDS)) {
      fail("the worker did not stop within 60 s of SIGTERM");
    }
    System.out.println("connect worker " + workers + " stopped, exit " + worker.exitValue());
  }

  /** Fails with the message and the last lines of the worker's log. */
  void fail(String message) {
    String tail = "";
    try {
      List<String> lines = Files.readAllLines(workerLog, StandardCharsets.UTF_8);
      tail = String.join("\n", lines.subList(Math.max(0, lines.size() - 80), lines.size()));
    } catch (IOException e) {
      tail = "(no worker log: " + e + ")";
    }
    org.junit.jupiter.api.Assertions.fail(message + "\n---- last lines of " + workerLog + "\n" + tail);
  }

  void await(String what, int seconds, BooleanSupplier done) throws Exception {
    long deadline = System.currentTimeMillis() + seconds * 1000L;
    while (!done.getAsBoolean()) {
      if (worker != null && !worker.isAlive()) {
        fail("the worker exited (status " + worker.exitValue() + ") while waiting for " + what);
      }
      if (System.currentTimeMillis() > deadline) {
        fail("timed out after " + seconds + " s waiting for " + what);
      }
      Thread.sleep(250);
    }
  }

  static HttpResponse<String> http(String method, String url, String body) {
    try {
      HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(10))
          .header("Content-Type", "application/json").header("Accept", "application/json");
      b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
      return HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      return null;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return null;
    }
  }

  static boolean running(String rest, String connector) {
    HttpResponse<String> r = http("GET", rest + "/connectors/" + connector + "/status", null);
    if (r == null || r.statusCode() != 200) {
      return false;
    }
    try {
      JsonNode s = JSON.readTree(r.body());
      JsonNode tasks = s.get("tasks");
      return "RUNNING".equals(s.get("connector").get("state").asText()) && tasks.size() == 1
          && "RUNNING".equals(tasks.get(0).get("state").asText());
    } catch (IOException e) {
      return false;
    }
  }

  /** Reads the topic from the beginning until `want` values arrived (then 2 s more, for duplicates) or 60 s. */
  static List<String> readTopic(String topic, int want) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    List<String> got = new ArrayList<>();
    try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p, new StringDeserializer(), new StringDeserializer())) {
      TopicPartition tp = new TopicPartition(topic, 0);
      c.assign(List.of(tp));
      c.seekToBeginning(List.of(tp));
      long deadline = System.currentTimeMillis() + 60_000;
      long extraUntil = Long.MAX_VALUE;
      while (System.currentTimeMillis() < Math.min(deadline, extraUntil)) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
          got.add(r.value());
        }
        if (got.size() >= want && extraUntil == Long.MAX_VALUE) {
          extraUntil = System.currentTimeMillis() + 2000;
        }
      }
    }
    return got;
  }

  static List<String> lines(int from, int to) {
    return IntStream.rangeClosed(from, to).mapToObj(i -> "line " + i + " of the file source").collect(Collectors.toList());
  }

  @Test
  void fileSourceResumesFromStoredOffsetsAfterRestart(@TempDir Path dir) throws Exception {
    String id = unique("connect");
    String topic = id + "-lines";
    String configTopic = id + "-configs";
    String offsetTopic = id + "-offsets";
    String statusTopic = id + "-status";
    Path file = dir.resolve("source.txt");
    Files.write(file, lines(1, 100), StandardCharsets.UTF_8);
    try (Admin a = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP))) {
      a.createTopics(List.of(new NewTopic(topic, 1, (short) 1))).all().get(30, TimeUnit.SECONDS);
    }

    int port = freePort();
    String rest = "http://127.0.0.1:" + port;
    Path props = dir.resolve("worker.properties");
    Files.writeString(props, String.join("\n",
        "bootstrap.servers=" + BOOTSTRAP,
        "group.id=" + id,
        "key.converter=org.apache.kafka.connect.storage.StringConverter",
        "value.converter=org.apache.kafka.connect.storage.StringConverter",
        "config.storage.topic=" + configTopic,
        "offset.storage.topic=" + offsetTopic,
        "status.storage.topic=" + statusTopic,
        "config.storage.replication.factor=1",
        "offset.storage.replication.factor=1",
        "status.storage.replication.factor=1",
        "offset.storage.partitions=3",
        "status.storage.partitions=1",
        "offset.flush.interval.ms=1000",
        "listeners=http://127.0.0.1:" + port,
        "rest.advertised.host.name=127.0.0.1",
        "rest.advertised.port=" + port,
        // The connectors are on the classpath, found through their ServiceLoader manifests (KIP-898):
        // no reflective scan of every jar at start.
        "plugin.discovery=service_load",
        "task.shutdown.graceful.timeout.ms=10000",
        ""), StandardCharsets.UTF_8);

    startWorker(props);
    await("the worker's REST API at " + rest, 90, () -> {
      HttpResponse<String> r = http("GET", rest + "/", null);
      return r != null && r.statusCode() == 200 && r.body().contains("\"version\"");
    });

    String connector = "file-source";
    String config = JSON.writeValueAsString(Map.of("name", connector, "config", Map.of(
        "connector.class", "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max", "1",
        "file", file.toString(),
        "topic", topic)));
    HttpResponse<String> created = null;
    long deadline = System.currentTimeMillis() + 60_000;
    // The herder may still be joining its group or reading the config topic: 409/5xx are retried.
    while (created == null || created.statusCode() != 201) {
      if (System.currentTimeMillis() > deadline) {
        fail("POST /connectors: " + (created == null ? "no answer" : created.statusCode() + " " + created.body()));
      }
      if (created != null) {
        Thread.sleep(500);
      }
      created = http("POST", rest + "/connectors", config);
      if (created != null && created.statusCode() == 400) {
        fail("POST /connectors refused: " + created.body());
      }
    }
    await("connector " + connector + " and its task RUNNING", 60, () -> running(rest, connector));

    List<String> first = readTopic(topic, 100);
    if (!first.equals(lines(1, 100))) {
      fail("the topic holds " + first.size() + " records, not lines 1-100 once each in order: " + summary(first));
    }

    // Connect created its internal topics itself, compacted, with the partition counts asked for.
    try (Admin a = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP))) {
      Map<String, Integer> wantPartitions = Map.of(configTopic, 1, offsetTopic, 3, statusTopic, 1);
      Map<String, TopicDescription> d = a.describeTopics(wantPartitions.keySet()).allTopicNames().get(30, TimeUnit.SECONDS);
      for (Map.Entry<String, Integer> e : wantPartitions.entrySet()) {
        assertEquals((int) e.getValue(), d.get(e.getKey()).partitions().size(), e.getKey() + " partitions");
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, e.getKey());
        Config c = a.describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS).get(r);
        assertEquals("compact", c.get("cleanup.policy").value(), e.getKey() + " cleanup.policy");
      }
    }

    stopWorkerCleanly();
    Files.write(file, lines(101, 150), StandardCharsets.UTF_8, StandardOpenOption.APPEND);

    startWorker(props);
    await("the restarted worker's REST API", 90, () -> {
      HttpResponse<String> r = http("GET", rest + "/connectors", null);
      return r != null && r.statusCode() == 200 && r.body().contains(connector);
    });
    await("connector " + connector + " RUNNING again after the restart", 60, () -> running(rest, connector));
    List<String> all = readTopic(topic, 150);
    if (!all.equals(lines(1, 150))) {
      fail("after the restart the topic holds " + all.size() + " records, not lines 1-150 once each in order "
          + "(a resume from the stored offsets): " + summary(all));
    }
    HttpResponse<String> offsets = http("GET", rest + "/connectors/" + connector + "/offsets", null);
    assertTrue(offsets != null && offsets.statusCode() == 200, "GET offsets: " + (offsets == null ? "no answer" : offsets.body()));
    JsonNode o = JSON.readTree(offsets.body()).get("offsets");
    assertEquals(1, o.size(), offsets.body());
    assertEquals(Files.size(file), o.get(0).get("offset").get("position").asLong(),
        "the stored source offset is the file's end: " + offsets.body());
    stopWorkerCleanly();
  }

  static String summary(List<String> got) {
    Map<String, Long> counts = got.stream().collect(Collectors.groupingBy(s -> s, Collectors.counting()));
    List<String> dups = counts.entrySet().stream().filter(e -> e.getValue() > 1).map(Map.Entry::getKey).sorted().limit(5).toList();
    return "first " + got.stream().limit(3).toList() + ", last " + got.subList(Math.max(0, got.size() - 3), got.size())
        + ", duplicates (up to 5) " + dups;
  }
}
