"""Assertions shared by the client tests: what the broker acknowledged vs what came back."""

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Rec:
    """One message: where it was acknowledged, and its content (None = null)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list = field(default_factory=list)  # [(str, bytes | None)]
    timestamp: int | None = None  # CreateTime in ms, when the producer set one


def by_partition(acked, start=0):
    """Group acknowledged records by partition, sorted by offset; check offsets are contiguous
    from `start` (a new topic) and that no offset was acknowledged twice."""
    parts = defaultdict(list)
    for r in acked:
        parts[r.partition].append(r)
    for p, recs in parts.items():
        recs.sort(key=lambda r: r.offset)
        offsets = [r.offset for r in recs]
        want = list(range(start, start + len(recs)))
        assert offsets == want, f"partition {p}: acknowledged offsets {offsets[:20]}... not contiguous from {start}"
    return dict(parts)


def assert_same(expected, received, check_headers=True, check_timestamp=True):
    """`expected`: {partition: [Rec]} in offset order; `received`: {partition: [Rec]} in delivery
    order. Counts, order, offsets, keys, values, headers and timestamps must match exactly."""
    assert sorted(received) == sorted(p for p, recs in expected.items() if recs), (
        f"received partitions {sorted(received)}, expected {sorted(expected)}"
    )
    for p, want in expected.items():
        got = received.get(p, [])
        assert len(got) == len(want), f"partition {p}: received {len(got)} messages, expected {len(want)}"
        for g, w in zip(got, want):
            where = f"partition {p} offset {w.offset}"
            assert g.offset == w.offset, f"{where}: received offset {g.offset} (order/contiguity)"
            assert g.key == w.key, f"{where}: key {g.key!r} != {w.key!r}"
            assert g.value == w.value, f"{where}: value {g.value!r} != {w.value!r}"
            if check_headers:
                assert list(g.headers) == list(w.headers), f"{where}: headers {g.headers!r} != {w.headers!r}"
            if check_timestamp and w.timestamp is not None:
                assert g.timestamp == w.timestamp, f"{where}: timestamp {g.timestamp} != {w.timestamp}"
