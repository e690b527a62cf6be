"""confluent-kafka (librdkafka) transactions against the broker (issue 18): KIP-98 / KIP-447.

Every test carries the `transactions` marker (RINGBOLT_COMPAT_TRANSACTIONS=1). What each checks:
- commit and abort: a read_committed consumer gets exactly the committed records, in order, at
  the offsets their delivery reports gave; a read_uncommitted one also gets the aborted records
  (they were written) and neither sees a control record; each partition's high watermark counts
  one COMMIT/ABORT marker per transaction that touched it.
- an open transaction holds read_committed consumers back at its first offset (the LSO) until it
  commits; read_uncommitted consumers read past it.
- consume-transform-produce with send_offsets_to_transaction: an aborted round leaves neither the
  output records (for read_committed) nor the group's offsets; the committed rounds leave exactly
  one transformed record per input record and the group's committed offsets at the input's end.
- zombie fencing: a second producer with the same transactional.id aborts the first one's open
  transaction and fences it (a fatal error on its next commit).
- the coordinator aborts a transaction that outlives transaction.timeout.ms.
"""

import time
from collections import defaultdict

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from checks import Rec
from test_confluent import TIMEOUT, create

pytestmark = pytest.mark.transactions


def txn_producer(bootstrap, txn_id, **extra):
    conf = {"bootstrap.servers": bootstrap, "transactional.id": txn_id, "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(TIMEOUT)
    return p


def produce_txn(p, topic, items, acked):
    """Produce (key, value, partition) items in the current transaction; flush; append a Rec per
    delivered record to `acked`. Fails on any delivery error."""
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append(Rec(msg.partition(), msg.offset(), msg.key(), msg.value()))

    for key, value, partition in items:
        p.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
    assert p.flush(TIMEOUT) == 0, "records not delivered"
    assert not errors, f"delivery errors: {errors[:5]}"


def read(bootstrap, topic, partitions, isolation, want, settle=1.0):
    """Assign every partition from the beginning with `isolation.level`, read until `want`
    records came (then `settle` seconds more, to catch extras) or TIMEOUT; {partition: [Rec]}."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"unused-{topic}",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": False,
        }
    )
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got = defaultdict(list)
        n, deadline, until = 0, time.time() + TIMEOUT, None
        while True:
            now = time.time()
            if n >= want and until is None:
                until = now + settle
            if (until and now > until) or now > deadline:
                break
            for m in c.consume(num_messages=1000, timeout=0.2):
                assert not m.error(), f"consumer error: {m.error()}"
                got[m.partition()].append(Rec(m.partition(), m.offset(), m.key(), m.value()))
                n += 1
        return dict(got)
    finally:
        c.close()


def per_partition(recs):
    out = defaultdict(list)
    for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
        out[r.partition].append(r)
    return dict(out)


def assert_records(got, want, what):
    """got/want: {partition: [Rec]}; the same partitions, offsets, keys and values, in order."""
    want = {p: v for p, v in want.items() if v}
    assert sorted(got) == sorted(want), f"{what}: partitions {sorted(got)}, want {sorted(want)}"
    for p in want:
        g = [(r.offset, r.key, r.value) for r in got[p]]
        w = [(r.offset, r.key, r.value) for r in want[p]]
        assert len(g) == len(w), f"{what}: partition {p} has {len(g)} records, want {len(w)}: first extra/missing near {set(g) ^ set(w)}"
        assert g == w, f"{what}: partition {p} differs: {[x for x in zip(g, w) if x[0] != x[1]][:3]}"


def watermarks(bootstrap, topic, partitions, isolation="read_uncommitted"):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"unused-{topic}", "isolation.level": isolation})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False) for p in range(partitions)}
    finally:
        c.close()


def test_commit_and_abort(bootstrap, unique):
    topic, parts = unique("txn-cf"), 3
    create(bootstrap, topic, parts)
    p = txn_producer(bootstrap, unique("txn-cf-id"))
    committed, aborted = [], []
    txns = [("commit", 30), ("abort", 20), ("commit", 25), ("abort", 9)]
    for i, (outcome, n) in enumerate(txns):
        p.begin_transaction()
        items = [(f"k{j}".encode(), f"{outcome} {i}.{j}".encode(), j % parts) for j in range(n)]
        produce_txn(p, topic, items, committed if outcome == "commit" else aborted)
        if outcome == "commit":
            p.commit_transaction(TIMEOUT)
        else:
            p.abort_transaction(TIMEOUT)
    # A commit after aborts: the records of the last transaction become visible too.
    p.begin_transaction()
    produce_txn(p, topic, [(b"last", b"last commit", 1)], committed)
    p.commit_transaction(TIMEOUT)
    txn_count = {0: 4, 1: 5, 2: 4}  # every listed transaction touched every partition
    assert len(committed) == 56 and len(aborted) == 29

    rc = read(bootstrap, topic, parts, "read_committed", len(committed))
    assert_records(rc, per_partition(committed), "read_committed")
    ru = read(bootstrap, topic, parts, "read_uncommitted", len(committed) + len(aborted))
    assert_records(ru, per_partition(committed + aborted), "read_uncommitted")

    # The offsets that no data record holds are the markers: one per transaction and partition.
    data = per_partition(committed + aborted)
    for part, (low, high) in watermarks(bootstrap, topic, parts).items():
        assert low == 0
        assert high == len(data[part]) + txn_count[part], (
            f"partition {part}: high watermark {high}, want {len(data[part])} records + {txn_count[part]} markers"
        )
        assert data[part][-1].offset == high - 2, f"partition {part}: the last record must be followed by one marker"
    # No transaction is open: read_committed's end offset (the LSO) is the high watermark.
    assert watermarks(bootstrap, topic, parts, "read_committed") == watermarks(bootstrap, topic, parts)


def test_open_transaction_holds_read_committed(bootstrap, unique):
    topic = unique("txn-cf-lso")
    create(bootstrap, topic, 1)
    first, pending = [], []
    p = txn_producer(bootstrap, unique("txn-cf-id"))
    p.begin_transaction()
    produce_txn(p, topic, [(None, f"first {i}".encode(), 0) for i in range(10)], first)
    p.commit_transaction(TIMEOUT)
    p.begin_transaction()
    produce_txn(p, topic, [(None, f"open {i}".encode(), 0) for i in range(7)], pending)
    # Acknowledged, not committed: 10 records + a marker, then the open transaction at offset 11.
    assert [r.offset for r in pending] == list(range(11, 18))

    rc = read(bootstrap, topic, 1, "read_committed", 10, settle=2.0)
    assert_records(rc, {0: first}, "read_committed while a transaction is open")
    ru = read(bootstrap, topic, 1, "read_uncommitted", 17)
    assert_records(ru, {0: first + pending}, "read_uncommitted while a transaction is open")
    assert watermarks(bootstrap, topic, 1)[0] == (0, 18)
    assert watermarks(bootstrap, topic, 1, "read_committed")[0] == (0, 11), "read_committed end offset is the LSO"

    p.commit_transaction(TIMEOUT)
    rc = read(bootstrap, topic, 1, "read_committed", 17)
    assert_records(rc, {0: first + pending}, "read_committed after the commit")
    assert watermarks(bootstrap, topic, 1, "read_committed")[0] == (0, 19)


def test_send_offsets_consume_transform_produce(bootstrap, unique):
    src, dst, group, parts = unique("txn-cf-in"), unique("txn-cf-out"), unique("txn-cf-group"), 2
    create(bootstrap, src, parts)
    create(bootstrap, dst, parts)
    inputs = {(p, i): f"in {p}.{i}".encode() for p in range(parts) for i in range(20)}
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for (part, i), v in inputs.items():
        plain.produce(src, key=f"{part}.{i}".encode(), value=v, partition=part)
    assert plain.flush(TIMEOUT) == 0

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    p = txn_producer(bootstrap, unique("txn-cf-id"))
    c.subscribe([src])
    out_committed, out_aborted, seen = [], [], defaultdict(int)
    rounds, deadline = 0, time.time() + 60

    def transform(msgs):
        return [(m.key(), m.value().upper(), m.partition()) for m in msgs]

    try:
        # Round 1, aborted: the output is never visible and the group's offsets stay uncommitted.
        msgs = []
        while not msgs:
            assert time.time() < deadline, "no input consumed"
            msgs = [m for m in c.consume(num_messages=15, timeout=1.0) if not m.error()]
        p.begin_transaction()
        produce_txn(p, dst, transform(msgs), out_aborted)
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
        p.abort_transaction(TIMEOUT)
        stored = c.committed([TopicPartition(src, part) for part in range(parts)], timeout=10)
        assert all(tp.offset < 0 for tp in stored), f"offsets committed by an aborted transaction: {stored}"
        for part in range(parts):  # rewind to what the group committed: nothing, the beginning
            c.seek(TopicPartition(src, part, 0))

        # Committed rounds until every input record went through exactly once.
        while sum(seen.values()) < len(inputs):
            assert time.time() < deadline, f"consumed {sum(seen.values())} of {len(inputs)} input records"
            msgs = [m for m in c.consume(num_messages=7, timeout=1.0) if not m.error()]
            if not msgs:
                continue
            for m in msgs:
                seen[(m.partition(), m.offset())] += 1
            p.begin_transaction()
            produce_txn(p, dst, transform(msgs), out_committed)
            p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
            p.commit_transaction(TIMEOUT)
            rounds += 1
        assert all(n == 1 for n in seen.values()), f"input records consumed twice: {[k for k, n in seen.items() if n > 1]}"
        stored = c.committed([TopicPartition(src, part) for part in range(parts)], timeout=10)
    finally:
        c.close()
    assert rounds >= 2
    # Each partition holds 20 records from offset 0: the group committed offset 20 on each.
    assert sorted((tp.partition, tp.offset) for tp in stored) == [(part, 20) for part in range(parts)]
    # A new member of the group starts there: nothing left to consume.
    c2 = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        stored2 = c2.committed([TopicPartition(src, part) for part in range(parts)], timeout=10)
        assert sorted((tp.partition, tp.offset) for tp in stored2) == [(part, 20) for part in range(parts)]
    finally:
        c2.close()

    # Output: exactly one transformed record per input (read_committed); the aborted round's
    # records are in the log (read_uncommitted) but never visible to read_committed.
    rc = read(bootstrap, dst, parts, "read_committed", len(inputs))
    assert_records(rc, per_partition(out_committed), "read_committed output")
    values = sorted(r.value for recs in rc.values() for r in recs)
    assert values == sorted(v.upper() for v in inputs.values())
    ru = read(bootstrap, dst, parts, "read_uncommitted", len(inputs) + len(out_aborted))
    assert_records(ru, per_partition(out_committed + out_aborted), "read_uncommitted output")


def test_zombie_fencing(bootstrap, unique):
    topic, txn_id = unique("txn-cf-fence"), unique("txn-cf-id")
    create(bootstrap, topic, 1)
    zombie_recs, new_recs = [], []
    zombie = txn_producer(bootstrap, txn_id)
    zombie.begin_transaction()
    produce_txn(zombie, topic, [(None, f"zombie {i}".encode(), 0) for i in range(5)], zombie_recs)

    # The new instance's InitProducerId bumps the epoch and aborts the zombie's open transaction.
    fresh = txn_producer(bootstrap, txn_id)
    fresh.begin_transaction()
    produce_txn(fresh, topic, [(None, f"fresh {i}".encode(), 0) for i in range(7)], new_recs)
    fresh.commit_transaction(TIMEOUT)

    # The zombie's next produce fails fatally: fenced (its Produce gets INVALID_PRODUCER_EPOCH or
    # PRODUCER_FENCED, which librdkafka raises as _FENCED from flush(), or at the latest from the
    # commit).
    with pytest.raises(KafkaException) as e:
        zombie.produce(topic, value=b"zombie late", partition=0)
        zombie.flush(TIMEOUT)
        zombie.commit_transaction(TIMEOUT)
    err = e.value.args[0]
    assert err.fatal(), f"commit of a fenced producer: {err} (want a fatal error)"
    assert err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH), err

    # Zombie records: 0..4, the abort marker at 5; the new transaction's: 6..12, commit at 13.
    assert [r.offset for r in zombie_recs] == list(range(5))
    assert [r.offset for r in new_recs] == list(range(6, 13))
    rc = read(bootstrap, topic, 1, "read_committed", 7, settle=2.0)
    assert_records(rc, {0: new_recs}, "read_committed after fencing")
    ru = read(bootstrap, topic, 1, "read_uncommitted", 12, settle=2.0)
    assert_records(ru, {0: zombie_recs + new_recs}, "read_uncommitted after fencing")
    assert watermarks(bootstrap, topic, 1)[0] == (0, 14)


def test_coordinator_aborts_expired_transaction(bootstrap, unique):
    topic = unique("txn-cf-expire")
    create(bootstrap, topic, 1)
    stale, later = [], []
    # transaction.timeout.ms below Kafka's default abort check interval (10 s): the coordinator
    # aborts at its first check after the timeout.
    hung = txn_producer(bootstrap, unique("txn-cf-hung"), **{"transaction.timeout.ms": 2000})
    hung.begin_transaction()
    produce_txn(hung, topic, [(None, f"hung {i}".encode(), 0) for i in range(4)], stale)
    other = txn_producer(bootstrap, unique("txn-cf-other"))
    other.begin_transaction()
    produce_txn(other, topic, [(None, f"later {i}".encode(), 0) for i in range(6)], later)
    other.commit_transaction(TIMEOUT)
    assert [r.offset for r in stale] == list(range(4)) and [r.offset for r in later] == list(range(4, 10))

    # Until the coordinator aborts the hung transaction, the LSO stays at 0; then it passes both.
    deadline = time.time() + 60
    while watermarks(bootstrap, topic, 1, "read_committed")[0][1] == 0:
        assert time.time() < deadline, "the coordinator did not abort a transaction past its timeout within 60 s"
        time.sleep(0.5)
    assert watermarks(bootstrap, topic, 1, "read_committed")[0] == (0, 12)
    rc = read(bootstrap, topic, 1, "read_committed", 6, settle=2.0)
    assert_records(rc, {0: later}, "read_committed after the timeout abort")

    # The hung producer learns its transaction is gone: its commit fails.
    with pytest.raises(KafkaException):
        hung.commit_transaction(TIMEOUT)
