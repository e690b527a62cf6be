package compat

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// Transactions (issue 18): sarama's transactional producer (Producer.Transaction.ID with
// Producer.Idempotent and Net.MaxOpenRequests=1), BeginTxn / CommitTxn / AbortTxn, offsets in the
// transaction with AddMessageToTxn, and Consumer.IsolationLevel = sarama.ReadCommitted consumers
// that must get exactly the committed records. Runs with RINGBOLT_COMPAT_TRANSACTIONS=1.

// txnVersion: the protocol version the transactional tests configure. Transactions need
// V0_11_0_0; V2_8_0_0 makes sarama send its newest transaction requests (TxnOffsetCommit v3 with
// KIP-447's generation fields from V2_5_0_0) and is known to both sarama flavours.
var txnVersion = sarama.V2_8_0_0

func requireTransactions(t *testing.T) {
	t.Helper()
	if os.Getenv("RINGBOLT_COMPAT_TRANSACTIONS") != "1" {
		t.Skip("transactions (issue 18): set RINGBOLT_COMPAT_TRANSACTIONS=1")
	}
}

func txnConfig() *sarama.Config {
	config := idempotentConfig(txnVersion)
	config.Producer.Transaction.ID = uniqueName("sarama-txn-id")
	config.Producer.Partitioner = sarama.NewManualPartitioner
	return config
}

func isolationConfig(level sarama.IsolationLevel) *sarama.Config {
	config := sarama.NewConfig()
	config.Version = txnVersion
	config.Consumer.IsolationLevel = level
	return config
}

// readExact consumes every partition from the oldest offset at the isolation level and compares
// with expected (exact offsets, keys, values, headers, in order; nothing more).
func readExact(t *testing.T, topic string, parts []int32, level sarama.IsolationLevel, expected []sent) {
	t.Helper()
	consumer, err := sarama.NewConsumer(brokers(), isolationConfig(level))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	want := map[int32][]sent{}
	for _, s := range sortByOffset(expected) {
		want[s.partition] = append(want[s.partition], s)
	}
	expectStreams(t, openStreams(t, consumer, topic, parts, sarama.OffsetOldest), want, 30*time.Second)
}

// sendTxn sends msgs (SendMessages: batched per partition) and returns what was acknowledged.
func sendTxn(t *testing.T, p sarama.SyncProducer, msgs []*sarama.ProducerMessage) []sent {
	t.Helper()
	if err := p.SendMessages(msgs); err != nil {
		if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
			t.Fatalf("SendMessages in a transaction: %v; the first: %s/%d: %v", err, errs[0].Msg.Topic, errs[0].Msg.Partition, errs[0].Err)
		}
		t.Fatalf("SendMessages in a transaction: %v", err)
	}
	var out []sent
	for _, m := range msgs {
		s := sent{partition: m.Partition, offset: m.Offset}
		if m.Key != nil {
			s.key, _ = m.Key.Encode()
		}
		s.value, _ = m.Value.Encode()
		out = append(out, s)
	}
	return out
}

func highWatermarks(t *testing.T, topic string, parts []int32) map[int32]int64 {
	t.Helper()
	client, err := sarama.NewClient(brokers(), isolationConfig(sarama.ReadUncommitted))
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	out := map[int32]int64{}
	for _, p := range parts {
		if out[p], err = client.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			t.Fatalf("GetOffset %s/%d: %v", topic, p, err)
		}
	}
	return out
}

// TestTransactions: four transactions over three partitions, committed, aborted, committed,
// aborted; a read_committed consumer gets exactly the committed records at their acknowledged
// offsets, a read_uncommitted one also the aborted ones, and each partition's high watermark
// counts one marker per transaction.
func TestTransactions(t *testing.T) {
	requireTransactions(t)
	const partitions = 3
	topic := uniqueName("sarama-txn")
	createTopic(t, sarama.NewConfig(), topic, partitions)
	parts := waitPartitions(t, topic, partitions, 20*time.Second)
	waitServed(t, topic, parts)

	producer := newProducerWithPID(t, txnConfig())
	defer producer.Close()
	if !producer.IsTransactional() {
		t.Fatalf("producer with Producer.Transaction.ID is not transactional")
	}
	var committed, aborted []sent
	for i, n := range []int{24, 15, 18, 6} {
		commit := i%2 == 0
		if err := producer.BeginTxn(); err != nil {
			t.Fatalf("BeginTxn %d: %v", i, err)
		}
		var msgs []*sarama.ProducerMessage
		for j := 0; j < n; j++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(j % partitions), Key: sarama.StringEncoder(fmt.Sprintf("k%d", j)),
				Value: sarama.StringEncoder(fmt.Sprintf("txn %d message %d commit=%v", i, j, commit))})
		}
		acks := sendTxn(t, producer, msgs)
		var err error
		if commit {
			err = producer.CommitTxn()
			committed = append(committed, acks...)
		} else {
			err = producer.AbortTxn()
			aborted = append(aborted, acks...)
		}
		if err != nil {
			t.Fatalf("end of transaction %d (commit=%v): %v", i, commit, err)
		}
		if producer.TxnStatus()&sarama.ProducerTxnFlagReady == 0 {
			t.Fatalf("after transaction %d: status %v, want ready", i, producer.TxnStatus())
		}
	}

	readExact(t, topic, parts, sarama.ReadCommitted, committed)
	readExact(t, topic, parts, sarama.ReadUncommitted, append(append([]sent{}, committed...), aborted...))
	count := map[int32]int64{}
	for _, s := range append(append([]sent{}, committed...), aborted...) {
		count[s.partition]++
	}
	for p, hw := range highWatermarks(t, topic, parts) {
		if hw != count[p]+4 {
			t.Fatalf("partition %d: high watermark %d, want %d records + 4 markers", p, hw, count[p])
		}
	}
}

// TestTransactionOffsets: consume-transform-produce with the group's offsets in the
// transaction (AddMessageToTxn). A first, aborted transaction leaves neither its output (for
// read_committed) nor the group's offsets; committed transactions then process every input
// message once: the output read with read_committed is exactly one transformed message per input,
// and the group's committed offsets are the input's end offsets.
func TestTransactionOffsets(t *testing.T) {
	requireTransactions(t)
	const partitions, perPartition = 2, 15
	src, dst, group := uniqueName("sarama-txn-in"), uniqueName("sarama-txn-out"), uniqueName("sarama-txn-group")
	createTopic(t, sarama.NewConfig(), src, partitions)
	createTopic(t, sarama.NewConfig(), dst, partitions)
	parts := waitPartitions(t, src, partitions, 20*time.Second)
	waitPartitions(t, dst, partitions, 20*time.Second)
	waitServed(t, src, parts)
	waitServed(t, dst, parts)
	plain := articleConfig()
	plain.Producer.Partitioner = sarama.NewManualPartitioner
	var inputs []*sarama.ProducerMessage
	for _, p := range parts {
		for i := 0; i < perPartition; i++ {
			inputs = append(inputs, &sarama.ProducerMessage{Topic: src, Partition: p, Key: sarama.StringEncoder(fmt.Sprintf("%d.%d", p, i)), Value: sarama.StringEncoder(fmt.Sprintf("input %d.%d", p, i))})
		}
	}
	produce(t, plain, inputs, false)

	// Read the input back (read_committed) as ConsumerMessages, which AddMessageToTxn takes.
	consumer, err := sarama.NewConsumer(brokers(), isolationConfig(sarama.ReadCommitted))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	var in []*sarama.ConsumerMessage
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(src, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("ConsumePartition %d: %v", p, err)
		}
		for len(in) < int(p+1)*perPartition {
			select {
			case m := <-pc.Messages():
				in = append(in, m)
			case <-time.After(30 * time.Second):
				t.Fatalf("partition %d: %d input messages within 30 s", p, len(in))
			}
		}
		pc.Close()
	}
	consumer.Close()

	producer := newProducerWithPID(t, txnConfig())
	defer producer.Close()
	transform := func(batch []*sarama.ConsumerMessage) []sent {
		var msgs []*sarama.ProducerMessage
		for _, m := range batch {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: dst, Partition: m.Partition, Key: sarama.ByteEncoder(m.Key), Value: sarama.StringEncoder("OUT " + string(m.Value))})
		}
		acks := sendTxn(t, producer, msgs)
		for _, m := range batch {
			if err := producer.AddMessageToTxn(m, group, nil); err != nil {
				t.Fatalf("AddMessageToTxn %s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err)
			}
		}
		return acks
	}

	admin, err := sarama.NewClusterAdmin(brokers(), isolationConfig(sarama.ReadCommitted))
	if err != nil {
		t.Fatalf("cluster admin: %v", err)
	}
	defer admin.Close()
	groupOffsets := func() map[int32]int64 {
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{src: parts})
		if err != nil {
			t.Fatalf("ListConsumerGroupOffsets: %v", err)
		}
		out := map[int32]int64{}
		for _, p := range parts {
			b := resp.GetBlock(src, p)
			if b == nil {
				t.Fatalf("ListConsumerGroupOffsets: no block for %s/%d", src, p)
			}
			out[p] = b.Offset
			if b.Err == sarama.ErrUnstableOffsetCommit {
				out[p] = -2
			} else if b.Err != sarama.ErrNoError {
				t.Fatalf("ListConsumerGroupOffsets %s/%d: %v", src, p, b.Err)
			}
		}
		return out
	}

	// Aborted: the first 10 messages of each partition.
	if err := producer.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn: %v", err)
	}
	var first []*sarama.ConsumerMessage
	for _, m := range in {
		if m.Offset < 10 {
			first = append(first, m)
		}
	}
	outAborted := transform(first)
	if err := producer.AbortTxn(); err != nil {
		t.Fatalf("AbortTxn: %v", err)
	}
	if got := groupOffsets(); fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: -1, 1: -1}) {
		t.Fatalf("group offsets after an aborted transaction: %v, want none (-1)", got)
	}

	// Committed, in batches of 8 across both partitions.
	var outCommitted []sent
	for i := 0; i < len(in); i += 8 {
		batch := in[i:min(i+8, len(in))]
		if err := producer.BeginTxn(); err != nil {
			t.Fatalf("BeginTxn: %v", err)
		}
		outCommitted = append(outCommitted, transform(batch)...)
		if err := producer.CommitTxn(); err != nil {
			t.Fatalf("CommitTxn: %v", err)
		}
	}
	// Kafka materialises the offsets when it writes the markers, which may follow EndTxn's answer.
	want := fmt.Sprint(map[int32]int64{0: perPartition, 1: perPartition})
	deadline := time.Now().Add(15 * time.Second)
	for got := groupOffsets(); fmt.Sprint(got) != want; got = groupOffsets() {
		if time.Now().After(deadline) {
			t.Fatalf("group offsets after the commits: %v, want %s", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	readExact(t, dst, parts, sarama.ReadCommitted, outCommitted)
	readExact(t, dst, parts, sarama.ReadUncommitted, append(append([]sent{}, outCommitted...), outAborted...))
	for i, s := range sortByOffset(outCommitted) {
		// Partition by partition, in input order: "OUT input p.i".
		p, n := int(i/perPartition), i%perPartition
		if w := fmt.Sprintf("OUT input %d.%d", p, n); string(s.value) != w || s.partition != int32(p) {
			t.Fatalf("committed output #%d: partition %d value %q, want partition %d value %q", i, s.partition, s.value, p, w)
		}
	}
}
