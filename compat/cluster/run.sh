#!/usr/bin/env bash
# The cluster failover test (failover_test.go, franz-go) against a fresh local 3-node cluster.
#
#   compat/cluster/run.sh [ringbolt|kafka]     (default ringbolt)
#
# ringbolt: scripts/cluster.sh (target/release/ringbolt or RINGBOLT_BIN); kafka: the Apache Kafka
# reference, benches/kafka/cluster.sh. Builds compat/cluster/bin/failover.test, starts the cluster in
# a temporary CLUSTER_DIR, runs the test (CYCLES kill -9 cycles, default 5), stops the cluster and
# removes the directory (KEEP_TMP=1 keeps it, with every node's log). Exit status: the test's.
#
# Environment: CYCLES, KILL_PAUSE_MS, KILL_INTERVAL_MS, DEADLINE_S, FAILOVER_REPORT (see
# failover_test.go); CLUSTER_BASE_PORT (default 19800 for ringbolt, 29800 for kafka),
# CLUSTER_PORT_STEP (default 10); KEEP_TMP.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${1:-ringbolt}
case $target in
ringbolt) script=$root/scripts/cluster.sh port=19800 ;;
kafka) script=$root/benches/kafka/cluster.sh port=29800 ;;
*) echo "usage: $0 [ringbolt|kafka]" >&2; exit 2 ;;
esac
export CLUSTER_SCRIPT=$script
export CLUSTER_BASE_PORT=${CLUSTER_BASE_PORT:-$port} CLUSTER_PORT_STEP=${CLUSTER_PORT_STEP:-10}
export CLUSTER_DIR
CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cluster-failover-$target.XXXXXX") || exit 1

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

(cd "$here" && go test -c -o bin/failover.test .) || exit 1
bash "$script" start || exit 1
cycles=${CYCLES:-5}
# The test's own deadline is DEADLINE_S (default 120 s + 45 s a cycle); -test.timeout is a last
# resort some time after it, so that nothing outlives a hang.
timeout_s=$((${DEADLINE_S:-$((120 + 45 * cycles))} + 180))
(cd "$here" && CYCLES=$cycles bin/failover.test -test.v -test.count=1 -test.timeout "${timeout_s}s" -test.run '^TestFailover$')
status=$?
if [[ $status != 0 ]]; then
  for log in "$CLUSTER_DIR"/node-*/ringbolt.log "$CLUSTER_DIR"/node-*/kafka.out; do
    [[ -f $log ]] || continue
    echo "---- last 20 lines of $log"
    tail -20 "$log"
  done
fi
exit $status
