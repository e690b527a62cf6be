// Package compat drives the broker with franz-go (kgo + kadm), a client that negotiates the newest
// request versions both sides support via ApiVersions. Bootstrap: -bootstrap or RINGBOLT_BOOTSTRAP.
package compat

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var bootstrapFlag = flag.String("bootstrap", "", "broker address(es) (default $RINGBOLT_BOOTSTRAP or 127.0.0.1:9092)")

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

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%04d", prefix, time.Now().UnixMilli(), rand.Intn(10000))
}

func newClient(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers()...)}, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	return cl
}

func createTopic(t *testing.T, topic string, partitions int32) {
	t.Helper()
	cl := newClient(t)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, partitions, 1, nil, topic)
	if err != nil {
		t.Fatalf("CreateTopics: %v", err)
	}
	if r := resp[topic]; r.Err != nil {
		t.Fatalf("CreateTopics %s: %v", topic, r.Err)
	}
}

// TestFranzRoundTrip: records with keys (null, empty, bytes), values (null, empty, binary),
// headers and timestamps produced with acks=all to explicit partitions, consumed back exactly;
// start/end offsets from ListOffsets; topic deletion. "plain" disables idempotent writes (franz-go's
// default); "idempotent" uses them and needs InitProducerId (issue 6: RINGBOLT_COMPAT_IDEMPOTENCE=1).
func TestFranzRoundTrip(t *testing.T) {
	for _, variant := range []string{"plain", "idempotent"} {
		t.Run(variant, func(t *testing.T) {
			popts := []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5 * time.Millisecond)}
			if variant == "plain" {
				popts = append(popts, kgo.DisableIdempotentWrite())
			} else if os.Getenv("RINGBOLT_COMPAT_IDEMPOTENCE") != "1" {
				t.Skip("idempotent producer (issue 6): set RINGBOLT_COMPAT_IDEMPOTENCE=1")
			}
			const partitions = 4
			topic := uniqueName("franz")
			createTopic(t, topic, partitions)

			base := time.UnixMilli(time.Now().UnixMilli() - 1800_000)
			var recs []*kgo.Record
			for i := 0; i < 400; i++ {
				r := &kgo.Record{Topic: topic, Partition: int32(i % partitions), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
				switch {
				case i%5 == 0: // null key
				case i%23 == 0:
					r.Key = []byte{}
				default:
					r.Key = []byte(fmt.Sprintf("key-%d", i%17))
				}
				switch {
				case i%7 == 0: // null value
				case i%19 == 0:
					r.Value = []byte{}
				default:
					r.Value = []byte(fmt.Sprintf("franz %d \x00\xff", i))
				}
				if i%3 == 0 {
					r.Headers = []kgo.RecordHeader{{Key: "trace", Value: []byte(fmt.Sprint(i))}, {Key: "dup", Value: []byte("1")}, {Key: "dup", Value: []byte("2")}}
				}
				recs = append(recs, r)
			}
			prod := newClient(t, popts...)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("ProduceSync: %v", err)
			}
			prod.Close()
			want := map[int32][]*kgo.Record{}
			for _, r := range recs {
				want[r.Partition] = append(want[r.Partition], r)
			}
			for p, list := range want {
				for i, r := range list {
					if r.Offset != int64(i) {
						t.Fatalf("partition %d: record #%d acknowledged at offset %d, want %d", p, i, r.Offset, i)
					}
				}
			}

			offsets := map[string]map[int32]kgo.Offset{topic: {}}
			for p := int32(0); p < partitions; p++ {
				offsets[topic][p] = kgo.NewOffset().AtStart()
			}
			cons := newClient(t, kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(200*time.Millisecond))
			defer cons.Close()
			got := map[int32][]*kgo.Record{}
			n, deadline := 0, time.Now().Add(30*time.Second)
			var extraUntil time.Time
			for {
				now := time.Now()
				if n >= len(recs) && extraUntil.IsZero() {
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
			for p := int32(0); p < partitions; p++ {
				g, w := got[p], want[p]
				if len(g) != len(w) {
					t.Fatalf("partition %d: consumed %d records, want %d", p, len(g), len(w))
				}
				for i := range g {
					where := fmt.Sprintf("partition %d offset %d", p, w[i].Offset)
					if g[i].Offset != w[i].Offset {
						t.Fatalf("%s: consumed offset %d", where, g[i].Offset)
					}
					if !sameBytes(g[i].Key, w[i].Key) || !sameBytes(g[i].Value, w[i].Value) {
						t.Fatalf("%s: key %q value %q (nil %v/%v), want %q %q (nil %v/%v)", where, g[i].Key, g[i].Value, g[i].Key == nil, g[i].Value == nil, w[i].Key, w[i].Value, w[i].Key == nil, w[i].Value == nil)
					}
					if fmt.Sprint(g[i].Headers) != fmt.Sprint(w[i].Headers) {
						t.Fatalf("%s: headers %v, want %v", where, g[i].Headers, w[i].Headers)
					}
					if !g[i].Timestamp.Equal(w[i].Timestamp) {
						t.Fatalf("%s: timestamp %v, want %v", where, g[i].Timestamp, w[i].Timestamp)
					}
					// franz-go silently falls back to plain writes when the broker does not
					// advertise InitProducerId: an idempotent write must carry a producer id.
					if variant == "idempotent" && g[i].ProducerID < 0 {
						t.Fatalf("%s: producer id %d: the write was not idempotent (no InitProducerId?)", where, g[i].ProducerID)
					}
				}
			}

			adm := kadm.NewClient(cons)
			actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer acancel()
			starts, err := adm.ListStartOffsets(actx, topic)
			if err != nil {
				t.Fatalf("ListStartOffsets: %v", err)
			}
			ends, err := adm.ListEndOffsets(actx, topic)
			if err != nil {
				t.Fatalf("ListEndOffsets: %v", err)
			}
			for p := int32(0); p < partitions; p++ {
				s, _ := starts.Lookup(topic, p)
				e, _ := ends.Lookup(topic, p)
				if s.Err != nil || e.Err != nil || s.Offset != 0 || e.Offset != int64(len(want[p])) {
					t.Fatalf("partition %d: start %d (%v) end %d (%v), want 0 and %d", p, s.Offset, s.Err, e.Offset, e.Err, len(want[p]))
				}
			}
			del, err := adm.DeleteTopics(actx, topic)
			if err != nil || del[topic].Err != nil {
				t.Fatalf("DeleteTopics: %v / %v", err, del[topic].Err)
			}
		})
	}
}

// sameBytes: equal content and equal null-ness (franz-go returns nil for a null key/value).
func sameBytes(a, b []byte) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return bytes.Equal(a, b)
}
