#!/usr/bin/env bash
# Ringbolt and Apache Kafka side by side on this machine: the same loadgen workloads against each,
# alternating, with a comparison table.
#
#   benches/compare.sh [REPORT_DIR]        (default: reports/compare-<UTC time>)
#
# For each workload (fixed rate `--rate $RATE` acks=all, max rate `--rate 0` acks=all, max rate
# acks=1; 200-byte messages, 8 partitions, 2 producer connections) and each system in turn:
#   1. start the broker fresh on loopback with an empty data dir under $BENCH_TMP (both systems on
#      the same filesystem/disk):
#        ringbolt     `ringbolt serve` (one shard per core) under `ulimit -l unlimited`;
#                     acks=all is answered after fdatasync (group commit)
#        kafka        Kafka 4.3.1, single KRaft node (benches/kafka/start.sh), 1 GiB G1 heap,
#                     default threads; Kafka's default flush policy: acks=all with one replica
#                     is answered once the batch is in the page cache, no fsync
#        kafka-fsync  the same with log.flush.interval.messages=1: fsync after every append, the
#                     durability Ringbolt gives acks=all (skip with KAFKA_FSYNC=0)
#   2. loadgen --mode produce (warmup + duration), then loadgen --mode consume (catch-up read of
#      everything produced), sampling the broker's utime+stime (/proc/PID/stat) around each;
#   3. VmHWM / VmRSS of the broker (/proc/PID/status) after both; stop it.
# Writes REPORT_DIR/compare.md and compare.json, plus each loadgen report under
# REPORT_DIR/<system>-<workload>/{produce,consume}/.
#
# Environment: DURATION (s, default 8), WARMUP (s, default 2), RATE (default 250000),
#   RB_PORT (21520), KAFKA_PORT (21510; controller +1), BENCH_TMP (/tmp), KAFKA_FSYNC (1),
#   ACKS1 (1: also the acks=1 max-rate workload, Ringbolt and Kafka only),
#   SKIP_BUILD (unset: cargo build --release first). Takes about 4-5 minutes.
set -euo pipefail
# shellcheck source=benches/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

duration=${DURATION:-8}
warmup=${WARMUP:-2}
rate=${RATE:-250000}
rb_port=${RB_PORT:-21520}
kafka_port=${KAFKA_PORT:-21510}
report=${1:-$root/reports/compare-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$report"
report=$(cd "$report" && pwd)
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/ringbolt-compare.XXXXXX")

current_dir=
current_system=
cleanup() {
  if [[ -n $current_dir ]]; then
    case $current_system in
      ringbolt) rb_stop "$current_dir" ;;
      *) kafka_stop "$current_dir" ;;
    esac
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

[[ -n ${SKIP_BUILD:-} ]] || build_release
loadgen=$(loadgen_bin)
systems=(ringbolt kafka)
[[ ${KAFKA_FSYNC:-1} == 1 ]] && systems+=(kafka-fsync)

run_one() {
  local system=$1 workload=$2 r=$3 acks=$4
  local dir=$tmp/$system-$workload out=$report/$system-$workload pid port
  mkdir -p "$out"
  current_dir=$dir current_system=$system
  case $system in
    ringbolt)
      port=$rb_port
      rb_start "$port" "$dir"
      pid=$RB_PID
      ;;
    kafka)
      port=$kafka_port
      KAFKA_EXTRA_PROPS= kafka_start "$port" "$dir"
      pid=$KAFKA_PID
      ;;
    kafka-fsync)
      port=$kafka_port
      KAFKA_EXTRA_PROPS=log.flush.interval.messages=1 kafka_start "$port" "$dir"
      pid=$KAFKA_PID
      ;;
  esac
  sleep 2 # let the JVM / shards settle after the port opened
  local c0 c1 c2 rc_p=0 rc_c=0
  c0=$(cpu_ticks "$pid")
  echo "== $system $workload: produce --rate $r --acks $acks" >&2
  "$loadgen" --bootstrap "127.0.0.1:$port" --mode produce --acks "$acks" --rate "$r" \
    --duration "$duration" --warmup "$warmup" --partitions 8 --message-size 200 --topic bench \
    --expect-produce "$r" --report-dir "$out/produce" >"$out/produce.txt" 2>"$out/produce.err" || rc_p=$?
  c1=$(cpu_ticks "$pid")
  echo "== $system $workload: catch-up consume" >&2
  "$loadgen" --bootstrap "127.0.0.1:$port" --mode consume --topic bench --partitions 8 \
    --report-dir "$out/consume" >"$out/consume.txt" 2>"$out/consume.err" || rc_c=$?
  c2=$(cpu_ticks "$pid")
  local rss hwm memlock
  memlock=$(awk '/^Max locked memory/ {print $4 "/" $5}' "/proc/$pid/limits")
  rss=$(status_kib "$pid" VmRSS)
  hwm=$(status_kib "$pid" VmHWM)
  case $system in
    ringbolt) rb_stop "$dir" ;;
    *) kafka_stop "$dir" ;;
  esac
  current_dir=
  du -sk "$dir" | awk '{print $1}' >"$out/data_kib"
  rm -rf "$dir"
  cat >"$out/proc.json" <<JSON
{"system": "$system", "workload": "$workload", "rate": $r, "acks": "$acks", "clk_tck": $clk_tck,
 "produce_cpu_ticks": $((c1 - c0)), "consume_cpu_ticks": $((c2 - c1)),
 "vmrss_kib": ${rss:-0}, "vmhwm_kib": ${hwm:-0}, "memlock_soft_hard": "$memlock",
 "loadgen_exit_produce": $rc_p, "loadgen_exit_consume": $rc_c}
JSON
  grep -E "^(produce|consume)" "$out/produce.txt" "$out/consume.txt" >&2 || true
}

started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
workloads=("fixed:$rate:all" "max:0:all")
[[ ${ACKS1:-1} == 1 ]] && workloads+=("max-acks1:0:1")
for wl in "${workloads[@]}"; do
  IFS=: read -r name r acks <<<"$wl"
  for system in "${systems[@]}"; do
    # Flushing per message changes nothing Kafka promises for acks=1: skip that pairing.
    [[ $acks == 1 && $system == kafka-fsync ]] && continue
    run_one "$system" "$name" "$r" "$acks"
  done
done

HW="$(hardware_line "$tmp")" STARTED="$started" DURATION="$duration" WARMUP="$warmup" \
  python3 - "$report" "${systems[@]}" <<'PY'
import json, os, sys
report, systems = sys.argv[1], sys.argv[2:]
rows = []
for wl in ("fixed", "max", "max-acks1"):
    for s in systems:
        d = os.path.join(report, f"{s}-{wl}")
        if not os.path.exists(os.path.join(d, "proc.json")):
            continue
        proc = json.load(open(os.path.join(d, "proc.json")))
        def summary(phase):
            try:
                return json.load(open(os.path.join(d, phase, "summary.json")))
            except (OSError, ValueError):
                return None
        p, c = summary("produce"), summary("consume")
        tck = proc["clk_tck"]
        row = {"system": s, "workload": wl, "target_rate": proc["rate"], "acks": proc["acks"],
               "vmhwm_mib": round(proc["vmhwm_kib"] / 1024, 1),
               "vmrss_mib": round(proc["vmrss_kib"] / 1024, 1),
               "loadgen_exit": [proc["loadgen_exit_produce"], proc["loadgen_exit_consume"]]}
        if p:
            lat = p["produce"]["latency_us"]
            total = p["produce"]["total_messages"]
            row.update(produce_msgs_per_sec=round(p["produce"]["msgs_per_sec"]),
                       produce_mb_per_sec=round(p["produce"]["mb_per_sec"], 1),
                       p50_ms=lat["p50"] / 1000, p99_ms=lat["p99"] / 1000,
                       p999_ms=lat["p999"] / 1000, max_ms=lat["max"] / 1000,
                       produce_errors=p["errors"], produced_total=total,
                       produce_cpu_s=round(proc["produce_cpu_ticks"] / tck, 2),
                       produce_cpu_s_per_m=round(proc["produce_cpu_ticks"] / tck / (total / 1e6), 2) if total else None)
        if c:
            n = c["consume"]["messages"]
            row.update(consume_msgs_per_sec=round(c["consume"]["msgs_per_sec"]),
                       consumed=n, consume_violations=c["verification"]["violations"],
                       consume_cpu_s=round(proc["consume_cpu_ticks"] / tck, 2),
                       consume_cpu_s_per_m=round(proc["consume_cpu_ticks"] / tck / (n / 1e6), 2) if n else None)
        rows.append(row)
meta = {"started": os.environ["STARTED"], "hardware": os.environ["HW"],
        "duration_s": float(os.environ["DURATION"]), "warmup_s": float(os.environ["WARMUP"]),
        "command": "benches/compare.sh", "rows": rows}
json.dump(meta, open(os.path.join(report, "compare.json"), "w"), indent=2)

def f(v, fmt="{:,}"):
    return "–" if v is None else fmt.format(v)
names = {"ringbolt": "Ringbolt (fdatasync per group commit)",
         "kafka": "Kafka 4.3.1 (default flush: page cache, no fsync)",
         "kafka-fsync": "Kafka 4.3.1 (log.flush.interval.messages=1)"}
lines = [f"Run {meta['started']} on {meta['hardware']}; `benches/compare.sh`, "
         f"{meta['warmup_s']:g} s warmup + {meta['duration_s']:g} s per run, 200 B messages, "
         "8 partitions, 2 producer connections (5 requests in flight each); each broker started fresh per run.", "",
         "| workload | system | produce msg/s | p50 ms | p99 ms | p99.9 ms | catch-up consume msg/s "
         "| CPU-s / M msgs produce | CPU-s / M msgs consume | VmHWM MiB | VmRSS MiB |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
for r in rows:
    wl = (f"{r['target_rate']:,} msg/s" if r["workload"] == "fixed" else "max rate") + f", acks={r['acks']}"
    lines.append(f"| {wl} | {names.get(r['system'], r['system'])} | {f(r.get('produce_msgs_per_sec'))} "
                 f"| {f(r.get('p50_ms'), '{:.2f}')} | {f(r.get('p99_ms'), '{:.2f}')} | {f(r.get('p999_ms'), '{:.2f}')} "
                 f"| {f(r.get('consume_msgs_per_sec'))} | {f(r.get('produce_cpu_s_per_m'), '{:.2f}')} "
                 f"| {f(r.get('consume_cpu_s_per_m'), '{:.2f}')} | {r['vmhwm_mib']:,} | {r['vmrss_mib']:,} |")
md = "\n".join(lines) + "\n"
open(os.path.join(report, "compare.md"), "w").write(md)
print(md)
PY
echo "report: $report/compare.md, $report/compare.json" >&2
