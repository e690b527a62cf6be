package compat

import (
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

var bootstrapFlag = flag.String("bootstrap", "", "broker address(es), comma-separated (default $RINGBOLT_BOOTSTRAP or 127.0.0.1:9092)")

func brokers() []string {
	b := *bootstrapFlag
	if b == "" {
		b = os.Getenv("RINGBOLT_BOOTSTRAP")
	}
	if b == "" {
		b = "127.0.0.1:9092"
	}
	return strings.Split(b, ",")
}

// uniqueName makes topic and group names unique per run, so the suite can run repeatedly
// against one long-lived broker (e.g. the reference Kafka).
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%04d", prefix, time.Now().UnixNano()/int64(time.Millisecond), rand.Intn(10000))
}

// sent is one acknowledged message: where the broker said it put it, and what it was.
type sent struct {
	partition int32
	offset    int64
	key       []byte // nil = null key
	value     []byte // nil = null value
	headers   []sarama.RecordHeader
}

// articleConfig is the seed article's producer configuration, verbatim.
func articleConfig() *sarama.Config {
	config := sarama.NewConfig()
	config.Producer.RequiredAcks = sarama.WaitForAll          // leader (and followers) must acknowledge
	config.Producer.Partitioner = sarama.NewRandomPartitioner // a random partition per message
	config.Producer.Return.Successes = true                   // delivered messages come back on Successes
	return config
}

// produce sends msgs one by one with a SyncProducer and returns what was acknowledged.
// logEach prints "pid:%v offset:%v" for each message as the article's program does.
func produce(t *testing.T, config *sarama.Config, msgs []*sarama.ProducerMessage, logEach bool) []sent {
	t.Helper()
	client, err := sarama.NewSyncProducer(brokers(), config)
	if err != nil {
		t.Fatalf("producer closed, err: %v", err)
	}
	defer client.Close()
	out := make([]sent, 0, len(msgs))
	for i, msg := range msgs {
		pid, offset, err := client.SendMessage(msg)
		if err != nil {
			t.Fatalf("send msg %d failed, err: %v", i, err)
		}
		if logEach {
			t.Logf("pid:%v offset:%v", pid, offset)
		}
		s := sent{partition: pid, offset: offset, headers: msg.Headers}
		if msg.Key != nil {
			s.key, _ = msg.Key.Encode()
		}
		if msg.Value != nil {
			s.value, _ = msg.Value.Encode()
		}
		out = append(out, s)
	}
	return out
}

func valueMsgs(topic, prefix string, n int) []*sarama.ProducerMessage {
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("%s %d", prefix, i))}
	}
	return msgs
}

// byPartition groups acknowledgements by partition and checks that each partition's offsets are
// contiguous (each = previous + 1), starting at start[p] when start has an entry for p.
func byPartition(t *testing.T, acks []sent, start map[int32]int64) map[int32][]sent {
	t.Helper()
	m := map[int32][]sent{}
	for _, a := range acks {
		m[a.partition] = append(m[a.partition], a)
	}
	for p, list := range m {
		want := list[0].offset
		if s, ok := start[p]; ok {
			want = s
		}
		for i, a := range list {
			if a.offset != want+int64(i) {
				t.Fatalf("partition %d: acknowledged offset #%d is %d, want %d (offsets must be contiguous)", p, i, a.offset, want+int64(i))
			}
		}
	}
	return m
}

// stream is one PartitionConsumer and what it has delivered so far.
type stream struct {
	partition int32
	pc        sarama.PartitionConsumer
	mu        sync.Mutex
	got       []*sarama.ConsumerMessage
	errs      []error
	done      chan struct{}
}

// openStreams starts ConsumePartition on every partition at `offset` (sarama.OffsetOldest,
// sarama.OffsetNewest or an absolute offset). The starting offset is fixed when this returns.
func openStreams(t *testing.T, consumer sarama.Consumer, topic string, partitions []int32, offset int64) []*stream {
	t.Helper()
	var out []*stream
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(topic, p, offset)
		if err != nil {
			t.Fatalf("failed to start consumer for partition %d, err: %v", p, err)
		}
		s := &stream{partition: p, pc: pc, done: make(chan struct{})}
		go func() {
			defer close(s.done)
			msgs, errs := pc.Messages(), pc.Errors()
			for msgs != nil || errs != nil {
				select {
				case m, ok := <-msgs:
					if !ok {
						msgs = nil
						continue
					}
					s.mu.Lock()
					s.got = append(s.got, m)
					s.mu.Unlock()
				case e, ok := <-errs:
					if !ok {
						errs = nil
						continue
					}
					s.mu.Lock()
					s.errs = append(s.errs, e)
					s.mu.Unlock()
				}
			}
		}()
		out = append(out, s)
	}
	return out
}

// expectStreams waits (up to timeout) until each stream delivered as many messages as expected
// for its partition, waits a little longer to catch extra deliveries, closes the streams and
// compares everything: partition, offset, key, value, headers, in order.
func expectStreams(t *testing.T, streams []*stream, expected map[int32][]sent, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ready := true
		for _, s := range streams {
			s.mu.Lock()
			if len(s.got) < len(expected[s.partition]) {
				ready = false
			}
			s.mu.Unlock()
		}
		if ready || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything beyond the expected count is an error
	for _, s := range streams {
		s.pc.AsyncClose()
	}
	for _, s := range streams {
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("partition %d: consumer did not close within 10s", s.partition)
		}
	}
	total := 0
	for _, s := range streams {
		want := expected[s.partition]
		total += len(want)
		for _, e := range s.errs {
			t.Errorf("partition %d: consumer error: %v", s.partition, e)
		}
		if len(s.got) != len(want) {
			t.Errorf("partition %d: received %d messages, want %d (timeout %v)", s.partition, len(s.got), len(want), timeout)
		}
		for i := 0; i < len(s.got) && i < len(want); i++ {
			g, w := s.got[i], want[i]
			if g.Partition != s.partition || g.Offset != w.offset {
				t.Fatalf("partition %d message #%d: got partition %d offset %d, want offset %d", s.partition, i, g.Partition, g.Offset, w.offset)
			}
			if !bytesEqualNil(g.Key, w.key) || !bytesEqualNil(g.Value, w.value) {
				t.Fatalf("partition %d offset %d: got key %q value %q (nil: %v/%v), want key %q value %q (nil: %v/%v)",
					s.partition, g.Offset, g.Key, g.Value, g.Key == nil, g.Value == nil, w.key, w.value, w.key == nil, w.value == nil)
			}
			if !headersEqual(g.Headers, w.headers) {
				t.Fatalf("partition %d offset %d: headers %v, want %v", s.partition, g.Offset, fmtHeaders(g.Headers), fmtHeaderVals(w.headers))
			}
		}
	}
	for p, want := range expected {
		found := false
		for _, s := range streams {
			found = found || s.partition == p
		}
		if !found && len(want) > 0 {
			t.Errorf("partition %d got %d messages but was not consumed (not listed by Partitions?)", p, len(want))
		}
	}
	if !t.Failed() {
		t.Logf("consumed %d messages over %d partitions: exact content, contiguous offsets, in order", total, len(streams))
	}
}

// bytesEqualNil compares contents, and also null-ness: a null key must come back null, and an
// empty key empty (sarama returns nil for a null key and an empty slice for an empty one).
func bytesEqualNil(a, b []byte) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return string(a) == string(b)
}

func headersEqual(got []*sarama.RecordHeader, want []sarama.RecordHeader) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if string(got[i].Key) != string(want[i].Key) || !bytesEqualNil(got[i].Value, want[i].Value) {
			return false
		}
	}
	return true
}

func fmtHeaders(h []*sarama.RecordHeader) string {
	var parts []string
	for _, x := range h {
		parts = append(parts, fmt.Sprintf("%s=%q", x.Key, x.Value))
	}
	return strings.Join(parts, ",")
}

func fmtHeaderVals(h []sarama.RecordHeader) string {
	var parts []string
	for _, x := range h {
		parts = append(parts, fmt.Sprintf("%s=%q", x.Key, x.Value))
	}
	return strings.Join(parts, ",")
}

// waitPartitions refreshes metadata until the topic reports n partitions with a leader each.
func waitPartitions(t *testing.T, topic string, n int, timeout time.Duration) []int32 {
	t.Helper()
	client, err := sarama.NewClient(brokers(), sarama.NewConfig())
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	deadline := time.Now().Add(timeout)
	for {
		err := client.RefreshMetadata(topic)
		var parts []int32
		if err == nil {
			parts, err = client.Partitions(topic)
		}
		if err == nil && len(parts) == n {
			ok := true
			for _, p := range parts {
				if _, lerr := client.Leader(topic, p); lerr != nil {
					ok = false
				}
			}
			if ok {
				sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
				return parts
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s: want %d partitions with leaders within %v; last: %v, err %v", topic, n, timeout, parts, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func createTopic(t *testing.T, config *sarama.Config, topic string, partitions int32) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(brokers(), config)
	if err != nil {
		t.Fatalf("cluster admin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("CreateTopic %s (%d partitions): %v", topic, partitions, err)
	}
}

// waitServed waits until the leader of each partition answers ListOffsets. Kafka may answer the
// first requests for a just-created topic with NOT_LEADER_OR_FOLLOWER although Metadata already
// names the leader: github.com/Shopify/sarama v1.38.1's idempotent and transactional producers
// then fail (NOT_LEADER_OR_FOLLOWER at V0_11_0_0, or OUT_OF_ORDER_SEQUENCE_NUMBER on the retried
// batch), a client's problem, not the broker's under test.
func waitServed(t *testing.T, topic string, parts []int32) {
	t.Helper()
	client, err := sarama.NewClient(brokers(), sarama.NewConfig())
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	deadline := time.Now().Add(20 * time.Second)
	for _, p := range parts {
		for {
			_, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("ListOffsets %s/%d within 20 s: %v", topic, p, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// newProducerWithPID creates a SyncProducer whose InitProducerId (idempotent or transactional)
// may meet COORDINATOR_LOAD_IN_PROGRESS: Kafka answers so until, after a start or restart, its
// producer-id block or transaction log is loaded, and sarama gives up at once.
func newProducerWithPID(t *testing.T, config *sarama.Config) sarama.SyncProducer {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := sarama.NewSyncProducer(brokers(), config)
		if err == nil {
			return p
		}
		if !errors.Is(err, sarama.ErrOffsetsLoadInProgress) || time.Now().After(deadline) {
			t.Fatalf("producer (InitProducerId): %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
