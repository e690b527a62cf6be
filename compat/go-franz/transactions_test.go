package compat

// Transactions (issue 18) with franz-go: a kgo.TransactionalID producer that commits and aborts,
// and a kgo.GroupTransactSession consume-transform-produce loop, read back by
// kgo.FetchIsolationLevel(kgo.ReadCommitted()) consumers. Run with RINGBOLT_COMPAT_TRANSACTIONS=1.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func requireTransactions(t *testing.T) {
	t.Helper()
	if os.Getenv("RINGBOLT_COMPAT_TRANSACTIONS") != "1" {
		t.Skip("transactions (issue 18): set RINGBOLT_COMPAT_TRANSACTIONS=1")
	}
}

// readAll consumes every partition of topic from the start at the given isolation level until
// want records came (then one more second, to catch extras) or 30 s passed.
func readAll(t *testing.T, topic string, partitions int32, level kgo.IsolationLevel, want int) map[int32][]*kgo.Record {
	t.Helper()
	offsets := map[string]map[int32]kgo.Offset{topic: {}}
	for p := int32(0); p < partitions; p++ {
		offsets[topic][p] = kgo.NewOffset().AtStart()
	}
	cons := newClient(t, kgo.ConsumePartitions(offsets), kgo.FetchIsolationLevel(level), kgo.FetchMaxWait(200*time.Millisecond))
	defer cons.Close()
	got := map[int32][]*kgo.Record{}
	n, deadline := 0, time.Now().Add(30*time.Second)
	var extraUntil time.Time
	for {
		now := time.Now()
		if n >= want && extraUntil.IsZero() {
			extraUntil = now.Add(time.Second)
		}
		if (!extraUntil.IsZero() && now.After(extraUntil)) || now.After(deadline) {
			break
		}
		pctx, pcancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cons.PollFetches(pctx)
		pcancel()
		fs.EachError(func(topic string, p int32, err error) {
			if err != context.DeadlineExceeded {
				t.Errorf("fetch %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Partition] = append(got[r.Partition], r)
			n++
		})
	}
	return got
}

// sameRecords: got and want hold the same records per partition, in order, at the same
// offsets, with the same keys and values.
func sameRecords(t *testing.T, what string, got map[int32][]*kgo.Record, want []*kgo.Record) {
	t.Helper()
	w := map[int32][]*kgo.Record{}
	for _, r := range want {
		w[r.Partition] = append(w[r.Partition], r)
	}
	for p := range got {
		if _, ok := w[p]; !ok {
			t.Fatalf("%s: partition %d: %d records, want none", what, p, len(got[p]))
		}
	}
	for p, list := range w {
		sort.Slice(list, func(i, j int) bool { return list[i].Offset < list[j].Offset })
		g := got[p]
		if len(g) != len(list) {
			t.Fatalf("%s: partition %d: %d records, want %d", what, p, len(g), len(list))
		}
		for i := range g {
			if g[i].Offset != list[i].Offset || !sameBytes(g[i].Key, list[i].Key) || !sameBytes(g[i].Value, list[i].Value) {
				t.Fatalf("%s: partition %d record #%d: offset %d key %q value %q, want offset %d key %q value %q",
					what, p, i, g[i].Offset, g[i].Key, g[i].Value, list[i].Offset, list[i].Key, list[i].Value)
			}
		}
	}
}

// endOffsets: ListOffsets latest, read_uncommitted (the high watermark) and read_committed (the
// last stable offset).
func endOffsets(t *testing.T, topic string) (hw, lso map[int32]int64) {
	t.Helper()
	cl := newClient(t)
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	stable, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListCommittedOffsets (read_committed): %v", err)
	}
	hw, lso = map[int32]int64{}, map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("ListEndOffsets %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		hw[o.Partition] = o.Offset
	})
	stable.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("ListCommittedOffsets %s/%d: %v", o.Topic, o.Partition, o.Err)
		}
		lso[o.Partition] = o.Offset
	})
	return hw, lso
}

// TestFranzTransactions: commit, abort, commit, abort with a kgo.TransactionalID producer over
// three partitions, and an open transaction. read_committed consumers get exactly the committed
// records at their acknowledged offsets; read_uncommitted ones also the aborted ones; each
// partition's high watermark counts one marker per ended transaction; while a transaction is
// open, ListOffsets read_committed answers its first offset (the LSO).
func TestFranzTransactions(t *testing.T) {
	requireTransactions(t)
	const partitions = 3
	topic := uniqueName("franz-txn")
	createTopic(t, topic, partitions)
	prod := newClient(t, kgo.TransactionalID(uniqueName("franz-txn-id")), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))
	defer prod.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var committed, aborted []*kgo.Record
	for i, n := range []int{40, 25, 30, 11} {
		commit := i%2 == 0
		if err := prod.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction %d: %v", i, err)
		}
		var recs []*kgo.Record
		for j := 0; j < n; j++ {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(j % partitions), Key: []byte(fmt.Sprintf("k%d", j)), Value: []byte(fmt.Sprintf("txn %d record %d commit=%v", i, j, commit))})
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("ProduceSync in transaction %d: %v", i, err)
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatalf("EndTransaction %d (commit=%v): %v", i, commit, err)
		}
		if commit {
			committed = append(committed, recs...)
		} else {
			aborted = append(aborted, recs...)
		}
	}

	sameRecords(t, "read_committed", readAll(t, topic, partitions, kgo.ReadCommitted(), len(committed)), committed)
	all := append(append([]*kgo.Record{}, committed...), aborted...)
	sameRecords(t, "read_uncommitted", readAll(t, topic, partitions, kgo.ReadUncommitted(), len(all)), all)
	count := map[int32]int64{}
	for _, r := range all {
		count[r.Partition]++
	}
	hw, lso := endOffsets(t, topic)
	for p := int32(0); p < partitions; p++ {
		if hw[p] != count[p]+4 || lso[p] != hw[p] {
			t.Fatalf("partition %d: high watermark %d, LSO %d; want %d records + 4 markers and LSO = high watermark (no open transaction)", p, hw[p], lso[p], count[p])
		}
	}

	// An open transaction: acknowledged records beyond the LSO, invisible to read_committed.
	if err := prod.BeginTransaction(); err != nil {
		t.Fatalf("BeginTransaction: %v", err)
	}
	open := []*kgo.Record{{Topic: topic, Partition: 1, Value: []byte("open 0")}, {Topic: topic, Partition: 1, Value: []byte("open 1")}}
	if err := prod.ProduceSync(ctx, open...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync in the open transaction: %v", err)
	}
	if open[0].Offset != hw[1] {
		t.Fatalf("first record of the open transaction at offset %d, want %d", open[0].Offset, hw[1])
	}
	hw2, lso2 := endOffsets(t, topic)
	if lso2[1] != hw[1] || hw2[1] != hw[1]+2 {
		t.Fatalf("partition 1 with an open transaction: LSO %d, high watermark %d; want %d and %d", lso2[1], hw2[1], hw[1], hw[1]+2)
	}
	sameRecords(t, "read_committed with an open transaction", readAll(t, topic, partitions, kgo.ReadCommitted(), len(committed)), committed)
	if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("EndTransaction commit: %v", err)
	}
	committed = append(committed, open...)
	sameRecords(t, "read_committed after the commit", readAll(t, topic, partitions, kgo.ReadCommitted(), len(committed)), committed)
}

// TestFranzGroupTransactSession: a kgo.GroupTransactSession reads an input topic in a group
// (read_committed) and writes each record, upper-cased, to an output topic in transactions that
// also commit the group's offsets. The second round aborts: the session rewinds to the committed
// offsets and the round's records are processed again. At the end, the output read with
// read_committed holds exactly one transformed record per input record, read_uncommitted also
// the aborted round's, and the group's committed offsets are the input's end offsets.
func TestFranzGroupTransactSession(t *testing.T) {
	requireTransactions(t)
	const partitions, perPartition = 2, 25
	src, dst, group := uniqueName("franz-eos-in"), uniqueName("franz-eos-out"), uniqueName("franz-eos-group")
	createTopic(t, src, partitions)
	createTopic(t, dst, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()

	var inputs []*kgo.Record
	for p := int32(0); p < partitions; p++ {
		for i := 0; i < perPartition; i++ {
			inputs = append(inputs, &kgo.Record{Topic: src, Partition: p, Key: []byte(fmt.Sprintf("%d.%d", p, i)), Value: []byte(fmt.Sprintf("input %d.%d", p, i))})
		}
	}
	plain := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite())
	if err := plain.ProduceSync(ctx, inputs...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync inputs: %v", err)
	}
	plain.Close()

	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(brokers()...),
		kgo.TransactionalID(uniqueName("franz-eos-id")),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(src),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("NewGroupTransactSession: %v", err)
	}
	defer sess.Close()

	done := map[string]int{} // input key -> times it went out in a committed transaction
	var outCommitted, outAborted []*kgo.Record
	for round := 0; len(done) < len(inputs); {
		if ctx.Err() != nil {
			t.Fatalf("after %d rounds, %d of %d input records processed", round, len(done), len(inputs))
		}
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		fs := sess.PollRecords(pctx, 9)
		pcancel()
		fs.EachError(func(topic string, p int32, err error) {
			if err != context.DeadlineExceeded {
				t.Fatalf("fetch %s/%d: %v", topic, p, err)
			}
		})
		var in []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { in = append(in, r) })
		if len(in) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		var out []*kgo.Record
		for _, r := range in {
			out = append(out, &kgo.Record{Topic: dst, Partition: r.Partition, Key: r.Key, Value: []byte(fmt.Sprintf("OUT %s", r.Value))})
		}
		if err := sess.ProduceSync(ctx, out...).FirstErr(); err != nil {
			t.Fatalf("ProduceSync round %d: %v", round, err)
		}
		wantCommit := round != 1
		committed, err := sess.End(ctx, kgo.TransactionEndTry(wantCommit))
		if err != nil {
			t.Fatalf("End round %d (commit=%v): %v", round, wantCommit, err)
		}
		if committed != wantCommit {
			t.Fatalf("End round %d: committed=%v, want %v", round, committed, wantCommit)
		}
		if committed {
			outCommitted = append(outCommitted, out...)
			for _, r := range in {
				done[string(r.Key)]++
			}
		} else {
			outAborted = append(outAborted, out...)
		}
		round++
	}
	for k, n := range done {
		if n != 1 {
			t.Fatalf("input %s went out in %d committed transactions", k, n)
		}
	}
	if len(outAborted) == 0 {
		t.Fatalf("no aborted round")
	}

	// The group's offsets, asked for with RequireStable: the broker answers UNSTABLE_OFFSET_COMMIT
	// while the last transaction's offsets are not yet materialised (Kafka writes the markers
	// after answering EndTxn); ask again until they are.
	adm := kadm.NewClient(sess.Client())
	var fetched kadm.OffsetResponses
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		fetched, err = adm.FetchOffsets(kadm.RequireStable(ctx), group)
		if err != nil {
			t.Fatalf("FetchOffsets: %v", err)
		}
		unstable := false
		fetched.Each(func(o kadm.OffsetResponse) { unstable = unstable || errors.Is(o.Err, kerr.UnstableOffsetCommit) })
		if !unstable || time.Now().After(deadline) {
			break
		}
	}
	for p := int32(0); p < partitions; p++ {
		o, ok := fetched.Lookup(src, p)
		if !ok || o.Err != nil || o.At != perPartition {
			t.Fatalf("group %s committed %s/%d: %+v (found %v), want offset %d", group, src, p, o, ok, perPartition)
		}
	}

	got := readAll(t, dst, partitions, kgo.ReadCommitted(), len(inputs))
	sameRecords(t, "read_committed output", got, outCommitted)
	var values []string
	for _, list := range got {
		for _, r := range list {
			values = append(values, string(r.Value))
		}
	}
	var want []string
	for _, r := range inputs {
		want = append(want, "OUT "+string(r.Value))
	}
	sort.Strings(values)
	sort.Strings(want)
	if fmt.Sprint(values) != fmt.Sprint(want) {
		t.Fatalf("read_committed output values %v, want %v", values, want)
	}
	all := append(append([]*kgo.Record{}, outCommitted...), outAborted...)
	sameRecords(t, "read_uncommitted output", readAll(t, dst, partitions, kgo.ReadUncommitted(), len(all)), all)
}
