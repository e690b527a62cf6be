"""The failover test with a second client: confluent-kafka (librdkafka), acks=all and idempotent.

Run by compat/cluster/run.sh TARGET confluent against a running 3-node cluster whose script is
CLUSTER_SCRIPT (scripts/cluster.sh or benches/kafka/cluster.sh). The same contract as
failover_test.go, with librdkafka's producer instead of franz-go's: a topic with 6 partitions,
replication factor 3 and min.insync.replicas=2; a producer thread writes "p=P seq=N" records to
every partition and keeps every delivery report that says acknowledged (with its offset); the main
thread kill -9s the leader of a random partition CYCLES times (default 3), restarts it after
KILL_PAUSE_MS and waits until every ISR is full again. At the end a consumer assigned to every
partition reads from the beginning to the high watermark, and the run fails on any acknowledged
record that is missing or at another offset, any duplicate, any sequence out of order or any
record in the wrong partition. Failover time per cycle: kill to the first acknowledgement of a
record produced after the kill on a partition the killed node led. A global deadline (DEADLINE_S,
default 60 + 45 per cycle) bounds the run; the last line is a "failover summary:" line.
"""

import os
import random
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
RF = 3
CYCLES = int(os.environ.get("CYCLES", "3"))
PAUSE = int(os.environ.get("KILL_PAUSE_MS", "3000")) / 1000
INTERVAL = int(os.environ.get("KILL_INTERVAL_MS", "2000")) / 1000
DEADLINE = time.monotonic() + int(os.environ.get("DEADLINE_S", str(60 + 45 * CYCLES)))


def cluster(*args):
    out = subprocess.run(["bash", os.environ["CLUSTER_SCRIPT"], *args], check=True,
                         stdout=subprocess.PIPE, text=True, timeout=180)
    return out.stdout.strip()


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def partitions(admin, topic):
    """{partition: (leader, isr)} from fresh metadata."""
    md = admin.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise KafkaException(t.error if t else "topic missing")
    return {p.id: (p.leader, list(p.isrs)) for p in t.partitions.values()}


def wait_healthy(admin, topic, timeout):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < min(end, DEADLINE):
        try:
            parts = partitions(admin, topic)
            if len(parts) == PARTITIONS and all(l >= 0 and len(isr) >= RF for l, isr in parts.values()):
                return parts
            last = parts
        except KafkaException as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"not every partition led with a full ISR after {timeout}s: {last}")


def main():
    boot = cluster("bootstrap")
    admin = AdminClient({"bootstrap.servers": boot})
    topic = f"failover-confluent-{int(time.time() * 1000)}"
    # Until every broker is registered and unfenced a fresh cluster refuses RF=3: retry a while.
    until = time.monotonic() + 60
    while True:
        fs = admin.create_topics([NewTopic(topic, PARTITIONS, RF, config={"min.insync.replicas": "2"})],
                                 request_timeout=30)
        try:
            fs[topic].result(timeout=40)
            break
        except KafkaException:
            if time.monotonic() > until:
                raise
            time.sleep(0.5)
    wait_healthy(admin, topic, 60)
    log(f"topic {topic}: {PARTITIONS} partitions, RF={RF}, min.insync.replicas=2, bootstrap {boot}")

    acked = {p: [] for p in range(PARTITIONS)}  # (seq, offset, enqueued, acked_at)
    errors = {}
    stats = {"produced": 0, "failed": 0}
    lock = threading.Lock()
    stop = threading.Event()
    producer = Producer({
        "bootstrap.servers": boot,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": 60000,
        "topic.metadata.refresh.interval.ms": 1000,
    })

    def report(err, msg, p, seq, enq):
        with lock:
            if err is not None:
                stats["failed"] += 1
                errors[str(err)[:120]] = errors.get(str(err)[:120], 0) + 1
            else:
                acked[p].append((seq, msg.offset(), enq, time.monotonic()))

    def produce_loop():
        seq = [0] * PARTITIONS
        while not stop.is_set():
            for p in range(PARTITIONS):
                enq = time.monotonic()
                s = seq[p]
                try:
                    producer.produce(topic, value=f"p={p} seq={s}".encode(), partition=p,
                                     on_delivery=lambda err, msg, p=p, s=s, enq=enq: report(err, msg, p, s, enq))
                except BufferError:
                    producer.poll(0.05)
                    continue
                seq[p] += 1
                stats["produced"] += 1
            producer.poll(0.005)

    t = threading.Thread(target=produce_loop, daemon=True)
    t.start()

    cycles = []
    driver_error = None
    time.sleep(INTERVAL)
    try:
        for i in range(CYCLES):
            if time.monotonic() > DEADLINE:
                raise RuntimeError(f"global deadline reached after {i} of {CYCLES} cycles")
            parts = partitions(admin, topic)
            victim = parts[random.randrange(PARTITIONS)][0]
            led = [p for p, (l, _) in parts.items() if l == victim]
            killed_at = time.monotonic()
            cluster("kill", str(victim))
            # Records enqueued before the process was gone may still be acknowledged by it.
            dead_at = time.monotonic()
            log(f"cycle {i + 1}: kill -9 node {victim} (leader of {led})")
            cycles.append((victim, led, killed_at, dead_at))
            time.sleep(PAUSE)
            cluster("restart", str(victim))
            wait_healthy(admin, topic, 90)
            log(f"cycle {i + 1}: node {victim} back, every ISR full")
            time.sleep(INTERVAL)
    except Exception as e:  # reported below, after the records are checked
        driver_error = e
    stop.set()
    t.join()
    left = producer.flush(70)
    if left:
        log(f"flush: {left} records unanswered (not acknowledged)")

    # Read everything back.
    consumer = Consumer({"bootstrap.servers": boot, "group.id": f"{topic}-check",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    ends = {}
    for p in range(PARTITIONS):
        lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        ends[p] = hi
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got = {p: [] for p in range(PARTITIONS)}
    nxt = {p: 0 for p in range(PARTITIONS)}
    read_deadline = time.monotonic() + 120
    while any(nxt[p] < ends[p] for p in range(PARTITIONS)):
        if time.monotonic() > read_deadline:
            raise RuntimeError(f"reading stopped at {nxt} of {ends}")
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        if msg.offset() < ends[msg.partition()]:
            got[msg.partition()].append((msg.offset(), msg.value()))
        nxt[msg.partition()] = msg.offset() + 1
    consumer.close()

    violations = []
    lost = dups = disorder = misplaced = moved = present = total_acked = 0
    for p in range(PARTITIONS):
        where = {}
        last = -1
        for off, val in got[p]:
            try:
                vp, vs = (int(x.split("=")[1]) for x in val.decode().split())
            except (ValueError, IndexError, AttributeError):
                vp, vs = -1, -1
            if vp != p:
                misplaced += 1
                violations.append(f"partition {p} offset {off}: unexpected value {val!r}")
                continue
            present += 1
            if vs in where:
                dups += 1
                violations.append(f"partition {p}: seq {vs} at offsets {where[vs]} and {off} (duplicate)")
                continue
            where[vs] = off
            if vs <= last:
                disorder += 1
                violations.append(f"partition {p} offset {off}: seq {vs} after {last} (out of order)")
            last = vs
        for seq, off, _, _ in acked[p]:
            total_acked += 1
            if seq not in where:
                lost += 1
                violations.append(f"partition {p}: acknowledged seq {seq} (offset {off}) is missing (LOST)")
            elif where[seq] != off:
                moved += 1
                violations.append(f"partition {p}: acknowledged seq {seq} at offset {off} is now at {where[seq]}")

    times = []
    for i, (victim, led, killed_at, dead_at) in enumerate(cycles):
        # Kill -> every partition it led acknowledged a record enqueued after it was gone.
        firsts = [min((a for (_, _, enq, a) in acked[p] if enq > dead_at), default=None) for p in led]
        if firsts and None not in firsts:
            times.append(max(firsts) - killed_at)
            log(f"cycle {i + 1}: node {victim}: failover {times[-1]:.3f}s")
        else:
            log(f"cycle {i + 1}: node {victim}: no write acknowledged after the kill on {led}")
    times.sort()
    p50 = f"{times[len(times) // 2]:.3f}s" if times else "n/a"
    mx = f"{times[-1]:.3f}s" if times else "n/a"
    for v in violations[:20]:
        log(f"VIOLATION {v}")
    for e, n in errors.items():
        log(f"produce error seen (not a violation by itself): {e} x{n}")
    if driver_error is not None:
        log(f"driver: {driver_error}")
    summary = (f"failover summary (confluent-kafka): cycles={len(cycles)} produced={stats['produced']} "
               f"acked={total_acked} failed={stats['failed']} present={present} lost={lost} moved={moved} "
               f"duplicates={dups} out_of_order={disorder} misplaced={misplaced} failover_p50={p50} failover_max={mx}")
    log(summary)
    if os.environ.get("FAILOVER_REPORT"):
        with open(os.environ["FAILOVER_REPORT"], "a") as f:
            f.write(summary + "\n")
    ok = not violations and driver_error is None and len(cycles) == CYCLES and total_acked > 0
    ok = ok and (not cycles or times)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
