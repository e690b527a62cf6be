package dev.ringbolt.compat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsOptions;
import org.apache.kafka.clients.admin.ListConsumerGroupOffsetsSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidTxnStateException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.protocol.Errors;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * kafka-clients 4.3's transactional producer against the broker (issue 18, optional group
 * `transactions`): commit and abort as read_committed and read_uncommitted consumers see them (the
 * markers' offsets included), the last stable offset while a transaction is open,
 * consume-transform-produce with sendOffsetsToTransaction and the group's committed offsets, zombie
 * fencing, the coordinator's abort of a timed-out transaction, and a transaction timeout above the
 * broker's maximum.
 *
 * <p>Every transaction here writes its records first and commits or aborts after they are all
 * acknowledged, and the transactions of one topic run one after another: each partition then holds
 * exactly each transaction's records followed by its one marker, so the expected offsets are known
 * exactly.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class TransactionsTest {
  @BeforeEach
  void gate() {
    Assumptions.assumeTrue(Txn.enabled(), Txn.DISABLED);
  }

  /** Sends `count` records "label-i" round-robin over the partitions, waits for every acknowledgement. */
  static List<RecordMetadata> send(KafkaProducer<String, String> p, String topic, int partitions, String label, int count)
      throws Exception {
    List<Future<RecordMetadata>> fs = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      fs.add(p.send(new ProducerRecord<>(topic, i % partitions, "k" + i, label + "-" + i)));
    }
    p.flush();
    List<RecordMetadata> out = new ArrayList<>();
    for (Future<RecordMetadata> f : fs) {
      out.add(f.get(30, TimeUnit.SECONDS));
    }
    return out;
  }

  static List<String> labelled(String label, int count) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < count; i++) {
      out.add(label + "-" + i);
    }
    return out;
  }

  /** The values of `labels`' records in the order a partition-by-partition read returns them. */
  static List<String> expectedOrder(int partitions, Map<String, Integer> labels) {
    List<String> out = new ArrayList<>();
    for (int p = 0; p < partitions; p++) {
      for (Map.Entry<String, Integer> e : labels.entrySet()) {
        for (int i = 0; i < e.getValue(); i++) {
          if (i % partitions == p) {
            out.add(e.getKey() + "-" + i);
          }
        }
      }
    }
    return out;
  }

  /**
   * Commit, abort, commit, and a fourth transaction held open while both consumers look: the
   * read_committed end offset stops at the open transaction's first offset and its records stay
   * invisible until it commits. Then a read_committed consumer sees exactly the committed records,
   * a read_uncommitted one every record, each transaction's records followed by a one-offset gap
   * (its marker).
   */
  @Test
  void commitAbortAndIsolation() throws Exception {
    String topic = ClientsTest.unique("java-txn");
    int parts = 3;
    int n = 30; // records per transaction, 10 per partition
    ClientsTest.createTopic(topic, parts);
    try (KafkaProducer<String, String> p = Txn.producer(ClientsTest.unique("java-txn-id"))) {
      p.initTransactions();
      p.beginTransaction();
      send(p, topic, parts, "c1", n);
      p.commitTransaction();
      p.beginTransaction();
      send(p, topic, parts, "a1", n);
      p.abortTransaction();
      p.beginTransaction();
      send(p, topic, parts, "c2", n);
      p.commitTransaction();
      Txn.awaitStable(topic, parts, 30); // c2's markers written

      p.beginTransaction();
      List<RecordMetadata> open = send(p, topic, parts, "c3", n);
      // Per partition: c1 (10 + marker), a1 (10 + marker), c2 (10 + marker), then c3 from offset 33.
      Map<TopicPartition, Long> lso = Txn.endOffsets(topic, parts, true);
      Map<TopicPartition, Long> hw = Txn.endOffsets(topic, parts, false);
      for (TopicPartition tp : Txn.partitions(topic, parts)) {
        assertEquals(33L, lso.get(tp), "read_committed end offset (LSO) of " + tp + " with c3 open");
        assertEquals(43L, hw.get(tp), "high watermark of " + tp + " with c3 open");
      }
      for (int i = 0; i < parts; i++) {
        assertEquals(33L, open.get(i).offset(), "first offset of the open transaction in partition " + i);
      }
      assertEquals(expectedOrder(parts, orderedMap("c1", n, "c2", n)), Txn.values(Txn.readAll(topic, parts, true)),
          "read_committed with c3 open: c1 and c2 only");
      p.commitTransaction();
    }

    Map<Integer, List<ConsumerRecord<String, String>>> committed = Txn.readStable(topic, parts);
    assertEquals(expectedOrder(parts, orderedMap("c1", n, "c2", n, "c3", n)), Txn.values(committed),
        "read_committed: exactly the committed records, in order");
    Map<Integer, List<ConsumerRecord<String, String>>> all = Txn.readAll(topic, parts, false);
    assertEquals(expectedOrder(parts, orderedMap("c1", n, "a1", n, "c2", n, "c3", n)), Txn.values(all),
        "read_uncommitted: every record, aborted ones included");
    for (int p = 0; p < parts; p++) {
      List<Long> offsets = all.get(p).stream().map(ConsumerRecord::offset).toList();
      List<Long> want = new ArrayList<>();
      for (int t = 0; t < 4; t++) {
        for (int i = 0; i < 10; i++) {
          want.add(t * 11L + i); // each transaction's 10 records, then its marker at t * 11 + 10
        }
      }
      assertEquals(want, offsets, "partition " + p + ": records at these offsets, markers in the gaps");
      List<Long> committedOffsets = committed.get(p).stream().map(ConsumerRecord::offset).toList();
      List<Long> wantCommitted = want.stream().filter(o -> o / 11 != 1).toList();
      assertEquals(wantCommitted, committedOffsets, "partition " + p + ": read_committed offsets");
    }
    Map<TopicPartition, Long> end = Txn.awaitStable(topic, parts, 10);
    for (TopicPartition tp : Txn.partitions(topic, parts)) {
      assertEquals(44L, end.get(tp), tp + ": 4 transactions of 10 records and a marker");
    }
  }

  static Map<String, Integer> orderedMap(Object... kv) {
    Map<String, Integer> m = new java.util.LinkedHashMap<>();
    for (int i = 0; i < kv.length; i += 2) {
      m.put((String) kv[i], (Integer) kv[i + 1]);
    }
    return m;
  }

  static Map<TopicPartition, Long> committedOffsets(String group) throws Exception {
    try (Admin a = ClientsTest.admin()) {
      Map<TopicPartition, OffsetAndMetadata> m = a.listConsumerGroupOffsets(
          Map.of(group, new ListConsumerGroupOffsetsSpec()), new ListConsumerGroupOffsetsOptions().requireStable(true))
          .partitionsToOffsetAndMetadata(group).get(30, TimeUnit.SECONDS);
      Map<TopicPartition, Long> out = new TreeMap<>((x, y) -> Integer.compare(x.partition(), y.partition()));
      m.forEach((tp, om) -> out.put(tp, om == null ? null : om.offset()));
      return out;
    }
  }

  /**
   * One round of consume-transform-produce: polls until `want` input records arrived, writes each
   * upper-cased to `out` and the consumed positions to the group inside one transaction, then
   * commits or aborts it. Returns the input values processed.
   */
  static List<String> processRound(KafkaConsumer<String, String> c, KafkaProducer<String, String> p, String out, int want,
      boolean commit) throws Exception {
    List<String> seen = new ArrayList<>();
    Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
    p.beginTransaction();
    long deadline = System.currentTimeMillis() + 45_000;
    while (seen.size() < want) {
      if (System.currentTimeMillis() > deadline) {
        fail("consumed " + seen.size() + " of " + want + " input records in 45 s");
      }
      ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
      for (ConsumerRecord<String, String> r : rs) {
        seen.add(r.value());
        p.send(new ProducerRecord<>(out, r.partition(), r.key(), r.value().toUpperCase()));
        positions.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
      }
    }
    // Records still in the producer's buffer at an abort are dropped unsent; flushed ones reach
    // the log and are aborted there, which is what the read_uncommitted check looks for.
    p.flush();
    p.sendOffsetsToTransaction(positions, c.groupMetadata());
    if (commit) {
      p.commitTransaction();
    } else {
      p.abortTransaction();
    }
    return seen;
  }

  /**
   * sendOffsetsToTransaction: a group member reads input, writes the transformed records and its
   * positions in one transaction. After the commit the group's committed offsets are the input's
   * end offsets and the output holds each record once; an aborted round changes neither, and the
   * next member of the group resumes from the committed offsets and redoes exactly that round.
   */
  @Test
  void consumeTransformProduce() throws Exception {
    String in = ClientsTest.unique("java-ctp-in");
    String out = ClientsTest.unique("java-ctp-out");
    String group = ClientsTest.unique("java-ctp-g");
    int parts = 2;
    ClientsTest.createTopic(in, parts);
    ClientsTest.createTopic(out, parts);
    List<ProducerRecord<byte[], byte[]>> input = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      input.add(new ProducerRecord<>(in, i % parts, Txn.utf8("k" + i), Txn.utf8("word-" + i)));
    }
    ClientsTest.sendAll(false, input);

    String txid = ClientsTest.unique("java-ctp-id");
    try (KafkaConsumer<String, String> c = Txn.consumer(true, group);
        KafkaProducer<String, String> p = Txn.producer(txid)) {
      p.initTransactions();
      c.subscribe(List.of(in));
      List<String> done = processRound(c, p, out, 40, true);
      assertEquals(40, done.size());
      assertEquals(Map.of(new TopicPartition(in, 0), 20L, new TopicPartition(in, 1), 20L), committedOffsets(group),
          "group offsets after the committed transaction");
      Map<TopicPartition, OffsetAndMetadata> viaConsumer = c.committed(java.util.Set.copyOf(Txn.partitions(in, parts)),
          Duration.ofSeconds(30));
      assertEquals(20L, viaConsumer.get(new TopicPartition(in, 0)).offset(), "KafkaConsumer.committed, partition 0");
      assertEquals(20L, viaConsumer.get(new TopicPartition(in, 1)).offset(), "KafkaConsumer.committed, partition 1");

      List<ProducerRecord<byte[], byte[]>> more = new ArrayList<>();
      for (int i = 40; i < 50; i++) {
        more.add(new ProducerRecord<>(in, i % parts, Txn.utf8("k" + i), Txn.utf8("word-" + i)));
      }
      ClientsTest.sendAll(false, more);
      List<String> aborted = processRound(c, p, out, 10, false);
      assertEquals(labelled("word", 50).subList(40, 50).stream().sorted().toList(), aborted.stream().sorted().toList());
      assertEquals(Map.of(new TopicPartition(in, 0), 20L, new TopicPartition(in, 1), 20L), committedOffsets(group),
          "group offsets after the aborted transaction: unchanged");
    }
    List<String> outCommitted = Txn.values(Txn.readStable(out, parts));
    assertEquals(labelled("WORD", 40).stream().sorted().toList(), outCommitted.stream().sorted().toList(),
        "output after one commit and one abort (read_committed)");
    assertEquals(50, Txn.values(Txn.readAll(out, parts, false)).size(),
        "read_uncommitted sees the aborted round's 10 output records too");

    // A new member (and a new producer incarnation of the same transactional id) resumes from the
    // committed offsets: it must see exactly the 10 records of the aborted round.
    try (KafkaConsumer<String, String> c = Txn.consumer(true, group);
        KafkaProducer<String, String> p = Txn.producer(txid)) {
      p.initTransactions();
      c.subscribe(List.of(in));
      List<String> redone = processRound(c, p, out, 10, true);
      assertEquals(labelled("word", 50).subList(40, 50).stream().sorted().toList(), redone.stream().sorted().toList(),
          "the resumed member reads from the committed offsets");
      assertEquals(Map.of(new TopicPartition(in, 0), 25L, new TopicPartition(in, 1), 25L), committedOffsets(group));
      // Nothing more arrives: the committed offsets were the end.
      assertEquals(0, c.poll(Duration.ofSeconds(2)).count(), "records beyond the input's end");
    }
    assertEquals(labelled("WORD", 50).stream().sorted().toList(),
        Txn.values(Txn.readStable(out, parts)).stream().sorted().toList(),
        "output: each input record exactly once (read_committed)");
  }

  /**
   * Zombie fencing: a second producer with the same transactional.id fences the first. The
   * second's initTransactions aborts the first's open transaction; the first's commit then fails
   * with ProducerFencedException, and only the second's transaction is visible.
   */
  @Test
  void zombieFencing() throws Exception {
    String topic = ClientsTest.unique("java-fence");
    ClientsTest.createTopic(topic, 1);
    String txid = ClientsTest.unique("java-fence-id");
    try (KafkaProducer<String, String> zombie = Txn.producer(txid)) {
      zombie.initTransactions();
      zombie.beginTransaction();
      send(zombie, topic, 1, "zombie", 5);
      try (KafkaProducer<String, String> p = Txn.producer(txid)) {
        p.initTransactions();
        KafkaException e = assertThrows(KafkaException.class, zombie::commitTransaction,
            "the fenced producer's commit");
        assertFenced(e);
        p.beginTransaction();
        send(p, topic, 1, "live", 5);
        p.commitTransaction();
      }
    }
    assertEquals(labelled("live", 5), Txn.values(Txn.readStable(topic, 1)),
        "read_committed: the fencing producer's records only");
    assertEquals(12L, Txn.awaitStable(topic, 1, 10).get(new TopicPartition(topic, 0)),
        "5 zombie records, the abort marker, 5 records, the commit marker");
  }

  static void assertFenced(Throwable e) {
    Throwable t = e;
    while (t != null && !(t instanceof ProducerFencedException)) {
      t = t.getCause();
    }
    if (t == null) {
      fail("expected ProducerFencedException, got " + e, e);
    }
  }

  /**
   * transaction.timeout.ms: a producer that stalls in an open transaction longer than its timeout
   * has the transaction aborted by the coordinator (without any further request from it). Its
   * records never become visible to read_committed; its late commit fails.
   */
  @Test
  void coordinatorAbortsTimedOutTransaction() throws Exception {
    String topic = ClientsTest.unique("java-txn-timeout");
    ClientsTest.createTopic(topic, 1);
    TopicPartition tp = new TopicPartition(topic, 0);
    try (KafkaProducer<String, String> p = Txn.producer(ClientsTest.unique("java-timeout-id"),
        Map.of(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "2000"))) {
      p.initTransactions();
      p.beginTransaction();
      send(p, topic, 1, "stalled", 5);
      assertEquals(0L, Txn.endOffsets(topic, 1, true).get(tp), "LSO while the transaction is open");
      // The coordinator's expiry check runs periodically (Kafka: every 10 s by default).
      Map<TopicPartition, Long> end = Txn.awaitStable(topic, 1, 60);
      assertEquals(6L, end.get(tp), "5 records and the coordinator's abort marker");
      assertEquals(List.of(), Txn.values(Txn.readStable(topic, 1)), "read_committed after the timeout abort");
      assertEquals(labelled("stalled", 5), Txn.values(Txn.readAll(topic, 1, false)));
      KafkaException e = assertThrows(KafkaException.class, p::commitTransaction, "commit after the coordinator's abort");
      // The coordinator bumped the producer's epoch when it aborted: with Kafka's first
      // transaction protocol (the one Ringbolt speaks: no transaction.version feature) the late
      // EndTxn is PRODUCER_FENCED; with transaction.version 2 (KIP-890) the client reports an
      // invalid transaction state instead.
      if (transactionVersion() >= 2) {
        assertInstanceOf(InvalidTxnStateException.class, e, "late commit, transaction.version 2");
      } else {
        assertInstanceOf(ProducerFencedException.class, e, "late commit, transaction.version < 2");
      }
    }
    assertEquals(6L, Txn.endOffsets(topic, 1, false).get(tp), "nothing written by the failed commit");
  }

  /** The broker's finalized transaction.version feature level, 0 if it advertises none. */
  static int transactionVersion() throws Exception {
    try (Admin a = ClientsTest.admin()) {
      FinalizedVersionRange v = a.describeFeatures().featureMetadata().get(30, TimeUnit.SECONDS)
          .finalizedFeatures().get("transaction.version");
      return v == null ? 0 : v.maxVersionLevel();
    }
  }

  /**
   * transaction.timeout.ms above the broker's transaction.max.timeout.ms (default 15 min):
   * InitProducerId answers INVALID_TRANSACTION_TIMEOUT.
   */
  @Test
  void transactionTimeoutAboveMaximum() {
    try (KafkaProducer<String, String> p = Txn.producer(ClientsTest.unique("java-bad-timeout"),
        Map.of(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, Integer.toString(15 * 60 * 1000 + 1)))) {
      KafkaException e = assertThrows(KafkaException.class, p::initTransactions);
      // kafka-clients reports this error code as a KafkaException carrying the error's message.
      assertTrue(e.getMessage().contains(Errors.INVALID_TRANSACTION_TIMEOUT.message()), "initTransactions failed with " + e);
    }
  }
}
