// Package cluster is the failover test for a 3-node cluster, run with franz-go (kgo + kadm)
// against either scripts/cluster.sh (Ringbolt) or benches/kafka/cluster.sh (Apache Kafka, the
// reference); compat/cluster/run.sh starts the cluster, runs this test and stops it.
//
// TestFailover creates a topic with replication factor 3, min.insync.replicas=2 and 6 partitions,
// and keeps idempotent acks=all producers writing to every partition: each record's value names its
// partition and a per-partition sequence number, and every acknowledged record is remembered with
// the offset the broker gave it. Meanwhile a driver kills a broker with kill -9 every few seconds,
// alternating between a partition leader, the active controller (DescribeQuorum's leader) and a
// follower, and starts it again after a pause; before the next kill it waits until every partition
// has its full ISR again, so that each cycle starts from a healthy cluster (a second kill while the
// first victim is still catching up may legitimately leave a partition without an eligible leader).
//
// At the end a consumer reads every partition from the beginning (assigned partitions, no group)
// up to its end offset, and the checker requires: every acknowledged record is present at the offset
// it was acknowledged with (zero loss), no (partition, sequence) appears twice (zero duplicates),
// sequence numbers ascend in offset order within a partition, and every record is in the partition
// its value names. Unacknowledged records may or may not be present: a produce whose answer was
// lost in a crash may still have been committed.
//
// Failover time per cycle is the time from the kill to the first acknowledgement of a record
// produced after the kill on a partition the killed broker led (cycles whose victim led nothing
// report the time until every partition took a write again instead); the summary gives p50 and max.
//
// Environment: CLUSTER_SCRIPT (required: the cluster script, its other variables such as
// CLUSTER_DIR are passed through), CYCLES (default 5), KILL_PAUSE_MS (pause before the restart,
// default 3000), KILL_INTERVAL_MS (healthy time between cycles, default 2000), HEAL_TIMEOUT_S
// (default 90), DEADLINE_S (the whole test, default 120 + 45 per cycle), PRODUCE_INTERVAL_MS
// (per-partition pause between records, default 2), FAILOVER_REPORT (a file the summary line is
// appended to), FRANZ_LOG (debug, info or warn: the client's own log on stderr).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	numPartitions = 6
	replication   = 3
	inflightPerP  = 32
)

// clientLog: franz-go's own log on stderr at FRANZ_LOG=debug|info|warn (default: none).
func clientLog() kgo.Opt {
	var level kgo.LogLevel
	switch os.Getenv("FRANZ_LOG") {
	case "debug":
		level = kgo.LogLevelDebug
	case "info":
		level = kgo.LogLevelInfo
	case "warn":
		level = kgo.LogLevelWarn
	default:
		level = kgo.LogLevelNone
	}
	return kgo.WithLogger(kgo.BasicLogger(os.Stderr, level, nil))
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return def
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// clusterCmd runs the cluster script with the test's environment (CLUSTER_DIR, ports, ...).
func clusterCmd(ctx context.Context, args ...string) (string, error) {
	script := os.Getenv("CLUSTER_SCRIPT")
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// ackEvent is one acknowledged record: when it was handed to the client and when it was acked.
type ackEvent struct {
	seq      int64
	offset   int64
	enqueued time.Time
	acked    time.Time
}

type partitionLog struct {
	mu   sync.Mutex
	acks []ackEvent
}

type cycle struct {
	kind     string
	victim   int32
	led      []int32   // partitions the victim led just before the kill
	killedAt time.Time // just before the kill
	deadAt   time.Time // once the process was gone: later records cannot reach it
}

func TestFailover(t *testing.T) {
	if os.Getenv("CLUSTER_SCRIPT") == "" {
		t.Skip("CLUSTER_SCRIPT is not set (compat/cluster/run.sh sets it)")
	}
	cycles := envInt("CYCLES", 5)
	deadline := time.Duration(envInt("DEADLINE_S", 120+45*cycles)) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()

	boot, err := clusterCmd(ctx, "bootstrap")
	if err != nil || boot == "" {
		t.Fatalf("%s bootstrap: %v", os.Getenv("CLUSTER_SCRIPT"), err)
	}
	seeds := strings.Split(boot, ",")
	adminCl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer adminCl.Close()
	adm := kadm.NewClient(adminCl)

	topic := fmt.Sprintf("failover-%d", time.Now().UnixMilli())
	minISR := "2"
	// Until every broker is registered and unfenced, a just-started cluster answers
	// INVALID_REPLICATION_FACTOR (Kafka too): retry for a while.
	createUntil := time.Now().Add(60 * time.Second)
	for {
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		resp, cerr := adm.CreateTopic(cctx, numPartitions, replication, map[string]*string{"min.insync.replicas": &minISR}, topic)
		ccancel()
		if err = cerr; err == nil {
			err = resp.Err
		}
		if err == nil || time.Now().After(createUntil) || ctx.Err() != nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("CreateTopic %s (RF=%d): %v", topic, replication, err)
	}
	if err := waitHealthy(ctx, adm, topic, 60*time.Second); err != nil {
		t.Fatalf("the new topic never had a leader and a full ISR on every partition: %v", err)
	}
	t.Logf("topic %s: %d partitions, RF=%d, min.insync.replicas=2, bootstrap %s", topic, numPartitions, replication, boot)

	// Producers: two idempotent acks=all clients, each owning half the partitions.
	logs := make([]*partitionLog, numPartitions)
	for i := range logs {
		logs[i] = &partitionLog{}
	}
	var produced, failed atomic.Int64
	var firstErrs sync.Map
	prodCtx, stopProducing := context.WithCancel(ctx)
	var prodWG sync.WaitGroup
	var clients []*kgo.Client
	for c := 0; c < 2; c++ {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(seeds...),
			kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(2*time.Millisecond),
			kgo.RecordDeliveryTimeout(60*time.Second),
			kgo.MetadataMinAge(250*time.Millisecond),
			clientLog(),
		)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, cl)
		for p := int32(c); p < numPartitions; p += 2 {
			prodWG.Add(1)
			go func(cl *kgo.Client, p int32) {
				defer prodWG.Done()
				produceLoop(prodCtx, cl, topic, p, logs[p], &produced, &failed, &firstErrs)
			}(cl, p)
		}
	}

	// The kill driver.
	var done []cycle
	pause := ms(envInt("KILL_PAUSE_MS", 3000))
	interval := ms(envInt("KILL_INTERVAL_MS", 2000))
	healTimeout := time.Duration(envInt("HEAL_TIMEOUT_S", 90)) * time.Second
	kinds := []string{"leader", "controller", "follower"}
	var driverErr error
	time.Sleep(interval)
	for i := 0; i < cycles && driverErr == nil; i++ {
		if ctx.Err() != nil {
			driverErr = fmt.Errorf("global deadline (%v) reached after %d of %d cycles", deadline, i, cycles)
			break
		}
		kind := kinds[i%len(kinds)]
		victim, led, err := pickVictim(ctx, adm, adminCl, topic, kind)
		if err != nil {
			driverErr = fmt.Errorf("cycle %d: choosing a %s: %w", i+1, kind, err)
			break
		}
		c := cycle{kind: kind, victim: victim, led: led, killedAt: time.Now()}
		if _, err := clusterCmd(ctx, "kill", strconv.Itoa(int(victim))); err != nil {
			driverErr = fmt.Errorf("cycle %d: kill %d: %w", i+1, victim, err)
			break
		}
		c.deadAt = time.Now()
		t.Logf("cycle %d: kill -9 node %d (%s; led partitions %v)", i+1, victim, kind, led)
		done = append(done, c)
		sleepCtx(ctx, pause)
		if _, err := clusterCmd(ctx, "restart", strconv.Itoa(int(victim))); err != nil {
			driverErr = fmt.Errorf("cycle %d: restart %d: %w", i+1, victim, err)
			break
		}
		t0 := time.Now()
		if err := waitHealthy(ctx, adm, topic, healTimeout); err != nil {
			driverErr = fmt.Errorf("cycle %d: node %d restarted but the ISRs did not heal: %w", i+1, victim, err)
			break
		}
		t.Logf("cycle %d: node %d back, every ISR full %.1fs after the restart", i+1, victim, time.Since(t0).Seconds())
		sleepCtx(ctx, interval)
	}

	// Stop producing, let the outstanding records settle (acked or failed).
	stopProducing()
	prodWG.Wait()
	for _, cl := range clients {
		fctx, fcancel := context.WithTimeout(context.Background(), 70*time.Second)
		if err := cl.Flush(fctx); err != nil {
			t.Logf("flush: %v (records still unanswered count as not acknowledged)", err)
		}
		fcancel()
		cl.Close()
	}

	// Read everything back.
	consumed, err := readAll(ctx, adm, seeds, topic)
	if err != nil {
		t.Fatalf("reading the topic back: %v", err)
	}

	// Check.
	var v verdict
	for p := int32(0); p < numPartitions; p++ {
		read := make([]stored, 0, len(consumed[p]))
		for _, r := range consumed[p] {
			read = append(read, stored{offset: r.Offset, value: r.Value})
		}
		logs[p].mu.Lock()
		acks := make([]ackedRecord, 0, len(logs[p].acks))
		for _, a := range logs[p].acks {
			acks = append(acks, ackedRecord{seq: a.seq, offset: a.offset})
		}
		logs[p].mu.Unlock()
		v.check(p, read, acks)
	}
	for _, s := range v.violations {
		t.Errorf("VIOLATION %s", s)
	}
	if v.failed() {
		t.Errorf("%d acknowledged records lost, %d moved, %d duplicates, %d out of order, %d misplaced", v.lost, v.moved, v.dups, v.disorder, v.misplaced)
	}

	// Failover times.
	var fo []time.Duration
	for i, c := range done {
		d, scope, ok := failoverTime(c, logs)
		if ok {
			fo = append(fo, d)
			t.Logf("cycle %d: %s node %d: failover %v (%s)", i+1, c.kind, c.victim, d.Round(time.Millisecond), scope)
		} else {
			t.Logf("cycle %d: %s node %d: no write acknowledged after the kill on %s", i+1, c.kind, c.victim, scope)
		}
	}
	slices.Sort(fo)
	p50, maxFo := "n/a", "n/a"
	if len(fo) > 0 {
		p50 = fo[len(fo)/2].Round(time.Millisecond).String()
		maxFo = fo[len(fo)-1].Round(time.Millisecond).String()
	}
	summary := fmt.Sprintf("failover summary: cycles=%d produced=%d acked=%d failed=%d present=%d lost=%d moved=%d duplicates=%d out_of_order=%d misplaced=%d failover_p50=%s failover_max=%s",
		len(done), produced.Load(), v.acked, failed.Load(), v.present, v.lost, v.moved, v.dups, v.disorder, v.misplaced, p50, maxFo)
	t.Log(summary)
	firstErrs.Range(func(k, v any) bool {
		t.Logf("produce error seen (not a violation by itself): %v x%d", k, v.(*atomic.Int64).Load())
		return true
	})
	if f := os.Getenv("FAILOVER_REPORT"); f != "" {
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, summary)
			fh.Close()
		}
	}
	if driverErr != nil {
		t.Errorf("driver: %v", driverErr)
	}
	if len(done) < cycles {
		t.Errorf("only %d of %d kill cycles ran", len(done), cycles)
	}
	if v.acked == 0 {
		t.Errorf("no record was acknowledged")
	}
	if len(fo) == 0 && len(done) > 0 {
		t.Errorf("no cycle saw a write acknowledged after its kill")
	}
}

func produceLoop(ctx context.Context, cl *kgo.Client, topic string, p int32, log *partitionLog,
	produced, failed *atomic.Int64, firstErrs *sync.Map) {
	sem := make(chan struct{}, inflightPerP)
	every := ms(envInt("PRODUCE_INTERVAL_MS", 2))
	for seq := int64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p=%d seq=%d", p, seq)}
		enq := time.Now()
		produced.Add(1)
		s := seq
		// Not ctx: stopping must not abandon records already handed over; Flush settles them.
		cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			<-sem
			if err != nil {
				failed.Add(1)
				key := errKey(err)
				v, _ := firstErrs.LoadOrStore(key, &atomic.Int64{})
				v.(*atomic.Int64).Add(1)
				return
			}
			log.mu.Lock()
			log.acks = append(log.acks, ackEvent{seq: s, offset: r.Offset, enqueued: enq, acked: time.Now()})
			log.mu.Unlock()
		})
		if every > 0 {
			time.Sleep(every)
		}
	}
}

func errKey(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// failoverTime: kill -> the moment every partition the victim led had acknowledged a record
// enqueued after the victim was gone (records enqueued between the kill and the process's end can
// still be acknowledged by the dying leader, so they do not count); if it led none, kill -> the
// moment every partition had such an ack.
func failoverTime(c cycle, logs []*partitionLog) (time.Duration, string, bool) {
	firstAfter := func(p int32) (time.Time, bool) {
		l := logs[p]
		l.mu.Lock()
		defer l.mu.Unlock()
		var best time.Time
		found := false
		for _, a := range l.acks {
			if a.enqueued.After(c.deadAt) && (!found || a.acked.Before(best)) {
				best, found = a.acked, true
			}
		}
		return best, found
	}
	if len(c.led) > 0 {
		var last time.Time
		for _, p := range c.led {
			at, ok := firstAfter(p)
			if !ok {
				return 0, fmt.Sprintf("partitions it led, %v", c.led), false
			}
			if at.After(last) {
				last = at
			}
		}
		return last.Sub(c.killedAt), fmt.Sprintf("every partition it led written again, %v", c.led), true
	}
	var worst time.Time
	for p := int32(0); p < numPartitions; p++ {
		at, ok := firstAfter(p)
		if !ok {
			return 0, "every partition", false
		}
		if at.After(worst) {
			worst = at
		}
	}
	return worst.Sub(c.killedAt), "it led no partition: every partition written again", true
}

func describe(ctx context.Context, adm *kadm.Client, topic string) (kadm.TopicDetail, error) {
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	md, err := adm.Metadata(mctx, topic)
	if err != nil {
		return kadm.TopicDetail{}, err
	}
	td, ok := md.Topics[topic]
	if !ok {
		return kadm.TopicDetail{}, fmt.Errorf("topic %s missing from metadata", topic)
	}
	if td.Err != nil {
		return td, td.Err
	}
	return td, nil
}

// waitHealthy waits until every partition has a leader and replication-factor ISR members.
func waitHealthy(ctx context.Context, adm *kadm.Client, topic string, timeout time.Duration) error {
	end := time.Now().Add(timeout)
	var last error
	for time.Now().Before(end) && ctx.Err() == nil {
		td, err := describe(ctx, adm, topic)
		if err == nil {
			last = nil
			if len(td.Partitions) != numPartitions {
				last = fmt.Errorf("%d partitions in metadata", len(td.Partitions))
			}
			for _, pd := range td.Partitions.Sorted() {
				if pd.Leader < 0 || len(pd.ISR) < replication || pd.Err != nil {
					last = fmt.Errorf("partition %d: leader %d, isr %v, err %v", pd.Partition, pd.Leader, pd.ISR, pd.Err)
					break
				}
			}
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	if last == nil {
		last = ctx.Err()
	}
	return last
}

// activeController asks DescribeQuorum (API key 55) for the metadata quorum's leader.
func activeController(ctx context.Context, cl *kgo.Client) (int32, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = "__cluster_metadata"
	rp := kmsg.NewDescribeQuorumRequestTopicPartition()
	rp.Partition = 0
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(qctx, cl)
	if err != nil {
		return -1, err
	}
	if resp.ErrorCode != 0 {
		return -1, fmt.Errorf("DescribeQuorum error code %d", resp.ErrorCode)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return -1, fmt.Errorf("DescribeQuorum partition error code %d", p.ErrorCode)
			}
			if p.LeaderID >= 0 {
				return p.LeaderID, nil
			}
		}
	}
	return -1, errors.New("DescribeQuorum named no leader")
}

func pickVictim(ctx context.Context, adm *kadm.Client, cl *kgo.Client, topic, kind string) (int32, []int32, error) {
	td, err := describe(ctx, adm, topic)
	if err != nil {
		return -1, nil, err
	}
	parts := td.Partitions.Sorted()
	ledBy := func(b int32) []int32 {
		var led []int32
		for _, pd := range parts {
			if pd.Leader == b {
				led = append(led, pd.Partition)
			}
		}
		return led
	}
	pd := parts[rand.Intn(len(parts))]
	switch kind {
	case "leader":
		return pd.Leader, ledBy(pd.Leader), nil
	case "controller":
		c, err := activeController(ctx, cl)
		if err != nil {
			return -1, nil, err
		}
		return c, ledBy(c), nil
	default: // a follower of a random partition, preferably not the active controller
		ctrl, _ := activeController(ctx, cl)
		var choice []int32
		for _, r := range pd.Replicas {
			if r != pd.Leader && r != ctrl {
				choice = append(choice, r)
			}
		}
		if len(choice) == 0 {
			for _, r := range pd.Replicas {
				if r != pd.Leader {
					choice = append(choice, r)
				}
			}
		}
		if len(choice) == 0 {
			return -1, nil, fmt.Errorf("partition %d has no follower (replicas %v)", pd.Partition, pd.Replicas)
		}
		v := choice[rand.Intn(len(choice))]
		return v, ledBy(v), nil
	}
}

// readAll reads every partition from its start to the end offset listed now.
func readAll(ctx context.Context, adm *kadm.Client, seeds []string, topic string) (map[int32][]*kgo.Record, error) {
	var ends kadm.ListedOffsets
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ends, err = adm.ListEndOffsets(lctx, topic)
		cancel()
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			break
		}
		sleepCtx(ctx, 500*time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("ListEndOffsets: %w", err)
	}
	want := map[int32]int64{}
	assign := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		assign[o.Partition] = kgo.NewOffset().AtStart()
	})
	if len(want) != numPartitions {
		return nil, fmt.Errorf("end offsets for %d partitions", len(want))
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: assign}),
		kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	out := map[int32][]*kgo.Record{}
	next := map[int32]int64{}
	rctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	for {
		complete := true
		for p, end := range want {
			if next[p] < end {
				complete = false
			}
		}
		if complete {
			return out, nil
		}
		fs := cl.PollFetches(rctx)
		if rctx.Err() != nil {
			return nil, fmt.Errorf("reading stopped at %v of %v: %w", next, want, rctx.Err())
		}
		fs.EachError(func(t string, p int32, err error) {
			fmt.Fprintf(os.Stderr, "fetch %s/%d: %v (retrying)\n", t, p, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < want[r.Partition] {
				out[r.Partition] = append(out[r.Partition], r)
			}
			next[r.Partition] = r.Offset + 1
		})
	}
}
