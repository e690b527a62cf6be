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
			config := articleConfig()
			config.Version = sarama.V2_1_0_0 // zstd needs Produce v7 / Kafka 2.1
			config.Producer.Compression = c.codec
			config.Producer.Flush.Messages = 20 // several messages per batch
			config.Producer.Flush.Frequency = 5 * time.Millisecond
			client, err := sarama.NewSyncProducer(brokers(), config)
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
			msgs := valueMsgs(topic, "compressible compressible compressible", 200)
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
		})
	}
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
