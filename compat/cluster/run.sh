#!/usr/bin/env bash
# The cluster failover test (failover_test.go, franz-go) against a fresh local 3-node cluster.
#
#   compat/cluster/run.sh [ringbolt|kafka] [franz|confluent]     (defaults: ringbolt franz)
#
# ringbolt: scripts/cluster.sh (target/release/ringbolt or RINGBOLT_BIN); kafka: the Apache Kafka
# reference, benches/kafka/cluster.sh. franz: builds compat/cluster/bin/failover.test
# (failover_test.go); confluent: failover_confluent.py in the compat venv (scripts/compat.sh sets it
# up). Starts the cluster in a temporary CLUSTER_DIR, runs the test (CYCLES kill -9 cycles, default
# 5 for franz, 3 for confluent), stops the cluster and removes the directory (KEEP_TMP=1 keeps it,
# with every node's log). Exit status: the test's.
#
# Environment: CYCLES, KILL_PAUSE_MS, KILL_INTERVAL_MS, DEADLINE_S, FAILOVER_REPORT (see
# failover_test.go); CLUSTER_BASE_PORT (default 19800 for ringbolt, 29800 for kafka),
# CLUSTER_PORT_STEP (default 10); KEEP_TMP; COMPAT_PYTHON (a Python with confluent-kafka instead of
# the compat venv).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${1:-ringbolt}
case $target in
ringbolt) script=$root/scripts/cluster.sh port=19800 ;;
kafka) script=$root/benches/kafka/cluster.sh port=29800 ;;
*) echo "usage: $0 [ringbolt|kafka] [franz|confluent]" >&2; exit 2 ;;
esac
client=${2:-franz}
case $client in
franz) cycles=${CYCLES:-5} ;;
confluent) cycles=${CYCLES:-3} ;;
*) echo "usage: $0 [ringbolt|kafka] [franz|confluent]" >&2; exit 2 ;;
esac
export CLUSTER_SCRIPT=$script
export CLUSTER_BASE_PORT=${CLUSTER_BASE_PORT:-$port} CLUSTER_PORT_STEP=${CLUSTER_PORT_STEP:-10}
export CLUSTER_DIR
CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cluster-failover-$target-$client.XXXXXX") || exit 1

cleanup() {
  bash "$script" stop
  if [[ -n ${KEEP_TMP:-} ]]; then
    echo "kept: $CLUSTER_DIR" >&2
  else
    rm -rf "$CLUSTER_DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $client == franz ]]; then
  (cd "$here" && go test -c -o bin/failover.test .) || exit 1
elif [[ -z ${COMPAT_PYTHON:-} ]]; then
  (cd "$root" && COMPAT_CLIENTS=confluent COMPAT_SETUP_ONLY=1 scripts/compat.sh) || exit 1
fi
bash "$script" start || exit 1
# The tests' own deadline is DEADLINE_S (default 120 s + 45 s a cycle); the timeouts here are a
# last resort some time after it, so that nothing outlives a hang.
timeout_s=$((${DEADLINE_S:-$((120 + 45 * cycles))} + 180))
if [[ $client == franz ]]; then
  (cd "$here" && CYCLES=$cycles bin/failover.test -test.v -test.count=1 -test.timeout "${timeout_s}s" -test.run '^TestFailover$')
else
  CYCLES=$cycles timeout "$timeout_s" "${COMPAT_PYTHON:-$root/compat/.venv/bin/python}" "$here/failover_confluent.py"
fi
status=$?
if [[ $status != 0 ]]; then
  for log in "$CLUSTER_DIR"/node-*/ringbolt.log "$CLUSTER_DIR"/node-*/kafka.out; do
    [[ -f $log ]] || continue
    echo "---- last 20 lines of $log"
    tail -20 "$log"
  done
fi
exit $status
