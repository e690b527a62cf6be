package compat

import (
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestCompression: the article's producer with each codec Kafka defines; the consumer must get
// the exact messages back (issue 6). Runs with RINGBOLT_COMPAT_COMPRESSION=1.
func TestCompression(t *testing.T) {
	if os.Getenv("RINGBOLT_COMPAT_COMPRESSION") != "1" {
		t.Skip("compressed batches (issue 6): set RINGBOLT_COMPAT_COMPRESSION=1")
	}
	for _, c := range []struct {
		name  string
		codec sarama.CompressionCodec
	}{{"gzip", sarama.CompressionGZIP}, {"snappy", sarama.CompressionSnappy}, {"lz4", sarama.CompressionLZ4}, {"zstd", sarama.CompressionZSTD}} {
		t.Run(c.name, func(t *testing.T) {
			topic := uniqueName("compressed-" + c.name)
			createTopic(t, sarama.NewConfig(), topic, 2)
			parts := waitPartitions(t, topic, 2, 20*time.Second)
			roundTripCompressed(t, topic, parts, c.codec, "compressible compressible compressible")
		})
	}
}

// roundTripCompressed sends 200 messages compressed with codec (about 20 per batch) through a
// SyncProducer and reads them back from the oldest offset of every partition, checking content,
// order and offsets.
func roundTripCompressed(t *testing.T, topic string, parts []int32, codec sarama.CompressionCodec, value string) {
	t.Helper()
	config := articleConfig()
	config.Version = sarama.V2_1_0_0 // zstd needs Produce v7 / Kafka 2.1
	config.Producer.Compression = codec
	config.Producer.Flush.Messages = 20 // several messages per batch
	config.Producer.Flush.Frequency = 5 * time.Millisecond
	client, err := sarama.NewSyncProducer(brokers(), config)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	msgs := valueMsgs(topic, value, 200)
	if err := client.SendMessages(msgs); err != nil {
		t.Fatalf("SendMessages: %v", err)
	}
	client.Close()
	var acks []sent
	for _, m := range msgs {
		v, _ := m.Value.Encode()
		acks = append(acks, sent{partition: m.Partition, offset: m.Offset, value: v})
	}
	start := map[int32]int64{}
	for _, p := range parts {
		start[p] = 0
	}
	expected := byPartition(t, sortAcks(acks), start)
	consumer, err := sarama.NewConsumer(brokers(), withVersion(sarama.NewConfig(), &sarama.V2_1_0_0))
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	expectStreams(t, openStreams(t, consumer, topic, parts, sarama.OffsetOldest), expected, consumeTimeout)
}

// sortAcks orders acknowledgements by (partition, offset): SendMessages may complete them out
// of order across partitions.
func sortAcks(a []sent) []sent {
	out := append([]sent{}, a...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].partition < out[j-1].partition || (out[j].partition == out[j-1].partition && out[j].offset < out[j-1].offset)); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// TestTopicCompressionType: a topic created with compression.type=zstd receives gzip batches
// from the producer; the broker stores them re-encoded (tests/server_legacy.rs checks the stored
// codec) and a consumer gets the exact messages back. Runs with RINGBOLT_COMPAT_COMPRESSION=1.
func TestTopicCompressionType(t *testing.T) {
	if os.Getenv("RINGBOLT_COMPAT_COMPRESSION") != "1" {
		t.Skip("compressed batches (issue 6): set RINGBOLT_COMPAT_COMPRESSION=1")
	}
	topic := uniqueName("topic-zstd")
	admin, err := sarama.NewClusterAdmin(brokers(), sarama.NewConfig())
	if err != nil {
		t.Fatalf("cluster admin: %v", err)
	}
	zstd := "zstd"
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"compression.type": &zstd}}, false)
	admin.Close()
	if err != nil {
		t.Fatalf("CreateTopic %s (compression.type=zstd): %v", topic, err)
	}
	parts := waitPartitions(t, topic, 2, 20*time.Second)
	roundTripCompressed(t, topic, parts, sarama.CompressionGZIP, "gzip into a zstd topic, compressible compressible")
	for _, p := range parts {
		for i, codec := range storedCodecs(t, topic, p) {
			if codec != sarama.CompressionZSTD {
				t.Errorf("partition %d batch %d: stored as %v, want zstd (the topic's compression.type)", p, i, codec)
			}
		}
	}
}

// storedCodecs fetches a partition from offset 0 with a low-level Fetch v10 and returns the
// codec of every record batch as the broker serves (stores) it.
func storedCodecs(t *testing.T, topic string, partition int32) []sarama.CompressionCodec {
	t.Helper()
	config := sarama.NewConfig()
	config.Version = sarama.V2_1_0_0
	client, err := sarama.NewClient(brokers(), config)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	leader, err := client.Leader(topic, partition)
	if err != nil {
		t.Fatalf("leader: %v", err)
	}
	req := &sarama.FetchRequest{Version: 10, MaxWaitTime: 100, MinBytes: 1, MaxBytes: 1 << 20}
	req.AddBlock(topic, partition, 0, 1<<20, -1)
	resp, err := leader.Fetch(req)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	block := resp.GetBlock(topic, partition)
	if block == nil || block.Err != sarama.ErrNoError {
		t.Fatalf("fetch %s/%d: %+v", topic, partition, block)
	}
	var out []sarama.CompressionCodec
	for _, r := range block.RecordsSet {
		if r.RecordBatch != nil {
			out = append(out, r.RecordBatch.Codec)
		}
	}
	if len(out) == 0 {
		t.Fatalf("fetch %s/%d: no record batches", topic, partition)
	}
	return out
}
