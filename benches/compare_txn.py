#!/usr/bin/env python3
"""Tables of benches/compare.sh's transactional runs: REPORT_DIR/txn-<system>-<mode>-<N>/txn.json
(loadgen --txn-records) and the read_committed catch-up consumes
(REPORT_DIR/<system>-<workload>/consume-rc/summary.json next to consume/summary.json).
Writes REPORT_DIR/transactions.md and transactions.json."""
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main(report):
    runs = {}
    for d in sorted(glob.glob(os.path.join(report, "txn-*"))):
        s = load(os.path.join(d, "txn.json"))
        system, mode, n = os.path.basename(d)[4:].rsplit("-", 2)
        runs[(system, mode, int(n))] = s
    sizes = sorted({n for (_, _, n) in runs})
    lines = ["| records/txn | system | mode | msg/s | txn/s | txn p50 ms | txn p99 ms | vs own idempotent | ringbolt ÷ this |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    out = []
    for n in sizes:
        rb = runs.get(("ringbolt", "transactional", n))
        for (system, mode, m), s in sorted(runs.items(), key=lambda kv: (kv[0][2], kv[0][1] != "transactional", kv[0][0])):
            if m != n:
                continue
            if not s:
                lines.append(f"| {n} | {system} | {mode} | failed | | | | | |")
                continue
            idem = runs.get((system, "idempotent", n))
            own = f"{s['records_per_sec'] / idem['records_per_sec']:.2f}" if idem and mode == "transactional" else ""
            vs = f"{rb['records_per_sec'] / s['records_per_sec']:.2f}" if rb and s["records_per_sec"] else ""
            lines.append(f"| {n} | {system} | {mode} | {s['records_per_sec']:,.0f} | {s['txn_per_sec']:,.1f} "
                         f"| {s['txn_latency_us_p50'] / 1000:.1f} | {s['txn_latency_us_p99'] / 1000:.1f} | {own} | {vs} |")
            out.append(dict(system=system, mode=mode, **s))
    rc = ["| system | workload | catch-up consume msg/s read_uncommitted | read_committed | ratio |", "|---|---|---:|---:|---:|"]
    for d in sorted(glob.glob(os.path.join(report, "*", "consume-rc"))):
        base = os.path.dirname(d)
        ru, c = load(os.path.join(base, "consume", "summary.json")), load(os.path.join(d, "summary.json"))
        if not ru or not c:
            continue
        a, b = ru["consume"]["msgs_per_sec"], c["consume"]["msgs_per_sec"]
        system, workload = os.path.basename(base).split("-", 1) if not os.path.basename(base).startswith("kafka-fsync") \
            else ("kafka-fsync", os.path.basename(base)[len("kafka-fsync-"):])
        rc.append(f"| {system} | {workload} | {a:,.0f} | {b:,.0f} | {b / a:.2f} |")
        out.append(dict(system=system, workload=workload, consume_ru=a, consume_rc=b))
    md = "## Transactional produce\n\n" + "\n".join(lines) + "\n\n## read_committed catch-up consume\n\n" + "\n".join(rc) + "\n"
    with open(os.path.join(report, "transactions.md"), "w") as f:
        f.write(md)
    with open(os.path.join(report, "transactions.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(md)


if __name__ == "__main__":
    main(sys.argv[1])
