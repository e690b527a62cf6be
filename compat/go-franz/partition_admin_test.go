package compat

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzPartitionAdmin: the partition-level admin APIs through kadm (DeleteRecords,
// DescribeLogDirs, OffsetForLeaderEpoch, ElectLeaders, AlterPartitionAssignments,
// ListPartitionReassignments), and a kgo consumer that starts at an offset with a leader epoch,
// which franz-go validates with OffsetForLeaderEpoch before it fetches: a valid position reads on,
// one past where the epoch ended is reported as data loss and reset to that end.
func TestFranzPartitionAdmin(t *testing.T) {
	topic := uniqueName("franz-padm")
	createTopic(t, topic, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	prod := newClient(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.DisableIdempotentWrite())
	defer prod.Close()
	for i := 0; i < 20; i++ {
		r := &kgo.Record{Topic: topic, Partition: 0, Value: []byte{byte(i)}}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	adm := kadm.NewClient(prod)

	// DeleteRecords: inside the log on p0; beyond the high watermark (0) on p1.
	var del kadm.Offsets
	del.AddOffset(topic, 0, 7, -1)
	del.AddOffset(topic, 1, 5, -1)
	dr, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	if r := dr[topic][0]; r.Err != nil || r.LowWatermark != 7 {
		t.Fatalf("DeleteRecords p0: low watermark %d, err %v; want 7", r.LowWatermark, r.Err)
	}
	if r := dr[topic][1]; !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Fatalf("DeleteRecords p1 beyond the high watermark: err %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListStartOffsets: %v", err)
	}
	if s, _ := starts.Lookup(topic, 0); s.Offset != 7 {
		t.Fatalf("start offset after DeleteRecords: %d, want 7", s.Offset)
	}

	// DescribeLogDirs: one broker, one directory, both partitions, p0 non-empty.
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatalf("DescribeAllLogDirs: %v", err)
	}
	all := dirs.Sorted()
	if len(all) != 1 || all[0].Err != nil || all[0].TotalBytes <= 0 || all[0].UsableBytes <= 0 {
		t.Fatalf("log dirs: %+v", all)
	}
	p0, ok0 := all[0].Topics.Lookup(topic, 0)
	_, ok1 := all[0].Topics.Lookup(topic, 1)
	if !ok0 || !ok1 || p0.Size <= 0 || p0.OffsetLag != 0 || p0.IsFuture {
		t.Fatalf("log dir partitions: p0 %+v (%v), p1 present %v", p0, ok0, ok1)
	}

	// OffsetForLeaderEpoch: epoch 0 is the current one, ending at the log end.
	var req kadm.OffsetForLeaderEpochRequest
	req.Add(topic, 0, 0)
	eo, err := adm.OffsetForLeaderEpoch(ctx, req)
	if err != nil {
		t.Fatalf("OffsetForLeaderEpoch: %v", err)
	}
	if r := eo[topic][0]; r.Err != nil || r.LeaderEpoch != 0 || r.EndOffset != 20 {
		t.Fatalf("OffsetForLeaderEpoch: %+v, want epoch 0 ending at 20", r)
	}

	// ElectLeaders: the preferred leader already leads.
	el, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("ElectLeaders: %v", err)
	}
	if r := el[topic][0]; !errors.Is(r.Err, kerr.ElectionNotNeeded) {
		t.Fatalf("ElectLeaders: %+v, want ELECTION_NOT_NEEDED", r)
	}

	// Reassignments: to the one broker is a no-op; to another id is invalid; none in progress.
	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) != 1 {
		t.Fatalf("ListBrokers: %v %v", brokers, err)
	}
	node := brokers[0].NodeID
	var ra kadm.AlterPartitionAssignmentsReq
	ra.Assign(topic, 0, []int32{node})
	ra.Assign(topic, 1, []int32{node + 1})
	ar, err := adm.AlterPartitionAssignments(ctx, ra)
	if err != nil {
		t.Fatalf("AlterPartitionAssignments: %v", err)
	}
	if r := ar[topic][0]; r.Err != nil {
		t.Fatalf("reassign to this node: %+v", r)
	}
	if r := ar[topic][1]; !errors.Is(r.Err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("reassign to broker %d: %+v, want INVALID_REPLICA_ASSIGNMENT", node+1, r)
	}
	lr, err := adm.ListPartitionReassignments(ctx, nil)
	if err != nil || len(lr) != 0 {
		t.Fatalf("ListPartitionReassignments: %v %v", lr, err)
	}

	// A consumer starting at offset 9 in epoch 0: validated, reads on with epoch 0 records.
	cons := newClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().At(9).WithEpoch(0)},
	}))
	defer cons.Close()
	var got []*kgo.Record
	for len(got) < 11 && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("fetch errors: %v", errs)
		}
		got = append(got, fs.Records()...)
	}
	if len(got) != 11 || got[0].Offset != 9 || got[0].LeaderEpoch != 0 {
		t.Fatalf("consumed %d records, first %+v; want 11 from offset 9 in epoch 0", len(got), got[0])
	}

	// At 100 in epoch 0, which ended at 20: data loss, reset to 20.
	lost := newClient(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {0: kgo.NewOffset().At(100).WithEpoch(0)},
	}))
	defer lost.Close()
	var dl *kgo.ErrDataLoss
	for dl == nil && ctx.Err() == nil {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		fs := lost.PollFetches(pctx)
		pcancel()
		for _, fe := range fs.Errors() {
			if !errors.As(fe.Err, &dl) && !errors.Is(fe.Err, context.DeadlineExceeded) {
				t.Fatalf("fetch error: %v", fe.Err)
			}
		}
	}
	if dl == nil || dl.ConsumedTo != 100 || dl.ResetTo != 20 {
		t.Fatalf("data loss: %+v, want consumed to 100, reset to 20", dl)
	}
}
