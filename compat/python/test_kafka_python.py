"""kafka-python against the broker: producer, consumer (assign and seek), admin."""

import threading
import time
from collections import defaultdict

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import TopicAlreadyExistsError

from checks import Rec, assert_same, by_partition

TIMEOUT = 30


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)


def create(bootstrap, topic, partitions):
    a = admin(bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True)
    finally:
        a.close()


def produce_all(bootstrap, topic, items, **extra):
    # kafka-python 3 is idempotent by default (InitProducerId, issue 6); the plain tests turn that
    # off and test_default_producer_is_idempotent covers the default.
    conf = {"acks": "all", "linger_ms": 5, "enable_idempotence": False}
    conf.update(extra)
    p = KafkaProducer(bootstrap_servers=bootstrap, **conf)
    try:
        futures = [
            p.send(
                topic,
                key=it.get("key"),
                value=it.get("value"),
                headers=it.get("headers") or [],
                partition=it.get("partition"),
                timestamp_ms=it.get("timestamp"),
            )
            for it in items
        ]
        p.flush(timeout=TIMEOUT)
        acked = []
        for it, f in zip(items, futures):
            md = f.get(timeout=TIMEOUT)
            acked.append(Rec(md.partition, md.offset, it.get("key"), it.get("value"), list(it.get("headers") or []), it.get("timestamp")))
        return acked
    finally:
        p.close(timeout=10)


def consume_exact(bootstrap, topic, expected, start=None):
    """Assign the expected partitions (from the beginning, or `start` offsets), read until every
    partition has its count plus one more second, return {partition: [Rec]}."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="none")
    try:
        tps = [TopicPartition(topic, p) for p in expected]
        c.assign(tps)
        if start is None:
            c.seek_to_beginning(*tps)
        else:
            for tp in tps:
                c.seek(tp, start)
        want = sum(len(v) for v in expected.values())
        got = defaultdict(list)
        n, deadline, extra_until = 0, time.time() + TIMEOUT, None
        while True:
            now = time.time()
            if n >= want and extra_until is None:
                extra_until = now + 1.0
            if (extra_until and now > extra_until) or now > deadline:
                break
            for tp, records in c.poll(timeout_ms=200, max_records=1000).items():
                for r in records:
                    got[tp.partition].append(Rec(tp.partition, r.offset, r.key, r.value, list(r.headers or []), r.timestamp))
                    n += 1
        return dict(got)
    finally:
        c.close()


def test_admin_create_list_describe_delete(bootstrap, unique):
    topic = unique("kp-admin")
    a = admin(bootstrap)
    try:
        a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, wait_for_metadata=True)
        assert topic in a.list_topics()
        (desc,) = a.describe_topics([topic])
        assert desc["name"] == topic and desc["error_code"] == 0, desc
        assert sorted(p["partition_index"] for p in desc["partitions"]) == [0, 1, 2]
        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}})
        a.delete_topics([topic])
        deadline = time.time() + TIMEOUT
        while topic in a.list_topics():
            assert time.time() < deadline, f"{topic} still listed after delete"
            time.sleep(0.2)
    finally:
        a.close()


def test_roundtrip_keys_headers_timestamps(bootstrap, unique):
    topic = unique("kp-roundtrip")
    create(bootstrap, topic, 3)
    base = int(time.time() * 1000) - 7_200_000
    items = []
    for i in range(300):
        items.append(
            {
                "key": None if i % 4 == 0 else f"k{i % 11}".encode(),
                "value": None if i % 9 == 0 and i % 4 else f"kafka-python {i} \x00\x01".encode(),  # never both null
                "headers": [("n", str(i).encode()), ("e", b"")] if i % 2 else [],
                "timestamp": base + i,
                "partition": i % 3,
            }
        )
    acked = by_partition(produce_all(bootstrap, topic, items))
    assert sorted(acked) == [0, 1, 2]
    assert_same(acked, consume_exact(bootstrap, topic, acked))
    # From the middle of partition 1.
    tail = {1: acked[1][40:]}
    assert_same(tail, consume_exact(bootstrap, topic, tail, start=40))


def test_auto_create_on_produce_and_partition_offsets(bootstrap, unique):
    topic = unique("kp-auto")
    acked = by_partition(produce_all(bootstrap, topic, [{"value": f"auto {i}".encode()} for i in range(100)]))
    assert_same(acked, consume_exact(bootstrap, topic, acked))
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in acked]
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps) == {tp: len(acked[tp.partition]) for tp in tps}
    finally:
        c.close()


@pytest.mark.idempotence
def test_default_producer_is_idempotent(bootstrap, unique):
    """KafkaProducer with its defaults (idempotent since kafka-python 3) must work unchanged."""
    topic = unique("kp-idem")
    create(bootstrap, topic, 3)
    p = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        futures = [p.send(topic, value=f"idem {i}".encode(), partition=i % 3) for i in range(150)]
        p.flush(timeout=TIMEOUT)
        acked = [
            Rec(md.partition, md.offset, None, f"idem {i}".encode()) for i, md in enumerate(f.get(timeout=TIMEOUT) for f in futures)
        ]
    finally:
        p.close(timeout=10)
    acked = by_partition(acked)
    assert_same(acked, consume_exact(bootstrap, topic, acked), check_timestamp=False)


@pytest.mark.compression
@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
def test_compressed_roundtrip(bootstrap, unique, codec):
    pytest.importorskip({"gzip": "gzip", "lz4": "lz4", "zstd": "zstandard"}[codec])
    topic = unique(f"kp-{codec}")
    create(bootstrap, topic, 2)
    items = [{"key": f"k{i}".encode(), "value": (f"compressible {i} " * 20).encode(), "partition": i % 2} for i in range(200)]
    acked = by_partition(produce_all(bootstrap, topic, items, compression_type=codec))
    assert_same(acked, consume_exact(bootstrap, topic, acked))


@pytest.mark.groups
def test_group_of_two_commit_and_resume(bootstrap, unique):
    topic = unique("kp-group")
    group = unique("kp-g")
    create(bootstrap, topic, 4)
    acked = produce_all(bootstrap, topic, [{"value": f"g{i}".encode(), "partition": i % 4} for i in range(200)])
    want = {(r.partition, r.offset): r.value for r in acked}

    def member():
        return KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )

    # Each member polls on its own thread, as applications run consumers. (One loop taking turns
    # between two members trips kafka-python 3.0.x: a JoinGroup+SyncGroup that completes while
    # its member is not inside poll() is discarded and a fresh JoinGroup sent, so the group
    # rebalances forever -- against any fast coordinator.)
    seen = defaultdict(int)
    owners = defaultdict(set)
    assigned = [set(), set()]
    lock = threading.Lock()
    done = threading.Barrier(2)
    deadline = time.time() + 60

    def run(i):
        m = member()
        try:
            while time.time() < deadline:
                with lock:
                    if len(seen) >= len(want):
                        break
                for tp, records in m.poll(timeout_ms=100).items():
                    with lock:
                        for r in records:
                            seen[(tp.partition, r.offset)] += 1
                            owners[tp.partition].add(i)
                    m.commit()
            assigned[i] = set(tp.partition for tp in m.assignment())
        finally:
            # Nobody leaves (a LeaveGroup rebalances the other) before both read their assignment.
            try:
                done.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
            m.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == set(want), f"handled {len(seen)} of {len(want)}"
    assert all(n == 1 for n in seen.values()), "some messages were delivered twice"
    assert assigned[0].isdisjoint(assigned[1]) and assigned[0] | assigned[1] == {0, 1, 2, 3}, assigned

    more = produce_all(bootstrap, topic, [{"value": f"h{i}".encode(), "partition": i % 4} for i in range(40)])
    c = member()
    got = {}
    deadline = time.time() + 45
    try:
        while len(got) < len(more) and time.time() < deadline:
            for tp, records in c.poll(timeout_ms=200).items():
                for r in records:
                    got[(tp.partition, r.offset)] = r.value
    finally:
        c.close()
    assert got == {(r.partition, r.offset): r.value for r in more}, "resume after commit"


def read_back(bootstrap, topic, expected, **extra):
    """Assign and read every expected partition from the beginning; {partition: [Rec]}."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest", **extra)
    try:
        tps = [TopicPartition(topic, p) for p in expected]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        want = sum(len(v) for v in expected.values())
        got, n, deadline = defaultdict(list), 0, time.time() + TIMEOUT
        while n < want and time.time() < deadline:
            for tp, records in c.poll(timeout_ms=200, max_records=1000).items():
                for r in records:
                    ts = r.timestamp if r.timestamp is not None and r.timestamp >= 0 else None
                    got[tp.partition].append(Rec(tp.partition, r.offset, r.key, r.value, list(r.headers or []), ts))
                    n += 1
        return dict(got)
    finally:
        c.close()


@pytest.mark.legacy
@pytest.mark.parametrize("codec", [None, "gzip", "lz4"])
@pytest.mark.parametrize("api_version,magic", [((0, 8, 2), 0), ((0, 10, 0), 1)])
def test_legacy_message_formats(bootstrap, unique, api_version, magic, codec):
    """kafka-python pinned to an old broker version writes message sets (magic 0: Produce v0;
    magic 1: Produce v2) and reads them back with Fetch v0/v2; a modern consumer reads them too."""
    if codec == "lz4" and magic == 0:
        pytest.skip("kafka-python needs the xxhash package for magic-0 lz4 (librdkafka covers it)")
    topic = unique(f"kp-legacy-m{magic}-{codec}")
    create(bootstrap, topic, 2)
    base = int(time.time() * 1000) - 3_600_000
    items = [
        {"key": (f"k{i}".encode() if i % 3 else None), "value": f"old {i} ".encode() * 5, "partition": i % 2, "timestamp": base + i}
        for i in range(100)
    ]
    acked = by_partition(produce_all(bootstrap, topic, items, api_version=api_version, compression_type=codec))
    keeps_ts = magic >= 1
    assert_same(acked, read_back(bootstrap, topic, acked, api_version=api_version), check_timestamp=keeps_ts)
    modern = read_back(bootstrap, topic, acked)
    assert_same(acked, modern, check_timestamp=keeps_ts)
    if not keeps_ts:
        assert all(r.timestamp is None for recs in modern.values() for r in recs), "magic 0 has no timestamps"
