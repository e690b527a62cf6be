package dev.ringbolt.compat.tools;

import static dev.ringbolt.compat.tools.Tools.BOOTSTRAP;
import static dev.ringbolt.compat.tools.Tools.transactions;
import static dev.ringbolt.compat.tools.Tools.unique;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.ringbolt.compat.tools.Tools.Result;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Kafka 4.3's kafka-transactions tool (TransactionsCommand) against the broker with a live
 * transaction (issue 18, optional group `transactions`): `list` (ListTransactions), `describe
 * --transactional-id` (DescribeTransactions) and `describe-producers --topic --partition`
 * (DescribeProducers), while the transaction is open and after its commit, each checked against
 * what the test's producers did: the transaction's partitions, timeout and first offset, and the
 * sequence numbers of a second, idempotent producer on the same partition. The three commands must
 * agree on the producer id and epoch.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TransactionsToolTest {
  static Admin admin() {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    return Admin.create(p);
  }

  static KafkaProducer<String, String> producer(String transactionalId) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, BOOTSTRAP);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    if (transactionalId != null) {
      p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
      p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "45000");
    }
    return new KafkaProducer<>(p, new StringSerializer(), new StringSerializer());
  }

  static List<RecordMetadata> send(KafkaProducer<String, String> p, String topic, int partition, int count) throws Exception {
    List<Future<RecordMetadata>> fs = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      fs.add(p.send(new ProducerRecord<>(topic, partition, "k" + i, "v" + i)));
    }
    p.flush();
    List<RecordMetadata> out = new ArrayList<>();
    for (Future<RecordMetadata> f : fs) {
      out.add(f.get(30, TimeUnit.SECONDS));
    }
    return out;
  }

  static void ok(Result r) {
    assertEquals(0, r.code(), r.show());
  }

  /**
   * The table a kafka-transactions command printed: each cell padded to its column's width and
   * followed by a tab, a header line first. One map from column to (trimmed) value per row.
   */
  static List<Map<String, String>> table(Result r, String firstColumn) {
    List<Map<String, String>> rows = new ArrayList<>();
    String[] names = null;
    for (String line : r.out().split("\n")) {
      String[] cells = line.split("\t");
      if (names == null) {
        if (cells[0].trim().equals(firstColumn)) {
          names = cells;
        }
        continue;
      }
      if (line.isBlank()) {
        break;
      }
      Map<String, String> row = new java.util.HashMap<>();
      for (int i = 0; i < names.length; i++) {
        row.put(names[i].trim(), i < cells.length ? cells[i].trim() : "");
      }
      rows.add(row);
    }
    if (names == null) {
      fail("no table with a " + firstColumn + " column:\n" + r.show());
    }
    return rows;
  }

  /** The one row of `rows` whose `column` is `value`. */
  static Map<String, String> row(Result r, List<Map<String, String>> rows, String column, String value) {
    List<Map<String, String>> hits = rows.stream().filter(m -> value.equals(m.get(column))).toList();
    if (hits.size() != 1) {
      fail(hits.size() + " rows with " + column + " = " + value + ":\n" + r.show());
    }
    return hits.get(0);
  }

  static Map<String, String> listed(String txid) {
    Result r = transactions("list");
    ok(r);
    return row(r, table(r, "TransactionalId"), "TransactionalId", txid);
  }

  static Map<String, String> described(String txid) {
    Result r = transactions("describe", "--transactional-id", txid);
    ok(r);
    List<Map<String, String>> rows = table(r, "CoordinatorId");
    assertEquals(1, rows.size(), r.show());
    return rows.get(0);
  }

  static Result producers(String topic, int partition) {
    Result r = transactions("describe-producers", "--topic", topic, "--partition", Integer.toString(partition));
    ok(r);
    return r;
  }

  /** Waits until no transaction is open on the partitions (the markers are written after EndTxn's answer). */
  static void awaitStable(String topic, int partitions) throws Exception {
    Map<TopicPartition, OffsetSpec> spec = new java.util.HashMap<>();
    for (int i = 0; i < partitions; i++) {
      spec.put(new TopicPartition(topic, i), OffsetSpec.latest());
    }
    long deadline = System.currentTimeMillis() + 30_000;
    try (Admin a = admin()) {
      while (true) {
        Map<TopicPartition, Long> lso = new java.util.HashMap<>();
        a.listOffsets(spec, new ListOffsetsOptions(IsolationLevel.READ_COMMITTED)).all().get(30, TimeUnit.SECONDS)
            .forEach((tp, info) -> lso.put(tp, info.offset()));
        Map<TopicPartition, Long> hw = new java.util.HashMap<>();
        a.listOffsets(spec).all().get(30, TimeUnit.SECONDS).forEach((tp, info) -> hw.put(tp, info.offset()));
        if (lso.equals(hw)) {
          return;
        }
        if (System.currentTimeMillis() > deadline) {
          fail("LSO " + lso + " did not reach the high watermark " + hw + " in 30 s");
        }
        Thread.sleep(200);
      }
    }
  }

  @Test
  void listDescribeDescribeProducers() throws Exception {
    Assumptions.assumeTrue("1".equals(System.getenv("RINGBOLT_COMPAT_TRANSACTIONS")),
        "transactions (issue 18): set RINGBOLT_COMPAT_TRANSACTIONS=1");
    String topic = unique("tools-txn");
    String txid = unique("tools-txn-id");
    String brokerId;
    try (Admin a = admin()) {
      a.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(30, TimeUnit.SECONDS);
      brokerId = a.describeCluster().nodes().get(30, TimeUnit.SECONDS).iterator().next().idString();
    }

    try (KafkaProducer<String, String> idem = producer(null); KafkaProducer<String, String> txn = producer(txid)) {
      send(idem, topic, 0, 3); // offsets 0-2, sequences 0-2, no transaction
      txn.initTransactions();
      long before = System.currentTimeMillis();
      txn.beginTransaction();
      List<RecordMetadata> md = send(txn, topic, 0, 4); // offsets 3-6, sequences 0-3
      send(txn, topic, 1, 1);
      long after = System.currentTimeMillis();
      assertEquals(3L, md.get(0).offset());

      // list: the open transaction, on this broker.
      Map<String, String> l = listed(txid);
      assertEquals("Ongoing", l.get("TransactionState"), l.toString());
      assertEquals(brokerId, l.get("Coordinator"), l.toString());
      String pid = l.get("ProducerId");
      assertTrue(Long.parseLong(pid) >= 0, l.toString());

      // describe: the same producer, its partitions, its timeout, its start time.
      Map<String, String> d = described(txid);
      assertEquals(brokerId, d.get("CoordinatorId"), d.toString());
      assertEquals(txid, d.get("TransactionalId"), d.toString());
      assertEquals(pid, d.get("ProducerId"), d.toString());
      assertEquals("Ongoing", d.get("TransactionState"), d.toString());
      assertEquals("45000", d.get("TransactionTimeoutMs"), d.toString());
      assertEquals(Set.of(topic + "-0", topic + "-1"), Set.of(d.get("TopicPartitions").split(",")), d.toString());
      long start = Long.parseLong(d.get("CurrentTransactionStartTimeMs"));
      assertTrue(start >= before - 1000 && start <= after + 1000, "start time " + start + " not in [" + before + ", " + after + "]");
      String epoch = d.get("ProducerEpoch");

      // describe-producers on partition 0: both producers; the transactional one's open
      // transaction starts at offset 3.
      Result pr = producers(topic, 0);
      List<Map<String, String>> rows = table(pr, "ProducerId");
      assertEquals(2, rows.size(), pr.show());
      Map<String, String> t = row(pr, rows, "ProducerId", pid);
      assertEquals(epoch, t.get("ProducerEpoch"), pr.show());
      assertEquals("3", t.get("LastSequence"), pr.show());
      assertEquals("3", t.get("CurrentTransactionStartOffset"), pr.show());
      Map<String, String> i = rows.stream().filter(m -> !pid.equals(m.get("ProducerId"))).findFirst().orElseThrow();
      assertEquals("2", i.get("LastSequence"), pr.show());
      assertEquals("None", i.get("CurrentTransactionStartOffset"), pr.show());
      // Partition 1: the transaction's single record, offset 0.
      Result pr1 = producers(topic, 1);
      Map<String, String> t1 = row(pr1, table(pr1, "ProducerId"), "ProducerId", pid);
      assertEquals("0", t1.get("LastSequence"), pr1.show());
      assertEquals("0", t1.get("CurrentTransactionStartOffset"), pr1.show());

      txn.commitTransaction();
    }
    awaitStable(topic, 2);

    // After the commit: no open transaction anywhere, the id is known and complete.
    Map<String, String> d = described(txid);
    assertEquals("CompleteCommit", d.get("TransactionState"), d.toString());
    assertEquals("", d.get("TopicPartitions"), d.toString());
    assertEquals("CompleteCommit", listed(txid).get("TransactionState"));
    for (int p = 0; p < 2; p++) {
      Result pr = producers(topic, p);
      Map<String, String> t = row(pr, table(pr, "ProducerId"), "ProducerId", d.get("ProducerId"));
      assertEquals("None", t.get("CurrentTransactionStartOffset"), pr.show());
    }

    // A partition nobody wrote to: the table's header, no producers.
    Result empty = producers(topic, 2);
    assertEquals(List.of(), table(empty, "ProducerId"), empty.show());

    // Bad input: an unknown transactional id. (A partition that does not exist is not checked: the
    // admin client retries its metadata lookup until its 60 s timeout, against Kafka as well.)
    Result unknown = transactions("describe", "--transactional-id", unique("tools-txn-nobody"));
    assertEquals(1, unknown.code(), unknown.show());
    // The admin client's wording for TRANSACTIONAL_ID_NOT_FOUND (DescribeTransactionsHandler).
    assertTrue(unknown.err().contains("failed because the ID could not be found"), unknown.show());
  }
}
