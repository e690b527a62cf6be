#!/usr/bin/env python3
"""Builds compare.md and compare.json from a benches/compare.sh report directory.

    benches/compare_table.py REPORT_DIR

Reads REPORT_DIR/<system>-<workload>/proc.json (broker CPU ticks, memory, memlock) and the loadgen
summaries produce/summary.json and consume/summary.json; REPORT_DIR/hardware.txt and started.txt.
CPU seconds per million messages: the broker's utime+stime during the produce run divided by the
messages it acknowledged (warmup included, since its CPU is in the delta too); for consume, during the
catch-up read divided by the messages read. Environment: DURATION, WARMUP, PRODUCERS (for the caption).
"""
import json
import os
import sys

SYSTEMS = ("ringbolt", "kafka", "kafka-fsync")
WORKLOADS = ("fixed", "max", "max-acks1")
NAMES = {"ringbolt": "Ringbolt", "kafka": "Kafka 4.3.1", "kafka-fsync": "Kafka 4.3.1, flush every message"}


def durability(system, acks):
    if system == "ringbolt":
        return "after fdatasync (group commit)" if acks == "all" else "write issued, no sync"
    if system == "kafka":
        return "in page cache, no fsync (Kafka default)"
    return "after fsync (log.flush.interval.messages=1)"


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_text(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def rows_of(report):
    rows = []
    for wl in WORKLOADS:
        for s in SYSTEMS:
            d = os.path.join(report, f"{s}-{wl}")
            proc = load(os.path.join(d, "proc.json"))
            if proc is None:
                continue
            p, c = load(os.path.join(d, "produce", "summary.json")), load(os.path.join(d, "consume", "summary.json"))
            tck = proc["clk_tck"]
            row = {"system": s, "workload": wl, "target_rate": proc["rate"], "acks": proc.get("acks", "all"),
                   "acked": durability(s, proc.get("acks", "all")),
                   "vmhwm_mib": round(proc["vmhwm_kib"] / 1024, 1), "vmrss_mib": round(proc["vmrss_kib"] / 1024, 1),
                   "memlock": proc.get("memlock_soft_hard"),
                   "loadgen_exit": [proc["loadgen_exit_produce"], proc["loadgen_exit_consume"]]}
            if p:
                lat, total = p["produce"]["latency_us"], p["produce"]["total_messages"]
                row.update(produce_msgs_per_sec=round(p["produce"]["msgs_per_sec"]),
                           produce_mb_per_sec=round(p["produce"]["mb_per_sec"], 1),
                           p50_ms=lat["p50"] / 1000, p99_ms=lat["p99"] / 1000, p999_ms=lat["p999"] / 1000,
                           max_ms=lat["max"] / 1000, produce_errors=p["errors"], produced_total=total,
                           produce_cpu_s=round(proc["produce_cpu_ticks"] / tck, 2),
                           produce_cpu_s_per_m=round(proc["produce_cpu_ticks"] / tck / (total / 1e6), 2) if total else None)
            if c:
                n = c["consume"]["messages"]
                row.update(consume_msgs_per_sec=round(c["consume"]["msgs_per_sec"]), consumed=n,
                           consume_violations=c["verification"]["violations"],
                           consume_cpu_s=round(proc["consume_cpu_ticks"] / tck, 2),
                           consume_cpu_s_per_m=round(proc["consume_cpu_ticks"] / tck / (n / 1e6), 2) if n else None)
            rows.append(row)
    return rows


def fmt(v, spec="{:,}"):
    return "–" if v is None else spec.format(v)


def main():
    report = sys.argv[1]
    meta = {"started": read_text(os.path.join(report, "started.txt"), "?"),
            "hardware": read_text(os.path.join(report, "hardware.txt"), "?"),
            "duration_s": float(os.environ.get("DURATION", "8")), "producers": int(os.environ.get("PRODUCERS", "2")), "warmup_s": float(os.environ.get("WARMUP", "2")),
            "command": "benches/compare.sh", "rows": rows_of(report)}
    with open(os.path.join(report, "compare.json"), "w") as f:
        json.dump(meta, f, indent=2)
    lines = [f"Run {meta['started']} on {meta['hardware']}; `benches/compare.sh`: "
             f"{meta['warmup_s']:g} s warmup + {meta['duration_s']:g} s per produce run, then a catch-up consume of "
             f"everything produced; 200 B messages, 8 partitions, {meta['producers']} producer connections with 5 requests in flight "
             "each; every broker started fresh per run, systems alternating within each workload.", "",
             "| workload | system | produce acknowledged | produce msg/s | p50 ms | p99 ms | p99.9 ms "
             "| catch-up consume msg/s | broker CPU-s / M msgs produced | … consumed | VmHWM MiB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in meta["rows"]:
        wl = (f"{r['target_rate']:,} msg/s" if r["workload"] == "fixed" else "max rate") + f", acks={r['acks']}"
        lines.append(
            f"| {wl} | {NAMES.get(r['system'], r['system'])} | {r['acked']} | {fmt(r.get('produce_msgs_per_sec'))} "
            f"| {fmt(r.get('p50_ms'), '{:,.2f}')} | {fmt(r.get('p99_ms'), '{:,.2f}')} | {fmt(r.get('p999_ms'), '{:,.2f}')} "
            f"| {fmt(r.get('consume_msgs_per_sec'))} | {fmt(r.get('produce_cpu_s_per_m'), '{:.2f}')} "
            f"| {fmt(r.get('consume_cpu_s_per_m'), '{:.2f}')} | {r['vmhwm_mib']:,} |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(report, "compare.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
