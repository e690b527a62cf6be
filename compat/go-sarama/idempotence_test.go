package compat

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// idempotentConfig is what sarama demands for Producer.Idempotent: WaitForAll, one open request
// per broker connection, retries, and a protocol version >= 0.11 (InitProducerId, v2 batches with
// producer id and sequence numbers).
func idempotentConfig(v sarama.KafkaVersion) *sarama.Config {
	config := articleConfig()
	config.Version = v
	config.Producer.Idempotent = true
	config.Net.MaxOpenRequests = 1
	config.Producer.RequiredAcks = sarama.WaitForAll
	config.Producer.Retry.Max = 5
	return config
}

// TestIdempotentProducer: sarama's idempotent producer at the oldest version that allows it and
// at the newest this sarama knows. Messages go one by one (SendMessage) and in bulk
// (SendMessages, batched per partition); every partition's offsets must be contiguous from 0 and
// a consumer must read exactly what was acknowledged.
func TestIdempotentProducer(t *testing.T) {
	if os.Getenv("RINGBOLT_COMPAT_IDEMPOTENCE") != "1" {
		t.Skip("idempotent producer (issue 6): set RINGBOLT_COMPAT_IDEMPOTENCE=1")
	}
	for _, v := range []struct {
		name    string
		version sarama.KafkaVersion
	}{{"V0_11_0_0", sarama.V0_11_0_0}, {"max", sarama.MaxVersion}} {
		t.Run(v.name, func(t *testing.T) {
			const partitions = 3
			topic := uniqueName("idem")
			// Admin and consumer at sarama's default version: the point is the producer's versions
			// (Kafka 4, like this broker, no longer serves CreateTopics v0-v1, which V0_11_0_0 picks
			// in older sarama).
			createTopic(t, sarama.NewConfig(), topic, partitions)
			parts := waitPartitions(t, topic, partitions, 20*time.Second)
			waitServed(t, topic, parts)

			config := idempotentConfig(v.version)
			client := newProducerWithPID(t, config)
			var acks []sent
			for i := 0; i < 30; i++ {
				msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i%7)), Value: sarama.StringEncoder(fmt.Sprintf("one %d", i))}
				pid, offset, err := client.SendMessage(msg)
				if err != nil {
					t.Fatalf("SendMessage %d: %v", i, err)
				}
				k, _ := msg.Key.Encode()
				val, _ := msg.Value.Encode()
				acks = append(acks, sent{partition: pid, offset: offset, key: k, value: val})
			}
			bulk := valueMsgs(topic, "bulk", 300)
			if err := client.SendMessages(bulk); err != nil {
				t.Fatalf("SendMessages: %v", err)
			}
			for _, m := range bulk {
				val, _ := m.Value.Encode()
				acks = append(acks, sent{partition: m.Partition, offset: m.Offset, value: val})
			}
			if err := client.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			start := map[int32]int64{}
			for _, p := range parts {
				start[p] = 0
			}
			expected := byPartition(t, sortByOffset(acks), start)
			t.Logf("messages per partition: %v", counts(expected))

			consumer, err := sarama.NewConsumer(brokers(), sarama.NewConfig())
			if err != nil {
				t.Fatalf("consumer: %v", err)
			}
			defer consumer.Close()
			expectStreams(t, openStreams(t, consumer, topic, parts, sarama.OffsetOldest), expected, consumeTimeout)
		})
	}
}

// sortByOffset orders acknowledgements by (partition, offset): SendMessages acknowledges a bulk
// send as a whole, so slice order is not offset order.
func sortByOffset(acks []sent) []sent {
	out := append([]sent(nil), acks...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].partition < out[j-1].partition || (out[j].partition == out[j-1].partition && out[j].offset < out[j-1].offset)); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
