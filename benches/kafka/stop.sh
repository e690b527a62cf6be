#!/usr/bin/env bash
# Stop the reference Kafka broker started by start.sh: SIGTERM (controlled shutdown), SIGKILL after
# STOP_TIMEOUT seconds (default 30).    benches/kafka/stop.sh DATADIR
# STOP_SIGNAL=KILL: a crash instead (SIGKILL at once), for the compat suite's kill -9 tests.
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 DATADIR" >&2
  exit 2
fi
pidfile=$1/kafka.pid
[[ -f $pidfile ]] || { echo "kafka: no $pidfile" >&2; exit 0; }
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill -s "${STOP_SIGNAL:-TERM}" "$pid"
  deadline=$((SECONDS + ${STOP_TIMEOUT:-30}))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      echo "kafka: pid $pid still alive after ${STOP_TIMEOUT:-30}s, killing" >&2
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.3
  done
fi
rm -f "$pidfile"
echo "kafka: stopped pid $pid" >&2
