package compat

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// The legacy message formats (issue 6, the seed article's section 1.1.6): sarama configured for
// an old broker produces message sets instead of record batches and fetches with old versions.
//
//	V0_8_2_0   Produce v0 (magic 0, no timestamps), Fetch v0, ListOffsets v0, Metadata v0
//	V0_10_0_0  Produce v2 (magic 1, timestamps),    Fetch v2, ListOffsets v0, Metadata v1, ApiVersions v0
//
// Runs with RINGBOLT_COMPAT_LEGACY=1. Apache Kafka 4 removed these versions (KIP-896), so the
// reference run leaves it off.
var legacyVersions = []struct {
	name    string
	version sarama.KafkaVersion
	magic   int
}{
	{"V0_8_2_0", sarama.V0_8_2_0, 0},
	{"V0_10_0_0", sarama.V0_10_0_0, 1},
}

var legacyCodecs = []struct {
	name  string
	codec sarama.CompressionCodec
}{{"none", sarama.CompressionNone}, {"gzip", sarama.CompressionGZIP}}

func skipUnlessLegacy(t *testing.T) {
	if os.Getenv("RINGBOLT_COMPAT_LEGACY") != "1" {
		t.Skip("legacy message formats v0/v1 (issue 6): set RINGBOLT_COMPAT_LEGACY=1")
	}
}

// stamped is an acknowledged message plus the timestamp it was produced with.
type stamped struct {
	sent
	ts time.Time
}

// legacyMsgs: keys on two of three messages (the rest null), one null value, explicit
// millisecond timestamps.
func legacyMsgs(topic, prefix string, n int, base time.Time) []*sarama.ProducerMessage {
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		m := &sarama.ProducerMessage{Topic: topic, Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
		if i%3 != 0 {
			m.Key = sarama.StringEncoder(fmt.Sprintf("key-%d", i))
		}
		if i != 5 {
			m.Value = sarama.StringEncoder(fmt.Sprintf("%s value %d %s", prefix, i, "padding padding padding"))
		}
		msgs[i] = m
	}
	return msgs
}

// produceWith sends msgs in batches with a SyncProducer configured for `version` and `codec`.
func produceWith(t *testing.T, version sarama.KafkaVersion, codec sarama.CompressionCodec, msgs []*sarama.ProducerMessage) []stamped {
	t.Helper()
	config := articleConfig()
	config.Version = version
	config.Producer.Compression = codec
	config.Producer.Flush.Messages = 10 // several messages per request: sets / batches of many
	config.Producer.Flush.Frequency = 5 * time.Millisecond
	client, err := sarama.NewSyncProducer(brokers(), config)
	if err != nil {
		t.Fatalf("producer (%s): %v", version, err)
	}
	if err := client.SendMessages(msgs); err != nil {
		t.Fatalf("SendMessages (%s, %v): %v", version, codec, err)
	}
	client.Close()
	out := make([]stamped, 0, len(msgs))
	for _, m := range msgs {
		s := sent{partition: m.Partition, offset: m.Offset}
		if m.Key != nil {
			s.key, _ = m.Key.Encode()
		}
		if m.Value != nil {
			s.value, _ = m.Value.Encode()
		}
		out = append(out, stamped{s, m.Timestamp})
	}
	return out
}

// consumeWith reads every partition from the oldest offset with a consumer configured for
// `version` and checks partition, offset, key and value of each message (expectStreams), then the
// timestamps: exact for magic >= 1 readers when the writer kept them, absent for magic 0 readers.
func consumeWith(t *testing.T, version sarama.KafkaVersion, topic string, parts []int32, acks []stamped, timestamps bool) {
	t.Helper()
	plain := make([]sent, len(acks))
	stamps := map[[2]int64]time.Time{}
	for i, a := range acks {
		plain[i] = a.sent
		stamps[[2]int64{int64(a.partition), a.offset}] = a.ts
	}
	start := map[int32]int64{}
	for _, p := range parts {
		start[p] = 0
	}
	expected := byPartition(t, sortAcks(plain), start)
	config := sarama.NewConfig()
	config.Version = version
	consumer, err := sarama.NewConsumer(brokers(), config)
	if err != nil {
		t.Fatalf("consumer (%s): %v", version, err)
	}
	defer consumer.Close()
	streams := openStreams(t, consumer, topic, parts, sarama.OffsetOldest)
	expectStreams(t, streams, expected, consumeTimeout)
	for _, s := range streams {
		for _, m := range s.got {
			want := stamps[[2]int64{int64(m.Partition), m.Offset}]
			if timestamps && !m.Timestamp.Equal(want) {
				t.Fatalf("%s reader: partition %d offset %d: timestamp %v, want %v", version, m.Partition, m.Offset, m.Timestamp, want)
			}
			if !timestamps && m.Timestamp.After(time.Unix(0, 0)) {
				t.Fatalf("%s reader: partition %d offset %d: timestamp %v, want none", version, m.Partition, m.Offset, m.Timestamp)
			}
		}
	}
}

// TestLegacyProduceConsume: an old producer (magic 0 or 1, uncompressed or gzip) writes; the
// same old client reads it back (Fetch v0/v2: down-converted message sets) and so does a modern
// one (sarama's default version: record batches, which the broker stored).
func TestLegacyProduceConsume(t *testing.T) {
	skipUnlessLegacy(t)
	for _, v := range legacyVersions {
		for _, c := range legacyCodecs {
			t.Run(v.name+"/"+c.name, func(t *testing.T) {
				topic := uniqueName("legacy-" + v.name + "-" + c.name)
				createTopic(t, sarama.NewConfig(), topic, 2)
				parts := waitPartitions(t, topic, 2, 20*time.Second)
				base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
				acks := produceWith(t, v.version, c.codec, legacyMsgs(topic, "old "+v.name, 60, base))
				consumeWith(t, v.version, topic, parts, acks, v.magic >= 1)
				// A modern reader: magic 1 timestamps survive; magic 0 had none to keep.
				consumeWith(t, sarama.DefaultVersion, topic, parts, acks, v.magic >= 1)
			})
		}
	}
}

// TestLegacyReadsModern: a modern producer (record batches, uncompressed or gzip) writes; old
// consumers read down-converted message sets with the original offsets.
func TestLegacyReadsModern(t *testing.T) {
	skipUnlessLegacy(t)
	for _, c := range legacyCodecs {
		t.Run(c.name, func(t *testing.T) {
			topic := uniqueName("legacy-modern-" + c.name)
			createTopic(t, sarama.NewConfig(), topic, 2)
			parts := waitPartitions(t, topic, 2, 20*time.Second)
			base := time.Now().Add(-2 * time.Hour).Truncate(time.Millisecond)
			acks := produceWith(t, sarama.DefaultVersion, c.codec, legacyMsgs(topic, "modern", 60, base))
			for _, v := range legacyVersions {
				consumeWith(t, v.version, topic, parts, acks, v.magic >= 1)
			}
		})
	}
}
