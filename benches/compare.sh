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
#   4. a second catch-up consume with --isolation read-committed (the cost of read_committed
#      fetch on the same data; no transactions in it, so the LSO is the high watermark).
# Then the transactional workloads (skip with TXN=0), alternating systems for each size N in
# TXN_SIZES (default "100 1000"): loadgen --txn-records N, a closed loop of transactions of N
# records (AddPartitionsToTxn, produce, EndTxn commit; see loadgen/src/txn.rs) with TXN_PRODUCERS
# producers (default 4), against ringbolt, kafka and kafka-fsync, and the same loop with an
# idempotent producer and no transactions against ringbolt and kafka (the baseline the
# transactions' cost is measured against). Written to REPORT_DIR/transactions.md.
# Writes REPORT_DIR/compare.md and compare.json, plus each loadgen report under
# REPORT_DIR/<system>-<workload>/{produce,consume,consume-rc}/ and REPORT_DIR/txn-*/.
#
# Environment: DURATION (s, default 8), WARMUP (s, default 2), RATE (default 250000),
#   RB_PORT (21520), KAFKA_PORT (21510; controller +1), BENCH_TMP (/tmp), KAFKA_FSYNC (1),
#   PRODUCERS (producer connections, default 2), ACKS1 (1: also the acks=1 max-rate workload, Ringbolt and Kafka only),
#   SKIP_BUILD (unset: cargo build --release first). Takes about 4-5 minutes.
set -euo pipefail
# shellcheck source=benches/bench-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench-lib.sh"

duration=${DURATION:-8}
warmup=${WARMUP:-2}
rate=${RATE:-250000}
producers=${PRODUCERS:-2}
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
    --producers "$producers" \
    --expect-produce "$r" --report-dir "$out/produce" >"$out/produce.txt" 2>"$out/produce.err" || rc_p=$?
  c1=$(cpu_ticks "$pid")
  echo "== $system $workload: catch-up consume" >&2
  "$loadgen" --bootstrap "127.0.0.1:$port" --mode consume --topic bench --partitions 8 \
    --report-dir "$out/consume" >"$out/consume.txt" 2>"$out/consume.err" || rc_c=$?
  c2=$(cpu_ticks "$pid")
  echo "== $system $workload: catch-up consume, read_committed" >&2
  "$loadgen" --bootstrap "127.0.0.1:$port" --mode consume --topic bench --partitions 8 \
    --isolation read-committed \
    --report-dir "$out/consume-rc" >"$out/consume-rc.txt" 2>"$out/consume-rc.err" || true
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
probe_before=$(fsync_probe "$tmp")
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

# Transactional produce: one fresh broker per (size, system, mode), systems alternating.
run_txn() {
  local system=$1 n=$2 mode=$3
  local dir=$tmp/txn-$system-$mode-$n out=$report/txn-$system-$mode-$n port
  mkdir -p "$out"
  current_dir=$dir current_system=$system
  case $system in
    ringbolt) port=$rb_port; rb_start "$port" "$dir" ;;
    kafka) port=$kafka_port; KAFKA_EXTRA_PROPS= kafka_start "$port" "$dir" ;;
    kafka-fsync) port=$kafka_port; KAFKA_EXTRA_PROPS=log.flush.interval.messages=1 kafka_start "$port" "$dir" ;;
  esac
  sleep 2
  echo "== txn $system $mode: $n records per transaction" >&2
  "$loadgen" --bootstrap "127.0.0.1:$port" --mode produce --txn-records "$n" --txn-mode "$mode" \
    --duration "$duration" --warmup "$warmup" --partitions 8 --message-size 200 --topic bench \
    --producers "${TXN_PRODUCERS:-4}" --report-dir "$out" >"$out/produce.txt" 2>"$out/produce.err" || true
  tail -1 "$out/produce.txt" >&2 || true
  case $system in
    ringbolt) rb_stop "$dir" ;;
    *) kafka_stop "$dir" ;;
  esac
  current_dir=
  rm -rf "$dir"
}
if [[ ${TXN:-1} == 1 ]]; then
  for n in ${TXN_SIZES:-100 1000}; do
    for sm in ringbolt:transactional kafka:transactional ringbolt:idempotent kafka:idempotent; do
      run_txn "${sm%%:*}" "$n" "${sm#*:}"
    done
    [[ ${KAFKA_FSYNC:-1} == 1 ]] && run_txn kafka-fsync "$n" transactional
  done
  python3 "$root/benches/compare_txn.py" "$report"
fi

echo "$(hardware_line "$tmp"); 16 KiB O_DSYNC write $probe_before before, $(fsync_probe "$tmp") after the runs" >"$report/hardware.txt"
echo "$started" >"$report/started.txt"
PRODUCERS="$producers" DURATION="$duration" WARMUP="$warmup" python3 "$root/benches/compare_table.py" "$report"
echo "report: $report/compare.md, $report/compare.json" >&2
