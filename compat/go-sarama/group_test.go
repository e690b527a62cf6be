package compat

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// Consumer-group tests need FindCoordinator/JoinGroup/SyncGroup/Heartbeat/LeaveGroup/
// OffsetCommit/OffsetFetch (issue 5). They run only with RINGBOLT_COMPAT_GROUPS=1.
func requireGroups(t *testing.T) {
	if os.Getenv("RINGBOLT_COMPAT_GROUPS") != "1" {
		t.Skip("consumer-group tests need RINGBOLT_COMPAT_GROUPS=1 (a broker with a group coordinator)")
	}
}

func groupConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.AutoCommit.Interval = 200 * time.Millisecond
	c.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second // Kafka's group.min.session.timeout.ms
	c.Consumer.Group.Rebalance.Timeout = 10 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	c.Consumer.Return.Errors = true
	return c
}

// handled is one message seen by a member's ConsumeClaim.
type handled struct {
	member     int
	generation int32
	partition  int32
	offset     int64
	value      string
}

// groupLog collects what all members of a test saw: claims per generation and handled messages.
type groupLog struct {
	mu      sync.Mutex
	claims  map[int32]map[int][]int32 // generation -> member -> partitions
	handled []handled
	errs    []error
}

func newGroupLog() *groupLog { return &groupLog{claims: map[int32]map[int][]int32{}} }

type member struct {
	id  int
	log *groupLog
	cg  sarama.ConsumerGroup
	ctx context.Context
	end context.CancelFunc
	wg  sync.WaitGroup
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.log.mu.Lock()
	defer m.log.mu.Unlock()
	g := s.GenerationID()
	if m.log.claims[g] == nil {
		m.log.claims[g] = map[int][]int32{}
	}
	// A member may set up the same generation more than once (a session that failed and was
	// re-joined); the latest claims replace earlier ones.
	mine := []int32{}
	for _, ps := range s.Claims() {
		mine = append(mine, ps...)
	}
	m.log.claims[g][m.id] = mine
	return nil
}

// Cleanup commits synchronously what this member marked, before the partitions move on.
func (m *member) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		m.log.mu.Lock()
		m.log.handled = append(m.log.handled, handled{m.id, s.GenerationID(), msg.Partition, msg.Offset, string(msg.Value)})
		m.log.mu.Unlock()
		s.MarkMessage(msg, fmt.Sprintf("member %d", m.id))
	}
	return nil
}

func startMember(t *testing.T, id int, group, topic string, log *groupLog, config *sarama.Config) *member {
	t.Helper()
	cg, err := sarama.NewConsumerGroup(brokers(), group, config)
	if err != nil {
		t.Fatalf("member %d: NewConsumerGroup: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{id: id, log: log, cg: cg, ctx: ctx, end: cancel}
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
				log.mu.Lock()
				log.errs = append(log.errs, fmt.Errorf("member %d: Consume: %w", id, err))
				log.mu.Unlock()
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	go func() {
		defer m.wg.Done()
		for err := range cg.Errors() {
			log.mu.Lock()
			log.errs = append(log.errs, fmt.Errorf("member %d: %w", id, err))
			log.mu.Unlock()
		}
	}()
	return m
}

func (m *member) stop(t *testing.T) {
	t.Helper()
	m.end()
	if err := m.cg.Close(); err != nil {
		t.Errorf("member %d: Close: %v", m.id, err)
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("member %d did not stop within 20s", m.id)
	}
}

// waitBalanced waits for a generation in which exactly the given members hold claims that
// cover every partition exactly once, and returns that generation's assignment.
func waitBalanced(t *testing.T, log *groupLog, members []int, partitions int, timeout time.Duration) (int32, map[int][]int32) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		log.mu.Lock()
		var gens []int32
		for g := range log.claims {
			gens = append(gens, g)
		}
		sort.Slice(gens, func(i, j int) bool { return gens[i] > gens[j] })
		if len(gens) > 0 {
			g := gens[0]
			a := log.claims[g]
			owner := map[int32]int{}
			ok := len(a) == len(members)
			for _, id := range members {
				ps, has := a[id]
				if !has {
					ok = false
				}
				for _, p := range ps {
					if prev, dup := owner[p]; dup {
						log.mu.Unlock()
						t.Fatalf("generation %d: partition %d assigned to members %d and %d", g, p, prev, id)
					}
					owner[p] = id
				}
			}
			if ok && len(owner) == partitions {
				copyA := map[int][]int32{}
				for k, v := range a {
					copyA[k] = append([]int32{}, v...)
				}
				log.mu.Unlock()
				return g, copyA
			}
		}
		errs := summarize(log.errs)
		claims := fmt.Sprint(log.claims)
		log.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no balanced generation for members %v over %d partitions within %v; claims by generation: %s; errors: %s", members, partitions, timeout, claims, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitHandled waits until every acknowledged message was handled, then checks each was handled
// exactly once (no loss, no duplicate) with the produced content.
func waitHandled(t *testing.T, log *groupLog, acks []sent, timeout time.Duration) {
	t.Helper()
	type key struct {
		p int32
		o int64
	}
	want := map[key]string{}
	for _, a := range acks {
		want[key{a.partition, a.offset}] = string(a.value)
	}
	deadline := time.Now().Add(timeout)
	for {
		log.mu.Lock()
		seen := map[key]int{}
		for _, h := range log.handled {
			seen[key{h.partition, h.offset}]++
		}
		missing := 0
		for k := range want {
			if seen[k] == 0 {
				missing++
			}
		}
		n := len(log.handled)
		log.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			log.mu.Lock()
			errs := summarize(log.errs)
			log.mu.Unlock()
			t.Fatalf("%d of %d messages never handled within %v (handled %d); errors: %s", missing, len(want), timeout, n, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.errs) > 0 {
		t.Logf("client errors: %s", summarize(log.errs))
	}
	seen := map[key]int{}
	for _, h := range log.handled {
		k := key{h.partition, h.offset}
		seen[k]++
		if w, ok := want[k]; !ok {
			t.Errorf("handled partition %d offset %d (%q) which was not produced in this phase", h.partition, h.offset, h.value)
		} else if w != h.value {
			t.Errorf("partition %d offset %d: handled %q, produced %q", h.partition, h.offset, h.value, w)
		}
	}
	for k, c := range seen {
		if c > 1 {
			t.Errorf("partition %d offset %d handled %d times", k.p, k.o, c)
		}
	}
}

// TestConsumerGroup: 3 members of one group on a 6-partition topic. Each partition goes to
// exactly one member; every message is handled once with commits; when a member leaves the
// others take over its partitions without loss; a new member of the same group resumes from the
// committed offsets (sees only messages produced after the others stopped).
func TestConsumerGroup(t *testing.T) {
	requireGroups(t)
	t.Run("default", func(t *testing.T) {
		requireOffsetCommitV1(t)
		consumerGroupScenario(t, groupConfig)
	})
	t.Run("retention", func(t *testing.T) {
		consumerGroupScenario(t, func() *sarama.Config {
			c := groupConfig()
			c.Consumer.Offsets.Retention = 24 * time.Hour // OffsetCommit v2+ with a retention time
			return c
		})
	})
}

// requireOffsetCommitV1 guards the tests that leave Consumer.Offsets.Retention unset: this sarama
// then commits with OffsetCommit v1 if clientSendsOffsetCommitV1 (github.com/Shopify/sarama
// v1.38.1). Ringbolt serves OffsetCommit v0-v1 (issue 15); Apache Kafka 4 removed them (KIP-896)
// and closes the connection, so the reference run, which sets RINGBOLT_COMPAT_LEGACY=0, skips
// them. With RINGBOLT_COMPAT_LEGACY=1 a broker that does not advertise v1 fails the test.
func requireOffsetCommitV1(t *testing.T) {
	t.Helper()
	if !clientSendsOffsetCommitV1 {
		return
	}
	if !legacyEnabled() {
		t.Skip("SKIPPED AGAINST KAFKA 4: this sarama (github.com/Shopify/sarama v1.38.1) commits with OffsetCommit v1 unless Consumer.Offsets.Retention is set, and Kafka 4 removed OffsetCommit v0-v1 (KIP-896); Ringbolt serves them: runs with RINGBOLT_COMPAT_LEGACY=1 (the reference run sets 0)")
	}
	if min, _, ok := brokerAPIVersions(t, 8); !ok || min > 1 {
		t.Fatalf("this sarama commits with OffsetCommit v1 by default, but the broker's OffsetCommit versions start at %d (advertised: %v)", min, ok)
	}
}

// brokerAPIVersions asks the first bootstrap broker for its version range of one API key.
func brokerAPIVersions(t *testing.T, key int16) (min, max int16, ok bool) {
	t.Helper()
	b := sarama.NewBroker(brokers()[0])
	if err := b.Open(sarama.NewConfig()); err != nil {
		t.Fatalf("open %s: %v", brokers()[0], err)
	}
	defer b.Close()
	resp, err := b.ApiVersions(&sarama.ApiVersionsRequest{})
	if err != nil {
		t.Fatalf("ApiVersions: %v", err)
	}
	for _, k := range resp.ApiKeys {
		if k.ApiKey == key {
			return k.MinVersion, k.MaxVersion, true
		}
	}
	return -1, -1, false
}

// legacyEnabled: the broker serves the request versions Kafka 4 removed (KIP-896).
func legacyEnabled() bool { return os.Getenv("RINGBOLT_COMPAT_LEGACY") == "1" }

// TestConsumerGroupDefaultConfig: the tutorial's consumer group with sarama's default config
// (Consumer.Return.Errors aside, which only reports errors): Offsets.Initial = OffsetNewest,
// auto-commit every second with Retention unset, so github.com/Shopify/sarama v1.38.1 commits
// with OffsetCommit v1 and reads offsets with OffsetFetch v1. A member consumes and commits, and
// closes; the committed offsets (read back with OffsetFetch v1, and v0 where served) are the end of
// each partition; messages are produced while the group is down; a new member of the same group
// resumes right after the committed offsets: it handles exactly those messages, each once. Had the
// commits been lost it would start at the newest offset and miss them; had they been ignored it
// would not see them exactly once.
func TestConsumerGroupDefaultConfig(t *testing.T) {
	requireGroups(t)
	requireOffsetCommitV1(t)
	const partitions = 3
	topic := uniqueName("group_default")
	group := uniqueName("compat-default")
	createTopic(t, sarama.NewConfig(), topic, partitions)
	waitPartitions(t, topic, partitions, 20*time.Second)
	defaultConfig := func() *sarama.Config {
		c := sarama.NewConfig()
		c.Consumer.Return.Errors = true
		return c
	}

	log := newGroupLog()
	m1 := startMember(t, 1, group, topic, log, defaultConfig())
	waitBalanced(t, log, []int{1}, partitions, 60*time.Second)
	// OffsetNewest is resolved per partition after the claims are set up: probe every partition
	// until the member handles a message from each, then let the probes drain.
	probeAllPartitions(t, log, topic, partitions, 30*time.Second)
	acks1 := produce(t, articleConfig(), valueMsgs(topic, "default config phase 1", 150), false)
	waitHandled(t, log, acks1, 30*time.Second)
	if t.Failed() {
		return
	}
	m1.stop(t) // commits what it marked (OffsetCommit v1 with this sarama)
	checkCommittedAtEnd(t, group, topic, partitions)

	acks2 := produce(t, articleConfig(), valueMsgs(topic, "default config phase 2", 100), false)
	log2 := newGroupLog()
	m2 := startMember(t, 2, group, topic, log2, defaultConfig())
	waitBalanced(t, log2, []int{2}, partitions, 60*time.Second)
	waitHandled(t, log2, acks2, 30*time.Second)
	m2.stop(t)
	checkCommittedAtEnd(t, group, topic, partitions)
}

// probeAllPartitions produces one message to each partition that has not yet had a message
// handled, every 500 ms, until every partition has; then waits until nothing new is handled for
// 1.5 s and clears the log.
func probeAllPartitions(t *testing.T, log *groupLog, topic string, partitions int, timeout time.Duration) {
	t.Helper()
	config := articleConfig()
	config.Producer.Partitioner = sarama.NewManualPartitioner
	producer, err := sarama.NewSyncProducer(brokers(), config)
	if err != nil {
		t.Fatalf("probe producer: %v", err)
	}
	defer producer.Close()
	deadline := time.Now().Add(timeout)
	for {
		log.mu.Lock()
		seen := map[int32]bool{}
		for _, h := range log.handled {
			seen[h.partition] = true
		}
		errs := summarize(log.errs)
		log.mu.Unlock()
		if len(seen) == partitions {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member handled messages of partitions %v only within %v; errors: %s", seen, timeout, errs)
		}
		for p := int32(0); p < int32(partitions); p++ {
			if !seen[p] {
				msg := &sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder("probe")}
				if _, _, err := producer.SendMessage(msg); err != nil {
					t.Fatalf("probe partition %d: %v", p, err)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	last, since := -1, time.Now()
	for time.Since(since) < 1500*time.Millisecond {
		log.mu.Lock()
		n := len(log.handled)
		log.mu.Unlock()
		if n != last {
			last, since = n, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.mu.Lock()
	log.handled = nil
	log.mu.Unlock()
}

// checkCommittedAtEnd: the group's committed offset of every partition is the partition's end
// (every message handled and committed), read with OffsetFetch v1 and, where the broker serves
// the versions Kafka 4 removed, v0 -- through sarama's own codec.
func checkCommittedAtEnd(t *testing.T, group, topic string, partitions int) {
	t.Helper()
	client, err := sarama.NewClient(brokers(), sarama.NewConfig())
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	defer client.Close()
	coordinator, err := client.Coordinator(group)
	if err != nil {
		t.Fatalf("coordinator of %s: %v", group, err)
	}
	versions := []int16{1}
	if legacyEnabled() {
		versions = append(versions, 0)
	}
	for _, v := range versions {
		req := &sarama.OffsetFetchRequest{Version: v, ConsumerGroup: group}
		for p := int32(0); p < int32(partitions); p++ {
			req.AddPartition(topic, p)
		}
		resp, err := coordinator.FetchOffset(req)
		if err != nil {
			t.Fatalf("OffsetFetch v%d: %v", v, err)
		}
		for p := int32(0); p < int32(partitions); p++ {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatalf("end of partition %d: %v", p, err)
			}
			b := resp.GetBlock(topic, p)
			if b == nil || b.Err != sarama.ErrNoError || b.Offset != end {
				t.Errorf("OffsetFetch v%d partition %d: got %+v, want committed offset %d (the partition's end)", v, p, b, end)
			}
		}
	}
}

func consumerGroupScenario(t *testing.T, groupConfig func() *sarama.Config) {
	const partitions = 6
	topic := uniqueName("group")
	group := uniqueName("compat-group")
	createTopic(t, sarama.NewConfig(), topic, partitions)
	waitPartitions(t, topic, partitions, 20*time.Second)

	log := newGroupLog()
	var members []*member
	for i := 1; i <= 3; i++ {
		members = append(members, startMember(t, i, group, topic, log, groupConfig()))
	}
	gen, assignment := waitBalanced(t, log, []int{1, 2, 3}, partitions, 45*time.Second)
	t.Logf("generation %d assignment: %v", gen, assignment)

	acks := produce(t, articleConfig(), valueMsgs(topic, "group phase 1", 300), false)
	waitHandled(t, log, acks, 30*time.Second)
	log.mu.Lock()
	for _, h := range log.handled {
		if owner := ownerOf(assignment, h.partition); owner != h.member {
			t.Errorf("partition %d offset %d handled by member %d, but assigned to member %d", h.partition, h.offset, h.member, owner)
		}
	}
	log.handled = nil
	log.mu.Unlock()
	if t.Failed() {
		return
	}

	// Member 3 leaves: members 1 and 2 take over all six partitions.
	members[2].stop(t)
	gen, assignment = waitBalanced(t, log, []int{1, 2}, partitions, 45*time.Second)
	t.Logf("after member 3 left, generation %d assignment: %v", gen, assignment)
	acks2 := produce(t, articleConfig(), valueMsgs(topic, "group phase 2", 200), false)
	waitHandled(t, log, acks2, 30*time.Second)
	if t.Failed() {
		return
	}

	// Everyone stops (committing); a new member of the same group resumes after the commits.
	members[0].stop(t)
	members[1].stop(t)
	acks3 := produce(t, articleConfig(), valueMsgs(topic, "group phase 3", 100), false)
	log2 := newGroupLog()
	m4 := startMember(t, 4, group, topic, log2, groupConfig())
	defer m4.stop(t)
	waitBalanced(t, log2, []int{4}, partitions, 45*time.Second)
	waitHandled(t, log2, acks3, 30*time.Second)
}

// summarize lists distinct client errors (at most 8) with their counts.
func summarize(errs []error) string {
	counts := map[string]int{}
	var order []string
	for _, e := range errs {
		s := e.Error()
		if counts[s] == 0 {
			order = append(order, s)
		}
		counts[s]++
	}
	var parts []string
	for i, s := range order {
		if i == 8 {
			parts = append(parts, fmt.Sprintf("... %d more distinct", len(order)-8))
			break
		}
		parts = append(parts, fmt.Sprintf("%dx %s", counts[s], s))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func ownerOf(a map[int][]int32, p int32) int {
	for id, ps := range a {
		for _, x := range ps {
			if x == p {
				return id
			}
		}
	}
	return -1
}

// restartGroupConfig sets a retention time so that every sarama commits with OffsetCommit v2+.
func restartGroupConfig() *sarama.Config {
	c := groupConfig()
	c.Consumer.Offsets.Retention = 24 * time.Hour
	return c
}

// restartState is what TestGroupRestartBefore leaves for TestGroupRestartAfter.
type restartState struct {
	Topic string `json:"topic"`
	Group string `json:"group"`
}

func restartStateFile(t *testing.T) string {
	requireGroups(t)
	f := os.Getenv("RINGBOLT_COMPAT_STATE")
	if f == "" {
		t.Skip("needs RINGBOLT_COMPAT_STATE (a file); the runner restarts the broker between Before and After")
	}
	return f
}

// TestGroupRestartBefore / TestGroupRestartAfter: a group consumes and commits; the runner
// restarts the broker; the group resumes from the committed offsets and sees only new messages.
func TestGroupRestartBefore(t *testing.T) {
	file := restartStateFile(t)
	const partitions = 3
	st := restartState{Topic: uniqueName("group_restart"), Group: uniqueName("compat-restart")}
	createTopic(t, sarama.NewConfig(), st.Topic, partitions)
	waitPartitions(t, st.Topic, partitions, 20*time.Second)
	acks := produce(t, articleConfig(), valueMsgs(st.Topic, "before restart", 150), false)
	log := newGroupLog()
	m := startMember(t, 1, st.Group, st.Topic, log, restartGroupConfig())
	waitBalanced(t, log, []int{1}, partitions, 45*time.Second)
	waitHandled(t, log, acks, 30*time.Second)
	m.stop(t)
	b, _ := json.Marshal(st)
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestGroupRestartAfter(t *testing.T) {
	file := restartStateFile(t)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("state from TestGroupRestartBefore: %v", err)
	}
	var st restartState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	waitPartitions(t, st.Topic, 3, 30*time.Second)
	// Right after a restart a broker may briefly answer NOT_LEADER_OR_FOLLOWER while it loads
	// its partitions; retry for up to ~10 s instead of sarama's default 3 x 100 ms.
	config := articleConfig()
	config.Producer.Retry.Max = 40
	config.Producer.Retry.Backoff = 250 * time.Millisecond
	acks := produce(t, config, valueMsgs(st.Topic, "after restart", 60), false)
	log := newGroupLog()
	m := startMember(t, 1, st.Group, st.Topic, log, restartGroupConfig())
	defer m.stop(t)
	waitBalanced(t, log, []int{1}, 3, 45*time.Second)
	waitHandled(t, log, acks, 30*time.Second)
}
