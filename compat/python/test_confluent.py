"""confluent-kafka (librdkafka) against the broker: byte-exact round trips and the AdminClient."""

import time
from collections import defaultdict

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AclOperation, AdminClient, ConfigResource, NewTopic, OffsetSpec, ResourceType

from checks import Rec, assert_same, by_partition
from cutproxy import CutProxy

TIMEOUT = 30.0


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create(bootstrap, topic, partitions, **kw):
    a = admin(bootstrap)  # keep the client alive until its futures resolve
    fs = a.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)], operation_timeout=TIMEOUT, **kw)
    fs[topic].result(timeout=TIMEOUT)
    wait_partitions(bootstrap, topic, partitions)


def wait_partitions(bootstrap, topic, n, timeout=TIMEOUT):
    a = admin(bootstrap)
    deadline = time.time() + timeout
    while True:
        md = a.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == n and all(p.leader >= 0 for p in t.partitions.values()):
            return
        assert time.time() < deadline, f"topic {topic}: no {n} partitions with leaders after {timeout}s: {t and t.partitions}"
        time.sleep(0.1)


def produce_all(bootstrap, topic, items, extra=None):
    """items: dicts with key/value/headers/timestamp/partition (partition optional). Returns the
    acknowledged Recs; fails on any delivery error."""
    conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5}
    conf.update(extra or {})
    p = Producer(conf)
    acked, errors = [], []

    def cb(i):
        def on_delivery(err, msg):
            if err is not None:
                errors.append((i, err))
                return
            it = items[i]
            acked.append(
                Rec(msg.partition(), msg.offset(), it.get("key"), it.get("value"), list(it.get("headers") or []), it.get("timestamp"))
            )

        return on_delivery

    for i, it in enumerate(items):
        kw = {"key": it.get("key"), "value": it.get("value"), "on_delivery": cb(i)}
        if it.get("headers") is not None:
            kw["headers"] = it["headers"]
        if it.get("timestamp") is not None:
            kw["timestamp"] = it["timestamp"]
        if it.get("partition") is not None:
            kw["partition"] = it["partition"]
        p.produce(topic, **kw)
        p.poll(0)
    left = p.flush(TIMEOUT)
    assert left == 0, f"{left} messages not delivered within {TIMEOUT}s"
    assert not errors, f"delivery errors: {errors[:5]}"
    assert len(acked) == len(items)
    return acked


def consume_exact(bootstrap, topic, expected, start=OFFSET_BEGINNING, extra=None):
    """Assign every partition of `expected` at `start`, read until each has its expected count,
    keep reading one more second (extras are errors), return {partition: [Rec]}."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"unused-{topic}",  # required by the client; assign() takes no group membership
        "enable.auto.commit": False,
        "auto.offset.reset": "error",
    }
    conf.update(extra or {})
    c = Consumer(conf)
    try:
        c.assign([TopicPartition(topic, p, start) for p in expected])
        want = sum(len(v) for v in expected.values())
        got = defaultdict(list)
        n, deadline, extra_until = 0, time.time() + TIMEOUT, None
        while True:
            now = time.time()
            if n >= want and extra_until is None:
                extra_until = now + 1.0
            if (extra_until and now > extra_until) or now > deadline:
                break
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                ts_type, ts = m.timestamp()
                assert ts_type == TIMESTAMP_CREATE_TIME, f"timestamp type {ts_type}"
                got[m.partition()].append(Rec(m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or []), ts))
                n += 1
        return dict(got)
    finally:
        c.close()


def test_admin_create_describe_delete(bootstrap, unique):
    topic = unique("cf-admin")
    a = admin(bootstrap)
    create(bootstrap, topic, 3)

    # Metadata lists it with 3 partitions, each led by a broker.
    md = a.list_topics(timeout=10)
    assert topic in md.topics
    assert sorted(md.topics[topic].partitions) == [0, 1, 2]

    # DescribeTopics.
    desc = a.describe_topics(TopicCollection([topic]))[topic].result(timeout=TIMEOUT)
    assert desc.name == topic
    assert sorted(p.id for p in desc.partitions) == [0, 1, 2]
    assert all(p.leader is not None for p in desc.partitions)

    # Creating it again: TOPIC_ALREADY_EXISTS.
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    # validate_only creates nothing.
    dry = unique("cf-dry")
    a.create_topics([NewTopic(dry, num_partitions=2, replication_factor=1)], validate_only=True)[dry].result(timeout=TIMEOUT)
    time.sleep(0.5)
    assert dry not in a.list_topics(timeout=10).topics

    # Bad requests.
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("bad/name", num_partitions=1, replication_factor=1)])["bad/name"].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION (17)
    zero = unique("cf-zero")
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic(zero, num_partitions=0, replication_factor=1)])[zero].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    # Delete: gone from metadata.
    a.delete_topics([topic], operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while topic in a.list_topics(timeout=10).topics:
        assert time.time() < deadline, f"{topic} still listed {TIMEOUT}s after delete"
        time.sleep(0.2)


def test_describe_configs(bootstrap, unique):
    topic = unique("cf-configs")
    a = admin(bootstrap)
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config={"retention.ms": "3600000"})], operation_timeout=TIMEOUT
    )
    fs[topic].result(timeout=TIMEOUT)
    wait_partitions(bootstrap, topic, 1)  # Kafka answers CreateTopics before its metadata has the topic
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = a.describe_configs([res])[res].result(timeout=TIMEOUT)
    for name in ("retention.ms", "segment.bytes", "max.message.bytes", "cleanup.policy"):
        assert name in entries, f"DescribeConfigs for a topic lacks {name}: {sorted(entries)}"
    assert entries["retention.ms"].value == "3600000"


# What a broker without an authorizer reports: every operation that applies to the resource type
# (Kafka's AclEntry.supportedOperations), as Apache Kafka 4.3 returns them.
TOPIC_OPS = {
    AclOperation.READ,
    AclOperation.WRITE,
    AclOperation.CREATE,
    AclOperation.DELETE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
}
CLUSTER_OPS = {
    AclOperation.CREATE,
    AclOperation.ALTER,
    AclOperation.DESCRIBE,
    AclOperation.CLUSTER_ACTION,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
    AclOperation.IDEMPOTENT_WRITE,
}
GROUP_OPS = {
    AclOperation.READ,
    AclOperation.DELETE,
    AclOperation.DESCRIBE,
    AclOperation.DESCRIBE_CONFIGS,
    AclOperation.ALTER_CONFIGS,
}


def test_authorized_operations_topic_and_cluster(bootstrap, unique):
    """librdkafka's test 0081_admin: describe_topics / describe_cluster with
    include_authorized_operations (Metadata v8+ with include_topic/cluster_authorized_operations)."""
    topic = unique("cf-authz")
    a = admin(bootstrap)
    create(bootstrap, topic, 2)
    desc = a.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic].result(timeout=TIMEOUT)
    assert set(desc.authorized_operations or []) == TOPIC_OPS, desc.authorized_operations
    assert len(desc.authorized_operations) == 8
    # Not asked for: none reported.
    desc = a.describe_topics(TopicCollection([topic]))[topic].result(timeout=TIMEOUT)
    assert not desc.authorized_operations, desc.authorized_operations

    cluster = a.describe_cluster(include_authorized_operations=True).result(timeout=TIMEOUT)
    assert set(cluster.authorized_operations or []) == CLUSTER_OPS, cluster.authorized_operations
    assert cluster.cluster_id and len(cluster.nodes) == 1 and cluster.controller is not None
    cluster = a.describe_cluster().result(timeout=TIMEOUT)
    assert not cluster.authorized_operations, cluster.authorized_operations


@pytest.mark.groups
def test_authorized_operations_group(bootstrap, unique):
    """describe_consumer_groups with include_authorized_operations (DescribeGroups v3+) on a live group."""
    topic, group = unique("cf-authz-g"), unique("cf-authz-grp")
    create(bootstrap, topic, 1)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000})
    try:
        c.subscribe([topic])
        deadline = time.time() + TIMEOUT
        while not c.assignment():
            assert time.time() < deadline, "no assignment"
            c.poll(0.2)
        a = admin(bootstrap)
        g = a.describe_consumer_groups([group], include_authorized_operations=True)[group].result(timeout=TIMEOUT)
        assert g.group_id == group and len(g.members) == 1
        assert set(g.authorized_operations or []) == GROUP_OPS, g.authorized_operations
        g = a.describe_consumer_groups([group])[group].result(timeout=TIMEOUT)
        assert not g.authorized_operations, g.authorized_operations
    finally:
        c.close()


def test_roundtrip_keys_headers_timestamps_nulls(bootstrap, unique):
    topic = unique("cf-roundtrip")
    partitions = 4
    create(bootstrap, topic, partitions)
    base = int(time.time() * 1000) - 3_600_000
    items = []
    for i in range(400):
        key = None if i % 5 == 0 else (b"" if i % 23 == 0 else f"key-{i % 17}".encode())
        value = None if i % 7 == 0 else (b"" if i % 19 == 0 else bytes(range(i % 256)) + f" #{i}".encode())
        headers = None
        if i % 3 == 0:
            headers = [("trace", f"t{i}".encode()), ("dup", b"1"), ("dup", b"2"), ("binary", b"\x00\xff")]
        items.append({"key": key, "value": value, "headers": headers, "timestamp": base + i, "partition": i % partitions})
    acked = by_partition(produce_all(bootstrap, topic, items))
    assert sorted(acked) == list(range(partitions))
    got = consume_exact(bootstrap, topic, acked)
    assert_same(acked, got)


def test_partitioner_spreads_and_keys_stick(bootstrap, unique):
    topic = unique("cf-partitioner")
    create(bootstrap, topic, 6)
    items = [{"key": f"user-{i % 40}".encode(), "value": f"v{i}".encode()} for i in range(600)]
    acked_list = produce_all(bootstrap, topic, items)
    where = {}
    for r in acked_list:
        assert where.setdefault(r.key, r.partition) == r.partition, f"key {r.key} in two partitions"
    acked = by_partition(acked_list)
    assert len(acked) >= 3, f"40 keys landed in only {sorted(acked)}"
    assert_same(acked, consume_exact(bootstrap, topic, acked))


def test_offsets_watermarks_and_times(bootstrap, unique):
    topic = unique("cf-offsets")
    create(bootstrap, topic, 1)
    base = int(time.time() * 1000) - 60_000
    items = [{"value": f"m{i}".encode(), "timestamp": base + 10 * i, "partition": 0} for i in range(50)]
    acked = by_partition(produce_all(bootstrap, topic, items))
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{topic}", "enable.auto.commit": False})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        assert (low, high) == (0, 50)
        # ListOffsets by timestamp: the first offset whose timestamp >= ts.
        for i in (0, 1, 25, 49):
            r = c.offsets_for_times([TopicPartition(topic, 0, base + 10 * i - 5)], timeout=10)
            assert r[0].offset == i, f"offsets_for_times({base + 10 * i - 5}) = {r[0].offset}, want {i}"
        r = c.offsets_for_times([TopicPartition(topic, 0, base + 10_000)], timeout=10)
        assert r[0].offset in (-1, 50), f"a timestamp after the last message gives {r[0].offset}"
    finally:
        c.close()
    # Reading from the middle, and from OFFSET_END (nothing until more is produced).
    tail = {0: acked[0][30:]}
    assert_same(tail, consume_exact(bootstrap, topic, tail, start=30))
    got_end = consume_exact(bootstrap, topic, {0: []}, start=OFFSET_END)
    assert got_end == {}, f"OFFSET_END delivered {got_end}"


def list_max_timestamp(bootstrap, topic):
    """AdminClient.list_offsets with OffsetSpec.max_timestamp() (ListOffsets v7+, KIP-734) for
    partition 0: (offset, timestamp)."""
    a = admin(bootstrap)
    tp = TopicPartition(topic, 0)
    r = a.list_offsets({tp: OffsetSpec.max_timestamp()}, request_timeout=TIMEOUT)[tp].result(timeout=TIMEOUT)
    return r.offset, r.timestamp


@pytest.mark.parametrize("codec", ["none", pytest.param("zstd", marks=pytest.mark.compression)])
def test_list_offsets_max_timestamp(bootstrap, unique, codec):
    """The max-timestamp offset is the record carrying the largest timestamp, not the last offset
    of its batch: three records produced together (one batch) with timestamps +100, +400, +250
    answer offset 1 with +400."""
    topic = unique(f"cf-maxts-{codec}")
    create(bootstrap, topic, 1)
    assert list_max_timestamp(bootstrap, topic) == (-1, -1), "an empty partition"
    base = int(time.time() * 1000) - 60_000
    items = [{"value": f"m{i}".encode(), "timestamp": base + d, "partition": 0} for i, d in enumerate((100, 400, 250))]
    # A long linger keeps the three records in one batch (flush sends it at once).
    acked = produce_all(bootstrap, topic, items, {"linger.ms": 1000, "compression.type": codec})
    assert [r.offset for r in acked] == [0, 1, 2]
    assert list_max_timestamp(bootstrap, topic) == (1, base + 400)
    # A later batch that only ties the max leaves the answer alone; one that beats it moves it.
    produce_all(bootstrap, topic, [{"value": b"tie", "timestamp": base + 400, "partition": 0}])
    assert list_max_timestamp(bootstrap, topic) == (1, base + 400)
    items = [{"value": f"n{i}".encode(), "timestamp": base + d, "partition": 0} for i, d in enumerate((500, 900, 700, 900))]
    produce_all(bootstrap, topic, items, {"linger.ms": 1000, "compression.type": codec})
    assert list_max_timestamp(bootstrap, topic) == (5, base + 900)


@pytest.mark.compression
@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_roundtrip(bootstrap, unique, codec):
    topic = unique(f"cf-{codec}")
    create(bootstrap, topic, 2)
    items = [{"key": f"k{i}".encode(), "value": (f"compressible {i} " * 20).encode(), "partition": i % 2} for i in range(300)]
    acked = by_partition(produce_all(bootstrap, topic, items, {"compression.type": codec, "linger.ms": 50}))
    assert_same(acked, consume_exact(bootstrap, topic, acked))


@pytest.mark.compression
def test_topic_compression_type_recompresses(bootstrap, unique):
    """A topic with compression.type=zstd receiving gzip: the consumer gets the exact records, and
    DescribeConfigs reports the topic's setting (the stored codec is checked by sarama's
    TestTopicCompressionType and tests/server_legacy.rs)."""
    topic = unique("cf-topic-zstd")
    a = admin(bootstrap)
    fs = a.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1, config={"compression.type": "zstd"})], operation_timeout=TIMEOUT)
    fs[topic].result(timeout=TIMEOUT)
    wait_partitions(bootstrap, topic, 2)
    res = ConfigResource(ResourceType.TOPIC, topic)
    configs = a.describe_configs([res])[res].result(timeout=TIMEOUT)
    assert configs["compression.type"].value == "zstd"
    items = [{"key": f"k{i}".encode(), "value": (f"gzip into zstd {i} " * 20).encode(), "partition": i % 2} for i in range(300)]
    acked = by_partition(produce_all(bootstrap, topic, items, {"compression.type": "gzip", "linger.ms": 50}))
    assert_same(acked, consume_exact(bootstrap, topic, acked))


def read_all(bootstrap, topic, expected, extra):
    """Like consume_exact, for old protocol versions: any timestamp type; a timestamp is kept only
    when it is a CreateTime (magic 0 has none)."""
    conf = {"bootstrap.servers": bootstrap, "group.id": f"unused-{topic}", "enable.auto.commit": False, "auto.offset.reset": "error"}
    conf.update(extra)
    c = Consumer(conf)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in expected])
        want = sum(len(v) for v in expected.values())
        got, n, deadline = defaultdict(list), 0, time.time() + TIMEOUT
        while n < want and time.time() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                ts_type, ts = m.timestamp()
                ts = ts if ts_type == TIMESTAMP_CREATE_TIME and ts >= 0 else None
                got[m.partition()].append(Rec(m.partition(), m.offset(), m.key(), m.value(), list(m.headers() or []), ts))
                n += 1
        return dict(got)
    finally:
        c.close()


def old_protocol(fallback):
    """librdkafka speaking to a pre-0.10.0 broker: message version 0 (magic 0), Produce v1,
    Fetch v1, ListOffsets v0, Metadata v0. (A fallback of 0.10.0 or later makes librdkafka ask
    ApiVersions and use record batches, so magic 1 is covered by sarama and kafka-python.)"""
    return {"api.version.request": False, "broker.version.fallback": fallback}


@pytest.mark.legacy
@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
@pytest.mark.parametrize("fallback,magic", [("0.9.0", 0)])
def test_legacy_message_formats(bootstrap, unique, fallback, magic, codec):
    """An old-protocol producer writes message sets; the old client and a modern one read them
    back. Then a modern producer writes batches and the old client reads them down-converted.
    lz4: librdkafka writes magic-0 lz4 frames with Kafka's old wrong header checksum (KAFKA-3160)."""
    topic = unique(f"cf-legacy-m{magic}-{codec}")
    create(bootstrap, topic, 2)
    base = int(time.time() * 1000) - 3_600_000
    items = [
        {"key": (f"k{i}".encode() if i % 3 else None), "value": f"old {i} ".encode() * 5, "partition": i % 2, "timestamp": base + i}
        for i in range(100)
    ]
    acked = by_partition(produce_all(bootstrap, topic, items, {**old_protocol(fallback), "compression.type": codec, "linger.ms": 20}))
    keeps_ts = magic >= 1
    assert_same(acked, read_all(bootstrap, topic, acked, old_protocol(fallback)), check_timestamp=keeps_ts)
    assert_same(acked, read_all(bootstrap, topic, acked, {}), check_timestamp=keeps_ts)
    if not keeps_ts:
        got = read_all(bootstrap, topic, acked, {})
        assert all(r.timestamp is None for recs in got.values() for r in recs), "magic 0 has no timestamps"

    topic2 = unique(f"cf-legacy-modern-m{magic}-{codec}")
    create(bootstrap, topic2, 2)
    items2 = [{"key": f"k{i}".encode(), "value": f"modern {i} ".encode() * 5, "partition": i % 2, "timestamp": base + i} for i in range(100)]
    acked2 = by_partition(produce_all(bootstrap, topic2, items2, {"compression.type": codec, "linger.ms": 20}))
    assert_same(acked2, read_all(bootstrap, topic2, acked2, old_protocol(fallback)), check_timestamp=keeps_ts)


@pytest.mark.legacy
def test_legacy_fetch_cuts_at_the_partition_limit(bootstrap, unique):
    """Fetch v0-v2 have no response limit, and Kafka held each partition to partition_max_bytes
    even inside a message (hardMaxBytesLimit); clients skip the trailing partial message. Ten
    30 KB messages stored as one ~300 KB batch must come in cuts of 100000 bytes: librdkafka
    accepts no response over receive.message.max.bytes (100512 here).
    Reference: Kafka 4 has no Fetch v0-v2. Brokers that stored message sets (<= 0.10) cut between
    messages like this; Kafka 0.11-3.x store v2 batches and cut the batch before down-converting,
    so this consumer gets nothing from them (checked with 3.9.1: no message in 30 s)."""
    topic = unique("cf-legacy-cut")
    create(bootstrap, topic, 1)
    items = [{"value": f"{i:03d}".encode() * 10_000, "partition": 0} for i in range(10)]
    acked = by_partition(produce_all(bootstrap, topic, items, {"linger.ms": 200}))
    errors = []
    limits = {
        "fetch.max.bytes": 100_000,
        "message.max.bytes": 100_000,
        "max.partition.fetch.bytes": 100_000,
        "receive.message.max.bytes": 100_512,
        "error_cb": errors.append,
    }
    got = read_all(bootstrap, topic, acked, {**old_protocol("0.9.0"), **limits})
    assert not errors, f"client errors (a response over receive.message.max.bytes?): {errors[:3]}"
    assert [m.offset for m in got.get(0, [])] == list(range(10))
    assert all(m.value == r.value for m, r in zip(got[0], acked[0])), "values differ"


@pytest.mark.idempotence
def test_idempotent_producer(bootstrap, unique):
    topic = unique("cf-idem")
    create(bootstrap, topic, 3)
    items = [{"value": f"idem {i}".encode(), "partition": i % 3} for i in range(300)]
    acked = by_partition(produce_all(bootstrap, topic, items, {"enable.idempotence": True}))
    assert_same(acked, consume_exact(bootstrap, topic, acked))


@pytest.mark.idempotence
def test_idempotent_retry_after_lost_response(bootstrap, unique):
    """Two produce responses are lost: a proxy lets the request reach the broker, drops the
    answer and cuts the connection. librdkafka reconnects and retries those batches with the same
    producer id and sequence; the broker must answer with the original offsets and not write them
    twice (no duplicate, contiguous offsets, high watermark = messages sent)."""
    topic = unique("cf-idem-retry")
    create(bootstrap, topic, 1)
    proxy = CutProxy(bootstrap, cut_produce=(3, 7))
    n, chunk = 200, 10
    acked, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append(Rec(msg.partition(), msg.offset(), None, msg.value()))

    p = Producer({"bootstrap.servers": proxy.address, "enable.idempotence": True, "linger.ms": 0, "retry.backoff.ms": 50})
    try:
        for start in range(0, n, chunk):  # one flush per chunk: many produce requests
            for i in range(start, start + chunk):
                p.produce(topic, value=f"retry {i}".encode(), partition=0, on_delivery=on_delivery)
            assert p.flush(TIMEOUT) == 0, "not delivered"
    finally:
        proxy.close()
    assert not errors, f"delivery errors: {errors[:5]}"
    assert proxy.cuts == 2, f"the proxy dropped {proxy.cuts} produce responses, expected 2"
    assert len(acked) == n
    expected = by_partition(acked)  # contiguous 0..n-1, no offset twice
    assert [r.value for r in expected[0]] == [f"retry {i}".encode() for i in range(n)], "order"
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{topic}"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, n), "a retried batch was written twice"
    finally:
        c.close()
    assert_same(expected, consume_exact(bootstrap, topic, expected), check_headers=False)


def test_log_append_time_topic(bootstrap, unique):
    """message.timestamp.type=LogAppendTime: the broker stamps each batch; consumers see
    LOG_APPEND_TIME with the broker's time, and offsets_for_times uses it."""
    topic = unique("cf-lat")
    a = admin(bootstrap)
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config={"message.timestamp.type": "LogAppendTime"})],
        operation_timeout=TIMEOUT,
    )
    fs[topic].result(timeout=TIMEOUT)
    wait_partitions(bootstrap, topic, 1)
    old = int(time.time() * 1000) - 3_600_000
    before = int(time.time() * 1000)
    produce_all(bootstrap, topic, [{"value": f"lat {i}".encode(), "timestamp": old + i, "partition": 0} for i in range(30)])
    after = int(time.time() * 1000)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{topic}", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got, deadline = [], time.time() + TIMEOUT
        while len(got) < 30 and time.time() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                assert m.error() is None, m.error()
                got.append(m.timestamp())
        assert len(got) == 30
        for ts_type, ts in got:
            assert ts_type == TIMESTAMP_LOG_APPEND_TIME, f"timestamp type {ts_type}"
            assert before - 1000 <= ts <= after + 1000, f"append time {ts} not in [{before}, {after}]"
        # The producer's timestamps are an hour old; by append time everything is at/after `before`.
        r = c.offsets_for_times([TopicPartition(topic, 0, before - 1000)], timeout=10)
        assert r[0].offset == 0, f"offsets_for_times by append time gave {r[0].offset}"
        r = c.offsets_for_times([TopicPartition(topic, 0, after + 60_000)], timeout=10)
        assert r[0].offset in (-1, 30), f"a time after every append gave {r[0].offset}"
    finally:
        c.close()


def test_message_too_large_keeps_producing(bootstrap, unique):
    """A record over the topic's max.message.bytes fails with MSG_SIZE_TOO_LARGE; the producer
    (same connection) keeps working and the rejected record is not stored."""
    topic = unique("cf-too-large")
    a = admin(bootstrap)
    fs = a.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": "10000"})], operation_timeout=TIMEOUT
    )
    fs[topic].result(timeout=TIMEOUT)
    wait_partitions(bootstrap, topic, 1)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "message.max.bytes": 1_000_000})
    results = []

    def on_delivery(err, msg):
        results.append((err, msg.offset()))

    p.produce(topic, value=b"x" * 50_000, partition=0, on_delivery=on_delivery)
    assert p.flush(TIMEOUT) == 0
    assert len(results) == 1 and results[0][0] is not None, results
    assert results[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE, results[0][0]
    for i in range(5):
        p.produce(topic, value=f"small {i}".encode(), partition=0, on_delivery=on_delivery)
    assert p.flush(TIMEOUT) == 0
    assert [(e, o) for e, o in results[1:]] == [(None, i) for i in range(5)], results


def test_fetch_max_bytes_below_partition_max(bootstrap, unique):
    """librdkafka's test 0082 in small: ~900 KB messages on three partitions, consumed with
    fetch.max.bytes 1000000 under max.partition.fetch.bytes 20000000. The broker must hold the
    whole response to fetch.max.bytes (KIP-74: past it only with the first batch of the first
    partition with data): librdkafka refuses a response larger than receive.message.max.bytes
    (which must be at least fetch.max.bytes + 512) with "Invalid response size", reconnects and
    asks again, and never gets a message."""
    topic = unique("cf-fetch-max-bytes")
    create(bootstrap, topic, 3)
    size = 900 * 1024
    items = [{"value": f"{i:03d}".encode() * (size // 3), "partition": i % 3} for i in range(12)]
    acked = by_partition(produce_all(bootstrap, topic, items))
    errors = []
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"unused-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "error",
            "fetch.max.bytes": 1_000_000,
            "max.partition.fetch.bytes": 20_000_000,
            "receive.message.max.bytes": 1_000_512,
            "error_cb": errors.append,
        }
    )
    got = defaultdict(list)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in acked])
        n, deadline = 0, time.time() + 20
        while n < len(items) and not errors and time.time() < deadline:
            for m in c.consume(num_messages=100, timeout=0.2):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                got[m.partition()].append((m.offset(), m.value()))
                n += 1
    finally:
        c.close()
    assert not errors, f"client errors (a response over receive.message.max.bytes?): {errors[:3]}"
    for p, want in acked.items():
        assert [o for o, _ in got[p]] == [r.offset for r in want], f"partition {p}: offsets {[o for o, _ in got[p]]}"
        assert all(v == r.value for (_, v), r in zip(got[p], want)), f"partition {p}: values differ"


def group_consume(bootstrap, topic, group, want, assignor="range", timeout=45.0):
    """One subscribed member of `group`; returns {(partition, offset): value} once it has `want`
    messages (extras within 1 s are kept, so duplicates show)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "partition.assignment.strategy": assignor,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    seen = defaultdict(int)
    values = {}
    try:
        c.subscribe([topic])
        deadline, extra_until = time.time() + timeout, None
        while True:
            now = time.time()
            if len(values) >= want and extra_until is None:
                extra_until = now + 1.0
            if (extra_until and now > extra_until) or now > deadline:
                break
            batch = c.consume(num_messages=500, timeout=0.2)
            for m in batch:
                if m.error():
                    raise AssertionError(f"consumer error: {m.error()}")
                seen[(m.partition(), m.offset())] += 1
                values[(m.partition(), m.offset())] = m.value()
            if batch:
                c.commit(asynchronous=False)
    finally:
        c.close()
    dups = {k: n for k, n in seen.items() if n > 1}
    assert not dups, f"delivered more than once: {list(dups.items())[:5]}"
    return values


@pytest.mark.groups
@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_two_groups_each_get_everything_and_resume(bootstrap, unique, assignor):
    topic = unique("cf-groups")
    create(bootstrap, topic, 4)
    acked = produce_all(bootstrap, topic, [{"value": f"g{i}".encode(), "partition": i % 4} for i in range(200)])
    want = {(r.partition, r.offset): r.value for r in acked}
    g1, g2 = unique("cf-g1"), unique("cf-g2")
    assert group_consume(bootstrap, topic, g1, len(want), assignor) == want
    assert group_consume(bootstrap, topic, g2, len(want), assignor) == want
    # g1 committed everything: it resumes with only the new messages.
    more = produce_all(bootstrap, topic, [{"value": f"h{i}".encode(), "partition": i % 4} for i in range(40)])
    assert group_consume(bootstrap, topic, g1, len(more), assignor) == {(r.partition, r.offset): r.value for r in more}
