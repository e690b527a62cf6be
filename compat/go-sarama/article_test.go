package compat

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

const consumeTimeout = 30 * time.Second

// versions: sarama's default protocol version (what the article's users get) and the newest
// version this sarama release knows (newer request versions: Produce, Fetch, Metadata, ...).
var versions = []struct {
	name    string
	version *sarama.KafkaVersion
}{
	{"default", nil},
	{"max", &sarama.MaxVersion},
}

func withVersion(c *sarama.Config, v *sarama.KafkaVersion) *sarama.Config {
	if v != nil {
		c.Version = *v
	}
	return c
}

// TestArticle is the seed article's producer and consumer: a SyncProducer (WaitForAll, random
// partitioner, Return.Successes) sending to a new, auto-created topic `web_log-*`; then a
// Consumer made with a nil config that lists Partitions and runs ConsumePartition on each, first
// from OffsetOldest (everything produced), then from OffsetNewest (only what is produced after).
func TestArticle(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			topic := uniqueName("web_log")
			acks := produce(t, withVersion(articleConfig(), v.version), valueMsgs(topic, "this is a test log", 50), true)
			start := map[int32]int64{}
			for _, a := range acks {
				start[a.partition] = 0 // a new topic: offsets start at 0
			}
			expected := byPartition(t, acks, start)

			var consumerConfig *sarama.Config // nil, as in the article
			if v.version != nil {
				consumerConfig = withVersion(sarama.NewConfig(), v.version)
			}
			consumer, err := sarama.NewConsumer(brokers(), consumerConfig)
			if err != nil {
				t.Fatalf("fail to start consumer, err: %v", err)
			}
			defer consumer.Close()
			partitionList, err := consumer.Partitions(topic)
			if err != nil {
				t.Fatalf("fail to get list of partition: err %v", err)
			}
			t.Logf("partitions of %s: %v", topic, partitionList)
			expectStreams(t, openStreams(t, consumer, topic, partitionList, sarama.OffsetOldest), expected, consumeTimeout)

			newest := openStreams(t, consumer, topic, partitionList, sarama.OffsetNewest)
			next := map[int32]int64{}
			for p, list := range expected {
				next[p] = list[len(list)-1].offset + 1
			}
			for _, p := range partitionList {
				if _, ok := next[p]; !ok {
					next[p] = 0
				}
			}
			more := produce(t, withVersion(articleConfig(), v.version), valueMsgs(topic, "after OffsetNewest", 20), false)
			expectStreams(t, newest, byPartition(t, more, next), consumeTimeout)
		})
	}
}

// TestMultiPartition: a topic created with ClusterAdmin.CreateTopic (6 partitions); the random
// partitioner must spread messages over all of them; OffsetOldest and OffsetNewest as above.
func TestMultiPartition(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			const partitions = 6
			topic := uniqueName("web_log_multi")
			createTopic(t, withVersion(sarama.NewConfig(), v.version), topic, partitions)
			parts := waitPartitions(t, topic, partitions, 20*time.Second)

			acks := produce(t, withVersion(articleConfig(), v.version), valueMsgs(topic, "multi", 300), false)
			start := map[int32]int64{}
			for _, p := range parts {
				start[p] = 0
			}
			expected := byPartition(t, acks, start)
			for _, p := range parts {
				if len(expected[p]) == 0 {
					t.Fatalf("random partitioner left partition %d empty after 300 messages: %v", p, counts(expected))
				}
			}
			t.Logf("messages per partition: %v", counts(expected))

			consumer, err := sarama.NewConsumer(brokers(), withVersion(sarama.NewConfig(), v.version))
			if err != nil {
				t.Fatalf("consumer: %v", err)
			}
			defer consumer.Close()
			listed, err := consumer.Partitions(topic)
			if err != nil || len(listed) != partitions {
				t.Fatalf("Partitions(%s) = %v, %v; want %d partitions", topic, listed, err, partitions)
			}
			expectStreams(t, openStreams(t, consumer, topic, listed, sarama.OffsetOldest), expected, consumeTimeout)

			newest := openStreams(t, consumer, topic, listed, sarama.OffsetNewest)
			next := map[int32]int64{}
			for _, p := range parts {
				next[p] = int64(len(expected[p]))
			}
			more := produce(t, withVersion(articleConfig(), v.version), valueMsgs(topic, "multi newest", 60), false)
			expectStreams(t, newest, byPartition(t, more, next), consumeTimeout)

			// Reading from an absolute offset in the middle of a partition.
			p := parts[0]
			mid := int64(len(expected[p]) / 2)
			fromMid := openStreams(t, consumer, topic, []int32{p}, mid)
			want := map[int32][]sent{p: append(append([]sent{}, expected[p][mid:]...), byPartition(t, more, next)[p]...)}
			expectStreams(t, fromMid, want, consumeTimeout)
		})
	}
}

// TestKeysHeadersTimestamps: keyed messages with the hash partitioner (same key, same partition),
// null keys, null and empty values, record headers and producer timestamps round-trip exactly.
func TestKeysHeadersTimestamps(t *testing.T) {
	for _, v := range versions {
		t.Run(v.name, func(t *testing.T) {
			const partitions = 4
			topic := uniqueName("keyed")
			createTopic(t, withVersion(sarama.NewConfig(), v.version), topic, partitions)
			parts := waitPartitions(t, topic, partitions, 20*time.Second)

			config := withVersion(articleConfig(), v.version)
			config.Producer.Partitioner = sarama.NewHashPartitioner
			base := time.UnixMilli(time.Now().UnixMilli() - 3600_000)
			var msgs []*sarama.ProducerMessage
			for i := 0; i < 200; i++ {
				m := &sarama.ProducerMessage{Topic: topic, Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
				if i%7 != 0 {
					m.Key = sarama.StringEncoder(fmt.Sprintf("key-%d", i%13))
				}
				switch {
				case i%11 == 0: // null value (a tombstone)
				case i%17 == 0:
					m.Value = sarama.ByteEncoder([]byte{})
				default:
					m.Value = sarama.ByteEncoder([]byte(fmt.Sprintf("value %d \x00\xff\xfe binary", i)))
				}
				if i%3 == 0 {
					m.Headers = []sarama.RecordHeader{
						{Key: []byte("trace-id"), Value: []byte(fmt.Sprintf("t-%d", i))},
						{Key: []byte("empty"), Value: []byte{}},
					}
				}
				msgs = append(msgs, m)
			}
			acks := produce(t, config, msgs, false)
			keyPart := map[string]int32{}
			for _, a := range acks {
				if a.key == nil {
					continue
				}
				if p, ok := keyPart[string(a.key)]; ok && p != a.partition {
					t.Fatalf("key %q went to partitions %d and %d", a.key, p, a.partition)
				}
				keyPart[string(a.key)] = a.partition
			}
			start := map[int32]int64{}
			for _, p := range parts {
				start[p] = 0
			}
			expected := byPartition(t, acks, start)

			consumer, err := sarama.NewConsumer(brokers(), withVersion(sarama.NewConfig(), v.version))
			if err != nil {
				t.Fatalf("consumer: %v", err)
			}
			defer consumer.Close()
			streams := openStreams(t, consumer, topic, parts, sarama.OffsetOldest)
			expectStreams(t, streams, expected, consumeTimeout)
			// Timestamps (CreateTime, millisecond precision).
			wantTs := map[int32]map[int64]time.Time{}
			for i, a := range acks {
				if wantTs[a.partition] == nil {
					wantTs[a.partition] = map[int64]time.Time{}
				}
				wantTs[a.partition][a.offset] = msgs[i].Timestamp
			}
			for _, s := range streams {
				for _, m := range s.got {
					if w := wantTs[s.partition][m.Offset]; !m.Timestamp.Equal(w) {
						t.Fatalf("partition %d offset %d: timestamp %v, want %v", s.partition, m.Offset, m.Timestamp, w)
					}
				}
			}
		})
	}
}

func counts(m map[int32][]sent) map[int32]int {
	c := map[int32]int{}
	for p, l := range m {
		c[p] = len(l)
	}
	return c
}
