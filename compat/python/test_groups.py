"""Consumer groups with real Python clients (issue 5): kafka-python and confluent-kafka members
splitting topics, committing, resuming, taking over from a member that left, static membership,
commit metadata and the group admin APIs.

Each member runs in its own thread and polls continuously, as applications do. (kafka-python
3.0.12 discards a JoinGroup/SyncGroup round that completed while its consumer was not inside
poll() and joins again; a single thread polling several consumers in turn therefore rebalances
for ever against any broker, since a leader's JoinGroup always starts a new rebalance.)

Runs with RINGBOLT_COMPAT_GROUPS=1 (marker `groups`, see conftest.py).
"""

import threading
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka.errors import CommitFailedError

TIMEOUT = 60.0

pytestmark = pytest.mark.groups


def create(bootstrap, topic, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout=30)
    deadline = time.time() + 30
    while len(a.list_topics(topic=topic, timeout=10).topics[topic].partitions) != partitions:
        assert time.time() < deadline, "topic not visible"
        time.sleep(0.1)


def produce(bootstrap, topic, n, partitions, prefix):
    """n messages round-robin over the partitions; returns {(partition, offset): value}."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    acked, errors = {}, []

    def cb(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[(msg.partition(), msg.offset())] = msg.value()

    for i in range(n):
        p.produce(topic, value=f"{prefix}{i}".encode(), partition=i % partitions, on_delivery=cb)
        p.poll(0)
    assert p.flush(30) == 0 and not errors, errors[:3]
    assert len(acked) == n
    return acked


class Member(threading.Thread):
    """Polls one consumer until stopped, recording what it handled and committing after each
    batch. `make` builds the consumer inside the thread."""

    def __init__(self, kind, make):
        super().__init__(daemon=True)
        self.kind, self.make = kind, make
        self.seen = []  # (partition, offset, value)
        self.assignment = set()
        self.commit_failures = 0
        self.revocations = 0
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.error = None
        self.consumer = None

    def run(self):
        try:
            self.consumer = self.make(self)
            self.ready.set()
            while not self.stop.is_set():
                if self.kind == "kafka-python":
                    self._poll_kafka_python()
                else:
                    self._poll_confluent()
        except Exception as e:  # reported by the test thread
            self.error = e
        finally:
            self.ready.set()

    def _poll_kafka_python(self):
        c = self.consumer
        batches = c.poll(timeout_ms=100)
        for tp, records in batches.items():
            for r in records:
                self.seen.append((tp.partition, r.offset, r.value))
        if batches:
            try:
                c.commit()
            except CommitFailedError:
                self.commit_failures += 1
        self.assignment = {tp.partition for tp in c.assignment()}

    def _poll_confluent(self):
        c = self.consumer
        msgs = c.consume(num_messages=100, timeout=0.1)
        for m in msgs:
            if m.error():
                continue
            self.seen.append((m.partition(), m.offset(), m.value()))
        if msgs:
            try:
                c.commit(asynchronous=False)
            except KafkaException:
                self.commit_failures += 1
        self.assignment = {tp.partition for tp in c.assignment()}

    def finish(self, close=True):
        self.stop.set()
        self.join(timeout=30)
        if close and self.consumer is not None:
            self.consumer.close()
        assert self.error is None, f"member failed: {self.error!r}"


def wait_until(cond, what, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def handled(members):
    out = defaultdict(int)
    for m in members:
        for p, o, _ in list(m.seen):
            out[(p, o)] += 1
    return out


def kafka_python_member(bootstrap, topic, group):
    return Member(
        "kafka-python",
        lambda _m: KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        ),
    )


def confluent_member(bootstrap, topic, group, extra=None):
    def make(member):
        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
        conf.update(extra or {})
        c = Consumer(conf)

        def on_revoke(consumer, parts):
            if parts:
                member.revocations += 1

        c.subscribe([topic], on_revoke=on_revoke)
        return c

    return Member("confluent", make)


def test_kafka_python_two_members_split_commit_and_resume(bootstrap, unique):
    topic, group = unique("grp-kp"), unique("grp-kp-g")
    create(bootstrap, topic, 4)
    want = produce(bootstrap, topic, 200, 4, "a")
    members = [kafka_python_member(bootstrap, topic, group) for _ in range(2)]
    for m in members:
        m.start()
    wait_until(lambda: set(handled(members)) >= set(want), "both members to handle every message")
    wait_until(
        lambda: all(m.assignment for m in members)
        and members[0].assignment.isdisjoint(members[1].assignment)
        and members[0].assignment | members[1].assignment == {0, 1, 2, 3},
        "a split of the 4 partitions",
    )
    for m in members:
        m.finish()
    counts = handled(members)
    assert set(counts) == set(want)
    if not any(m.commit_failures for m in members):
        assert all(n == 1 for n in counts.values()), "redelivered without a failed commit"
    for m in members:
        for p, o, v in m.seen:
            assert want[(p, o)] == v

    more = produce(bootstrap, topic, 40, 4, "b")
    again = kafka_python_member(bootstrap, topic, group)
    again.start()
    wait_until(lambda: set(handled([again])) >= set(more), "the resumed member to get the new messages")
    again.finish()
    assert set(handled([again])) == set(more), "resume from the committed offsets, nothing older"


def test_confluent_member_leaves_and_others_take_over(bootstrap, unique):
    topic, group = unique("grp-cf"), unique("grp-cf-g")
    create(bootstrap, topic, 6)
    want = produce(bootstrap, topic, 300, 6, "a")
    members = [confluent_member(bootstrap, topic, group) for _ in range(3)]
    for m in members:
        m.start()
    wait_until(lambda: set(handled(members)) >= set(want), "every message handled")
    wait_until(
        lambda: sorted(p for m in members for p in m.assignment) == [0, 1, 2, 3, 4, 5]
        and all(m.assignment for m in members),
        "each of 6 partitions assigned to exactly one of 3 members",
    )
    leaver = members.pop(0)
    leaver.finish()  # close() sends LeaveGroup
    wait_until(
        lambda: sorted(p for m in members for p in m.assignment) == [0, 1, 2, 3, 4, 5],
        "the remaining two to take over every partition",
    )
    more = produce(bootstrap, topic, 120, 6, "b")
    wait_until(lambda: set(handled(members)) >= set(more), "the remaining members to handle new messages")
    for m in members:
        m.finish()
    everything = handled(members + [leaver])
    assert set(everything) == set(want) | set(more), "no message lost across the takeover"


def test_confluent_static_member_restart_keeps_assignment(bootstrap, unique):
    topic, group = unique("grp-static"), unique("grp-static-g")
    create(bootstrap, topic, 4)
    produce(bootstrap, topic, 40, 4, "a")

    def static(name):
        return confluent_member(bootstrap, topic, group, {"group.instance.id": name, "session.timeout.ms": 10000})

    a, b = static("inst-a"), static("inst-b")
    a.start()
    b.start()
    wait_until(lambda: a.assignment and b.assignment and len(a.assignment | b.assignment) == 4, "static split")
    before_a, before_b = set(a.assignment), set(b.assignment)
    revocations_b = b.revocations
    # A static member's close() does not leave the group; it rejoins under the same instance id.
    a.finish()
    a2 = static("inst-a")
    a2.start()
    wait_until(lambda: a2.assignment == before_a, "the restarted static member to get its partitions back")
    time.sleep(1.0)
    assert b.assignment == before_b
    assert b.revocations == revocations_b, "the other member was not rebalanced"
    a2.finish()
    b.finish()


def test_confluent_static_members_first_rebalance_restart_and_session_expiry(bootstrap, unique):
    """KIP-345 with librdkafka, in the situation of its tests 0102 and 0081: two static members
    (distinct group.instance.id) on a 3-partition topic both get partitions in the FIRST
    rebalance (no member gets all 3 and has them revoked); one is closed -- static members do not
    send LeaveGroup -- and restarted under its instance id within session.timeout.ms: it gets its
    partitions back under a new member id and the other member sees no rebalance; closed for
    good, both stay members until session.timeout.ms after their last request, and then (0081's
    wait, to the millisecond) the group is empty and DeleteGroups succeeds.

    The first-rebalance check needs the broker's default group.initial.rebalance.delay.ms (3000);
    with 0 whether the second member makes the first generation is a race on any broker
    (Kafka 4.3 included), so the reference run sets Kafka's default (scripts/test.sh).
    """
    topic, group = unique("grp-static3"), unique("grp-static3-g")
    create(bootstrap, topic, 3)
    produce(bootstrap, topic, 30, 3, "a")
    session_ms = 6000
    admin = AdminClient({"bootstrap.servers": bootstrap})

    def static(name):
        return confluent_member(
            bootstrap, topic, group, {"group.instance.id": name, "session.timeout.ms": session_ms}
        )

    def members():
        d = admin.describe_consumer_groups([group])[group].result(timeout=30)
        return {m.group_instance_id: m.member_id for m in d.members}

    a, b = static("inst-a"), static("inst-b")
    a.start()
    b.start()
    wait_until(
        lambda: a.assignment and b.assignment and a.assignment | b.assignment == {0, 1, 2},
        "both static members to get partitions",
    )
    time.sleep(1.5)  # a second rebalance (after a one-member first round) would show by now
    assert (a.revocations, b.revocations) == (0, 0), "both were in the first rebalance"
    assert len(a.assignment) + len(b.assignment) == 3
    before_a, before_b = set(a.assignment), set(b.assignment)
    first = members()
    assert set(first) == {"inst-a", "inst-b"}

    # b restarts within the session timeout: same partitions, new member id, a undisturbed.
    b.finish()
    assert members() == first, "a closed static member is still a member (no LeaveGroup)"
    b2 = static("inst-b")
    b2.start()
    wait_until(lambda: b2.assignment == before_b, "the restarted member to get its partitions back", 15)
    time.sleep(1.0)
    assert a.assignment == before_a and a.revocations == 0, "no rebalance for the other member"
    assert b2.revocations == 0
    again = members()
    assert again["inst-a"] == first["inst-a"]
    assert again["inst-b"] != first["inst-b"], "the restarted instance has a new member id"

    # Both close for good, each right after committing its position (as librdkafka's close
    # commits): that request is the last one; the session timeout counts from it.
    last_close = None
    for m in (a, b2):
        m.finish(close=False)
        parts = [TopicPartition(topic, p) for p in sorted(m.assignment)]
        done = [tp for tp in m.consumer.committed(parts, timeout=10) if tp.offset >= 0]
        assert done, "the member committed what it consumed"
        m.consumer.commit(offsets=done, asynchronous=False)
        m.consumer.close()
        last_close = time.monotonic()
    assert len(members()) == 2, "static members stay after close until their session times out"
    time.sleep(max(0.0, last_close + session_ms / 1000 - time.monotonic()))
    admin.delete_consumer_groups([group])[group].result(timeout=30)
    listed = admin.list_consumer_groups().result(timeout=30)
    assert group not in {g.group_id for g in listed.valid}


def test_commit_metadata_round_trips_and_admin_sees_the_group(bootstrap, unique):
    topic, group = unique("grp-meta"), unique("grp-meta-g")
    create(bootstrap, topic, 2)
    produce(bootstrap, topic, 10, 2, "a")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    c.commit(
        offsets=[TopicPartition(topic, 0, 3, metadata="checkpoint ✓"), TopicPartition(topic, 1, 5, metadata="")],
        asynchronous=False,
    )
    got = {tp.partition: (tp.offset, tp.metadata) for tp in c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)}
    assert got[0] == (3, "checkpoint ✓")
    assert got[1][0] == 5 and got[1][1] in ("", None)
    c.close()

    a = AdminClient({"bootstrap.servers": bootstrap})
    listed = a.list_consumer_groups().result(timeout=30)
    assert group in {g.group_id for g in listed.valid}
    desc = a.describe_consumer_groups([group])[group].result(timeout=30)
    assert str(desc.state).upper().endswith("EMPTY")
    from confluent_kafka import ConsumerGroupTopicPartitions

    offs = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=30)
    assert {(tp.partition, tp.offset) for tp in offs.topic_partitions} == {(0, 3), (1, 5)}
    a.delete_consumer_groups([group])[group].result(timeout=30)
    listed = a.list_consumer_groups().result(timeout=30)
    assert group not in {g.group_id for g in listed.valid}
