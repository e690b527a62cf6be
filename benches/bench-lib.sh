# Shared helpers of benches/compare.sh and benches/scaling.sh (sourced, not run).
#
# Process accounting comes from procfs: CPU time = utime + stime of /proc/PID/stat (all threads,
# in clock ticks), memory = VmRSS / VmHWM of /proc/PID/status. Both are read for the broker's
# process only, never for loadgen.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
clk_tck=$(getconf CLK_TCK)

# cpu_ticks PID: user + system CPU ticks of the process so far.
cpu_ticks() {
  # Field 2 (comm) may contain spaces: cut after the closing parenthesis.
  local stat
  stat=$(cat "/proc/$1/stat") || return 1
  stat=${stat##*) }
  # Now field 3 is the first word: utime is field 14 → word 12, stime word 13.
  awk '{print $12 + $13}' <<<"$stat"
}

# status_kib PID FIELD: a kB value of /proc/PID/status (VmRSS, VmHWM).
status_kib() {
  awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"
}

hardware_line() {
  local model cores mem kernel
  model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
  cores=$(nproc)
  mem=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')
  kernel=$(uname -r)
  local virt
  virt=$(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)
  echo "${cores} vCPU ${model}${virt:+ (${virt} VM)}, ${mem} RAM, Linux ${kernel}, data on $(df --output=source "${1:-/tmp}" | tail -1)"
}

build_release() {
  echo "building release binaries (ringbolt, loadgen)" >&2
  (cd "$root" && cargo build --release -p ringbolt -p loadgen --bins >&2)
}

# rb_start PORT DIR [serve args...]: a standalone `ringbolt serve`; sets RB_PID.
rb_start() {
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  ulimit -l unlimited 2>/dev/null || true # glommio's io_uring rings need locked memory
  RUST_LOG=${RUST_LOG:-warn} RINGBOLT_ARGS="$*" \
    "$root/scripts/broker.sh" start "$port" "$dir" >&2
  RB_PID=$(cat "$dir/ringbolt.pid")
}

rb_stop() {
  "$root/scripts/broker.sh" stop "$1" >&2 || true
}

# kafka_start PORT DIR: single-node KRaft Kafka (benches/kafka/start.sh); sets KAFKA_PID.
kafka_start() {
  "$root/benches/kafka/start.sh" "$1" "$2" >&2
  KAFKA_PID=$(cat "$2/kafka.pid")
}

kafka_stop() {
  "$root/benches/kafka/stop.sh" "$1" >&2 || true
}

loadgen_bin() {
  echo "$root/target/release/loadgen"
}

# fsync_probe DIR: mean latency of a 16 KiB O_DSYNC write in DIR (200 writes), e.g. "2.41 ms" —
# records how busy the disk was around a run (other tenants' I/O shows up here first).
fsync_probe() {
  local f=$1/.fsync-probe t0 t1
  t0=$(date +%s%N)
  dd if=/dev/zero of="$f" bs=16k count=200 oflag=dsync status=none 2>/dev/null || { echo "unknown"; return; }
  t1=$(date +%s%N)
  rm -f "$f"
  awk -v ns=$((t1 - t0)) 'BEGIN {printf "%.2f ms\n", ns / 200 / 1e6}'
}
