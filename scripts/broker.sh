#!/usr/bin/env bash
# Start/stop a Ringbolt broker for tests (the compat suite, CI).
#
#   scripts/broker.sh start PORT DATADIR     start target/release/ringbolt serve in the background,
#                                            wait until 127.0.0.1:PORT accepts connections
#   scripts/broker.sh stop DATADIR           SIGTERM (clean shutdown), SIGKILL after 20 s
#   scripts/broker.sh restart PORT DATADIR   stop, then start on the same data (restart tests)
#
# STOP_SIGNAL=KILL makes stop (and restart) a crash: SIGKILL at once, no clean shutdown (kill -9
# recovery tests, COMPAT_CRASH_RESTART_CMD in scripts/test.sh).
#
# Writes DATADIR/ringbolt.pid and appends the broker's output to DATADIR/ringbolt.log.
# Environment: RINGBOLT_BIN (default target/release/ringbolt), RINGBOLT_ARGS (extra serve args),
# RUST_LOG (default info), START_TIMEOUT (seconds, default 30).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${RINGBOLT_BIN:-$root/target/release/ringbolt}

start() {
  local port=$1 dir=$2
  mkdir -p "$dir"
  ulimit -l unlimited 2>/dev/null || true # glommio's io_uring rings need locked memory
  # shellcheck disable=SC2086
  NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} nohup "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" \
    ${RINGBOLT_ARGS:-} >>"$dir/ringbolt.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$dir/ringbolt.pid"
  local deadline=$((SECONDS + ${START_TIMEOUT:-30}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "ringbolt: exited during start; last log lines:" >&2
      tail -30 "$dir/ringbolt.log" >&2
      return 1
    fi
    if ((SECONDS > deadline)); then
      echo "ringbolt: 127.0.0.1:$port not open after ${START_TIMEOUT:-30}s" >&2
      kill -9 "$pid" 2>/dev/null || true
      return 1
    fi
    sleep 0.1
  done
  echo "ringbolt: pid $pid on 127.0.0.1:$port, data $dir/data, log $dir/ringbolt.log" >&2
}

stop() {
  local dir=$1 pid
  [[ -f $dir/ringbolt.pid ]] || return 0
  pid=$(cat "$dir/ringbolt.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -s "${STOP_SIGNAL:-TERM}" "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS > deadline)); then
        echo "ringbolt: pid $pid ignored SIGTERM for 20s; SIGKILL" >&2
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$dir/ringbolt.pid"
}

case ${1:-} in
start) [[ $# -eq 3 ]] || { echo "usage: $0 start PORT DATADIR" >&2; exit 2; }; start "$2" "$3" ;;
stop) [[ $# -eq 2 ]] || { echo "usage: $0 stop DATADIR" >&2; exit 2; }; stop "$2" ;;
restart) [[ $# -eq 3 ]] || { echo "usage: $0 restart PORT DATADIR" >&2; exit 2; }; stop "$3"; start "$2" "$3" ;;
*) echo "usage: $0 start PORT DATADIR | stop DATADIR | restart PORT DATADIR" >&2; exit 2 ;;
esac
