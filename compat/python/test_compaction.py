"""Log compaction with confluent-kafka (librdkafka): a `cleanup.policy=compact` topic.

Many versions per key plus tombstones go to one partition; the broker's cleaner must leave,
for a consumer reading from the beginning, exactly the latest value of every live key and no
record at all of a deleted key (the tombstones too go once `delete.retention.ms` has passed
after the first cleaning), at the offsets the producer was given, and far fewer records than
were produced. Keyless records are refused with INVALID_RECORD, as Kafka refuses them.

Runs unchanged against Apache Kafka (`scripts/test.sh reference`): only topic configs are set,
so both brokers clean with their default `log.cleaner.backoff.ms` (15 s). A filler key is
written every 200 ms while waiting: its appends roll the active segment (`segment.ms` = 1 s;
segments roll only on append, in both brokers) and keep the log dirty, so cleaning passes keep
coming until the tombstones' horizon has passed.
"""

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT = 30.0
KEYS = 100
VERSIONS = 20
DELETED = range(0, KEYS, 5)  # every fifth key gets a tombstone
WAIT = 150.0  # the cleaner backs off 15 s between idle rounds; two passes are needed


def create_compacted(bootstrap, topic):
    a = AdminClient({"bootstrap.servers": bootstrap})
    configs = {
        "cleanup.policy": "compact",
        "segment.bytes": "1048576",  # Kafka 4's minimum
        "segment.ms": "1000",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "1000",
        "min.compaction.lag.ms": "0",
    }
    fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)], operation_timeout=TIMEOUT)
    fs[topic].result(timeout=TIMEOUT)
    deadline = time.time() + TIMEOUT
    while True:
        t = a.list_topics(topic=topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == 1 and t.partitions[0].leader >= 0:
            return
        assert time.time() < deadline, f"topic {topic} has no leader"
        time.sleep(0.1)


def key(k):
    return f"key-{k:03}".encode()


def value(k, v):
    return f"v{v}-{k}-".encode() + b"x" * 200


def read_all(bootstrap, topic):
    """Every record from the beginning to the high watermark: [(offset, key, value)]."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"unused-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out, deadline = [], time.time() + TIMEOUT
        while time.time() < deadline:
            done = False
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        done = m.offset() >= high
                        continue
                    raise AssertionError(f"consumer error: {m.error()}")
                out.append((m.offset(), m.key(), m.value()))
                if m.offset() >= high - 1:
                    done = True
            if done or (out and out[-1][0] >= high - 1):
                return low, high, out
        raise AssertionError(f"did not reach the high watermark {high}: last {out[-1:]}")
    finally:
        c.close()


@pytest.mark.timeout(WAIT + 90)
def test_compacted_topic_keeps_latest_value_per_key(bootstrap, unique):
    topic = unique("compact")
    create_compacted(bootstrap, topic)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    acked, errors = {}, []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.offset()] = (msg.key(), msg.value())

    for v in range(VERSIONS):
        for k in range(KEYS):
            p.produce(topic, key=key(k), value=value(k, v), on_delivery=on_delivery)
            p.poll(0)
    for k in DELETED:
        p.produce(topic, key=key(k), value=None, on_delivery=on_delivery)
    assert p.flush(TIMEOUT) == 0
    assert not errors, errors[:3]
    produced = KEYS * VERSIONS + len(DELETED)
    assert len(acked) == produced

    # The consumer's expectation: key -> (offset, value) of its last write.
    latest = {}
    for off in sorted(acked):
        k, v = acked[off]
        latest[k] = (off, v)
    live = {k: ov for k, ov in latest.items() if ov[1] is not None}
    deleted = {k for k, ov in latest.items() if ov[1] is None}
    assert len(live) == KEYS - len(DELETED) and len(deleted) == len(DELETED)

    # A keyless record in a compacted topic: INVALID_RECORD, nothing appended.
    keyless = []
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: keyless.append(err))
    assert p.flush(TIMEOUT) == 0
    assert len(keyless) == 1 and keyless[0] is not None, keyless
    assert keyless[0].code() == KafkaError.INVALID_RECORD, keyless[0]

    # Wait for the cleaner, writing the filler key meanwhile.
    filler = b"filler"
    deadline, n, last = time.time() + WAIT, 0, None
    while True:
        for _ in range(10):
            p.produce(topic, key=filler, value=str(n).encode())
            n += 1
            p.poll(0)
            time.sleep(0.2)
        assert p.flush(TIMEOUT) == 0
        low, high, recs = read_all(bootstrap, topic)
        mine = [r for r in recs if r[1] != filler]
        last = (low, high, len(recs), len(mine))
        got = {}
        dup = False
        for off, k, v in mine:
            dup |= k in got
            got[k] = (off, v)
        if not dup and got == live and not (deleted & set(got)):
            break
        assert time.time() < deadline, (
            f"not compacted after {WAIT}s: {len(mine)} records of {len(live)} live keys left, "
            f"deleted keys present: {sorted(deleted & set(got))[:5]}, duplicates: {dup}"
        )
    # Offsets are the producer's (gaps where records went), and the log shrank.
    assert all(got[k][0] == live[k][0] for k in live)
    low, high, total, kept = last
    assert kept == len(live)
    assert total < produced // 5, f"{total} records left of {produced + n} produced"
    assert high >= produced + n
    assert [r[0] for r in recs] == sorted(r[0] for r in recs)
