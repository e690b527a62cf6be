#!/usr/bin/env bash
# Broker footprint and scaling on this machine (Ringbolt by default, or Kafka for comparison).
#
#   benches/scaling.sh [REPORT_DIR]        (default: reports/scaling-<system>-<UTC time>)
#   SYSTEM=kafka benches/scaling.sh        (the same against Kafka 4.3.1, benches/kafka/start.sh)
#
# One broker (`ringbolt serve`: one shard per core, `ulimit -l unlimited`; fresh data dir):
#   footprint  VmRSS of the broker (/proc/PID/status) before and after
#              - creating a 1,000-partition topic, twice (loadgen --mode produce with --rate 100
#                for 0.1 s: creates the topic and writes ~10 messages into one partition, so
#                999 of 1,000 partitions stay idle) → KiB per idle partition;
#              - opening 200 connections that each complete an ApiVersions exchange and then stay
#                idle (python3, raw protocol), twice → KiB per idle connection.
#   scaling    loadgen --rate 0 --acks all --mode produce, 200-byte messages, for
#              --partitions 1, 8, 100, 1000 (2 producer connections) and
#              --producers 1, 8, 50, 200 (8 partitions); a fresh topic per run.
# Prints a markdown table and writes REPORT_DIR/scaling.md and scaling.json.
#
# Environment: SYSTEM (ringbolt|kafka), DURATION (s per scaling run, default 4), WARMUP
#   (default 1), RB_PORT (21530), KAFKA_PORT (21535), BENCH_TMP (/tmp), SKIP_BUILD.
#   Takes about 2 minutes.
set -euo pipefail
# shellcheck source=benches/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

duration=${DURATION:-4}
warmup=${WARMUP:-1}
system=${SYSTEM:-ringbolt}
case $system in
  ringbolt) port=${RB_PORT:-21530} ;;
  kafka) port=${KAFKA_PORT:-21535} ;;
  *) echo "SYSTEM must be ringbolt or kafka" >&2; exit 2 ;;
esac
report=${1:-$root/reports/scaling-$system-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$report"
report=$(cd "$report" && pwd)
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/ringbolt-scaling.XXXXXX")
conn_pid=
cleanup() {
  [[ -n $conn_pid ]] && kill "$conn_pid" 2>/dev/null
  if [[ $system == ringbolt ]]; then rb_stop "$tmp/rb"; else kafka_stop "$tmp/rb"; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

[[ -n ${SKIP_BUILD:-} ]] || build_release
loadgen=$(loadgen_bin)
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
if [[ $system == ringbolt ]]; then
  rb_start "$port" "$tmp/rb"
  pid=$RB_PID
else
  kafka_start "$port" "$tmp/rb"
  pid=$KAFKA_PID
fi
sleep 2

rss() {
  sleep 1
  status_kib "$pid" VmRSS
}

# --- footprint: idle partitions ---
declare -a part_rows=()
before=$(rss)
for i in 1 2; do
  "$loadgen" --bootstrap "127.0.0.1:$port" --mode produce --acks all --rate 100 --duration 0.1 \
    --warmup 0 --partitions 1000 --topic "idle-$i" --expect-produce 0 \
    --report-dir "$tmp/idle-$i" >"$tmp/idle-$i.txt" 2>&1 ||
    { echo "creating idle-$i failed:" >&2; cat "$tmp/idle-$i.txt" >&2; exit 1; }
  after=$(rss)
  part_rows+=("$before $after")
  echo "footprint: +1000 partitions: VmRSS ${before} → ${after} KiB" >&2
  before=$after
done

# --- footprint: idle connections ---
declare -a conn_rows=()
# Holds N idle connections per "go" line on stdin, each after one ApiVersions v0 exchange
# (the handshake every client starts with); prints "ready" when they are all open.
conn_helper='
import socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
req = struct.pack(">hhih", 18, 0, 1, -1)  # ApiVersions v0, correlation id 1, null client id
for line in sys.stdin:
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
        body = s.recv(size, socket.MSG_WAITALL)
        assert struct.unpack(">ih", body[:6]) == (1, 0), body[:6]
        held.append(s)
    print("ready", len(held), flush=True)
'
fifo=$tmp/conn.fifo
mkfifo "$fifo"
python3 -c "$conn_helper" "$port" 200 <"$fifo" >"$tmp/conn.out" 2>&1 &
conn_pid=$!
exec 7>"$fifo"
conn_ready() { # wait until the helper printed its Nth "ready" line
  local n=$1 deadline=$((SECONDS + 60))
  until (($(grep -c ready "$tmp/conn.out" 2>/dev/null || true) >= n)); do
    ((SECONDS < deadline)) || { echo "connection helper stuck:" >&2; cat "$tmp/conn.out" >&2; exit 1; }
    kill -0 "$conn_pid" 2>/dev/null || { cat "$tmp/conn.out" >&2; exit 1; }
    sleep 0.2
  done
}
before=$(rss)
for i in 1 2; do
  echo go >&7
  conn_ready "$i"
  after=$(rss)
  conn_rows+=("$before $after")
  echo "footprint: +200 connections: VmRSS ${before} → ${after} KiB" >&2
  before=$after
done
exec 7>&-
wait "$conn_pid" || true
conn_pid=

# --- throughput scaling ---
declare -a scale_rows=()
scale_run() { # NAME PARTITIONS PRODUCERS
  local name=$1 parts=$2 prods=$3 out=$report/$1
  "$loadgen" --bootstrap "127.0.0.1:$port" --mode produce --acks all --rate 0 \
    --duration "$duration" --warmup "$warmup" --partitions "$parts" --producers "$prods" \
    --topic "scale-$name" --expect-produce 0 --report-dir "$out" >"$out.txt" 2>"$out.err" || true
  scale_rows+=("$name $parts $prods")
  grep -E "^produce" "$out.txt" | head -1 | sed "s/^/$name: /" >&2 || true
}
for p in 1 8 100 1000; do scale_run "partitions-$p" "$p" 2; done
for c in 1 8 50 200; do scale_run "producers-$c" 8 "$c"; done
final_rss=$(status_kib "$pid" VmRSS)
final_hwm=$(status_kib "$pid" VmHWM)

SYSTEM="$system" HW="$(hardware_line "$tmp"); 16 KiB O_DSYNC write $(fsync_probe "$tmp")" STARTED="$started" DURATION="$duration" WARMUP="$warmup" \
  PARTS="$(printf '%s\n' "${part_rows[@]}")" CONNS="$(printf '%s\n' "${conn_rows[@]}")" \
  SCALE="$(printf '%s\n' "${scale_rows[@]}")" FINAL="$final_rss $final_hwm" \
  python3 - "$report" <<'PY'
import json, os, sys
report = sys.argv[1]
def pairs(var):
    return [tuple(int(x) for x in l.split()) for l in os.environ[var].splitlines() if l.strip()]
parts = [{"before_kib": b, "after_kib": a, "kib_per_partition": round((a - b) / 1000, 2)} for b, a in pairs("PARTS")]
conns = [{"before_kib": b, "after_kib": a, "kib_per_connection": round((a - b) / 200, 1)} for b, a in pairs("CONNS")]
scale = []
for line in os.environ["SCALE"].splitlines():
    if not line.strip():
        continue
    name, p, c = line.split()
    try:
        s = json.load(open(os.path.join(report, name, "summary.json")))
        pr = s["produce"]
        scale.append({"name": name, "partitions": int(p), "producers": int(c),
                      "msgs_per_sec": round(pr["msgs_per_sec"]), "p50_ms": pr["latency_us"]["p50"] / 1000,
                      "p99_ms": pr["latency_us"]["p99"] / 1000, "errors": s["errors"],
                      "violations": s["verification"]["violations"]})
    except (OSError, ValueError, KeyError):
        scale.append({"name": name, "partitions": int(p), "producers": int(c), "msgs_per_sec": None})
rss, hwm = (int(x) for x in os.environ["FINAL"].split())
system = os.environ["SYSTEM"]
label = "`ringbolt serve`" if system == "ringbolt" else "Kafka 4.3.1 (1 GiB heap)"
out = {"system": system, "started": os.environ["STARTED"], "hardware": os.environ["HW"], "command": "benches/scaling.sh",
       "duration_s": float(os.environ["DURATION"]), "warmup_s": float(os.environ["WARMUP"]),
       "idle_partitions": parts, "idle_connections": conns, "scaling": scale,
       "final_vmrss_kib": rss, "final_vmhwm_kib": hwm}
json.dump(out, open(os.path.join(report, "scaling.json"), "w"), indent=2)
L = [f"Run {out['started']} on {out['hardware']}; `" + ("SYSTEM=kafka " if system == "kafka" else "") + "benches/scaling.sh`.", "",
     f"| footprint ({label}, VmRSS) | step 1 | step 2 |", "| --- | --- | --- |",
     "| per idle partition (+1,000 partitions) | " + " | ".join(f"{p['kib_per_partition']} KiB ({p['before_kib']:,} → {p['after_kib']:,} KiB)" for p in parts) + " |",
     "| per idle connection (+200 connections after ApiVersions) | " + " | ".join(f"{c['kib_per_connection']} KiB ({c['before_kib']:,} → {c['after_kib']:,} KiB)" for c in conns) + " |",
     "", f"Max-rate produce, acks=all, 200 B messages, {out['warmup_s']:g} s warmup + {out['duration_s']:g} s per run:", "",
     "| partitions | producer connections | produce msg/s | vs first row | p50 ms | p99 ms |", "| --- | --- | --- | --- | --- | --- |"]
for group in ("partitions-", "producers-"):
    rows = [s for s in scale if s["name"].startswith(group)]
    base = rows[0].get("msgs_per_sec") if rows else None
    for s in rows:
        v = s.get("msgs_per_sec")
        rel = f"{v / base:.2f}×" if v and base else "–"
        L.append(f"| {s['partitions']:,} | {s['producers']} | {v:,} | {rel} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} |" if v is not None
                 else f"| {s['partitions']:,} | {s['producers']} | failed | – | – | – |")
L.append("")
L.append(f"Broker at the end: VmRSS {rss / 1024:.1f} MiB, VmHWM {hwm / 1024:.1f} MiB.")
md = "\n".join(L) + "\n"
open(os.path.join(report, "scaling.md"), "w").write(md)
print(md)
PY
echo "report: $report/scaling.md, $report/scaling.json" >&2
