#!/usr/bin/env bash
# A local Ringbolt cluster for tests, benchmarks and hand runs: N nodes (default 3), each a broker
# and a controller voter (`process.roles = "broker,controller"`), all on loopback.
#
#   scripts/cluster.sh start            write the configs (first time), start every node that is not
#                                       running, wait until each accepts client connections
#   scripts/cluster.sh stop [NODE]      SIGTERM (controlled shutdown) and wait; SIGKILL after 30 s
#   scripts/cluster.sh kill NODE        kill -9 NODE (a crash) and wait until it is gone
#   scripts/cluster.sh restart NODE     start NODE again (same config, same data dir); a running
#                                       NODE is stopped first (SIGTERM, or SIGKILL with STOP_SIGNAL=KILL)
#   scripts/cluster.sh status           one line per node: id, pid, state, client address
#   scripts/cluster.sh pids             "NODE PID" for every running node
#   scripts/cluster.sh bootstrap        the client bootstrap list, host:port,host:port,...
#   scripts/cluster.sh ports            "NODE CLIENT_PORT CONTROLLER_PORT" per node
#
# benches/kafka/cluster.sh has the same interface for an Apache Kafka cluster, so a test or
# benchmark takes either script (CLUSTER_SCRIPT in scripts/test.sh and compat/cluster).
#
# Node i (1-based) listens for clients on CLUSTER_BASE_PORT + (i-1)*CLUSTER_PORT_STEP and for its
# controller peers on the port after it. Everything a node owns is under CLUSTER_DIR/node-i:
# config.toml, data/ (log.dirs, with the Raft files in data/__cluster_metadata-0/), ringbolt.log
# (appended across restarts) and ringbolt.pid. The configs are written once per CLUSTER_DIR, so a
# restarted node finds the same settings; `rm -rf CLUSTER_DIR` (after stop) starts afresh.
#
# `start` launches every node before waiting for any: a node opens its client port only once it has
# a metadata image and its own registration, which needs a quorum, so waiting for node 1 before
# starting node 2 would never finish.
#
# Environment: CLUSTER_DIR (default ${TMPDIR:-/tmp}/ringbolt-cluster), CLUSTER_NODES (3),
# CLUSTER_BASE_PORT (19092), CLUSTER_PORT_STEP (100), RINGBOLT_BIN (default target/release/ringbolt),
# CLUSTER_EXTRA_CONFIG (TOML lines appended to every node's config when it is written),
# CLUSTER_SHARDS (num.shards, default 1), RUST_LOG (default info), START_TIMEOUT (seconds, 60).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${RINGBOLT_BIN:-$root/target/release/ringbolt}
dir=${CLUSTER_DIR:-${TMPDIR:-/tmp}/ringbolt-cluster}
nodes=${CLUSTER_NODES:-3}
base=${CLUSTER_BASE_PORT:-19092}
step=${CLUSTER_PORT_STEP:-100}

client_port() { echo $((base + ($1 - 1) * step)); }
controller_port() { echo $((base + ($1 - 1) * step + 1)); }
node_dir() { echo "$dir/node-$1"; }
# A process that exited but was not reaped yet (a zombie) answers kill -0: not alive.
alive() { kill -0 "$1" 2>/dev/null && [[ $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) != Z ]]; }
node_pid() { # node -> pid of a running node, or nothing (status 1)
  local f pid
  f=$(node_dir "$1")/ringbolt.pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  alive "$pid" || return 1
  echo "$pid"
}
check_node() {
  if ! [[ ${1:-} =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > nodes)); then
    echo "cluster: node must be 1..$nodes, not '${1:-}'" >&2
    exit 2
  fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  local i=$1 d voters="" j
  d=$(node_dir "$i")
  [[ -f $d/config.toml ]] && return 0
  mkdir -p "$d/data"
  for ((j = 1; j <= nodes; j++)); do
    voters+="${voters:+,}$j@127.0.0.1:$(controller_port "$j")"
  done
  cat >"$d/config.toml" <<TOML
# Written by scripts/cluster.sh: node $i of a $nodes-node local cluster.
"process.roles" = "broker,controller"
"node.id" = $i
"controller.quorum.voters" = "$voters"
"listeners" = "PLAINTEXT://127.0.0.1:$(client_port "$i"),CONTROLLER://127.0.0.1:$(controller_port "$i")"
"advertised.listeners" = "PLAINTEXT://127.0.0.1:$(client_port "$i")"
"controller.listener.names" = "CONTROLLER"
"log.dirs" = "$d/data"
"num.shards" = ${CLUSTER_SHARDS:-1}
TOML
  [[ -n ${CLUSTER_EXTRA_CONFIG:-} ]] && printf '%s\n' "$CLUSTER_EXTRA_CONFIG" >>"$d/config.toml"
  return 0
}

launch() { # node: start the process, no waiting
  local i=$1 d pid
  d=$(node_dir "$i")
  if pid=$(node_pid "$i"); then
    echo "cluster: node $i already running (pid $pid)" >&2
    return 0
  fi
  if [[ ! -x $bin ]]; then
    echo "cluster: no ringbolt binary at $bin (cargo build --release, or set RINGBOLT_BIN)" >&2
    exit 1
  fi
  # Someone else's listener on our port would look like a ready node.
  if port_open "$(client_port "$i")" || port_open "$(controller_port "$i")"; then
    echo "cluster: port $(client_port "$i") or $(controller_port "$i") of node $i is already in use" >&2
    exit 1
  fi
  write_config "$i"
  ulimit -l unlimited 2>/dev/null || true # glommio's io_uring rings need locked memory
  echo "---- $(date -u +%FT%TZ) scripts/cluster.sh start node $i" >>"$d/ringbolt.log"
  NO_COLOR=1 RUST_LOG=${RUST_LOG:-info} nohup "$bin" serve --config "$d/config.toml" \
    >>"$d/ringbolt.log" 2>&1 </dev/null &
  echo $! >"$d/ringbolt.pid"
}

wait_ready() { # node...: until each client port accepts connections
  local deadline=$((SECONDS + ${START_TIMEOUT:-60})) i pending
  while :; do
    pending=()
    for i in "$@"; do
      if ! node_pid "$i" >/dev/null; then
        echo "cluster: node $i exited during start; last log lines:" >&2
        tail -30 "$(node_dir "$i")/ringbolt.log" >&2
        return 1
      fi
      port_open "$(client_port "$i")" || pending+=("$i")
    done
    ((${#pending[@]} == 0)) && break
    if ((SECONDS > deadline)); then
      echo "cluster: node(s) ${pending[*]} not accepting connections after ${START_TIMEOUT:-60}s" >&2
      for i in "${pending[@]}"; do
        echo "---- node $i: last log lines" >&2
        tail -15 "$(node_dir "$i")/ringbolt.log" >&2
      done
      return 1
    fi
    sleep 0.1
  done
  for i in "$@"; do
    echo "cluster: node $i pid $(node_pid "$i") on 127.0.0.1:$(client_port "$i"), log $(node_dir "$i")/ringbolt.log" >&2
  done
}

stop_node() { # node signal
  local i=$1 sig=$2 pid deadline killed=0
  pid=$(node_pid "$i") || return 0
  kill -s "$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + 30))
  while alive "$pid"; do
    if ((SECONDS > deadline)); then
      if ((killed)); then
        echo "cluster: node $i (pid $pid) survives SIGKILL; giving up" >&2
        return 1
      fi
      echo "cluster: node $i (pid $pid) still running 30s after SIG$sig; SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
      killed=1 deadline=$((SECONDS + 30))
    fi
    sleep 0.05
  done
  rm -f "$(node_dir "$i")/ringbolt.pid"
}

all_nodes() { seq 1 "$nodes"; }

cmd=${1:-}
case $cmd in
start)
  mapfile -t list < <(all_nodes)
  for i in "${list[@]}"; do launch "$i"; done
  wait_ready "${list[@]}"
  ;;
stop)
  if [[ -n ${2:-} ]]; then
    check_node "$2"
    stop_node "$2" TERM
  else
    # In parallel: a controlled shutdown needs the others' quorum, so stopping one at a time would
    # leave the last nodes waiting for a majority that is already gone.
    for i in $(all_nodes); do stop_node "$i" TERM & done
    wait
  fi
  ;;
kill)
  check_node "${2:-}"
  stop_node "$2" KILL
  ;;
restart)
  check_node "${2:-}"
  stop_node "$2" "${STOP_SIGNAL:-TERM}"
  launch "$2"
  wait_ready "$2"
  ;;
status)
  for i in $(all_nodes); do
    if pid=$(node_pid "$i"); then
      state=running
      port_open "$(client_port "$i")" || state="running (port not open)"
    else
      pid=- state=stopped
    fi
    echo "node $i pid $pid $state 127.0.0.1:$(client_port "$i") controller 127.0.0.1:$(controller_port "$i")"
  done
  ;;
pids)
  for i in $(all_nodes); do
    pid=$(node_pid "$i") && echo "$i $pid"
  done
  true
  ;;
bootstrap)
  out=""
  for i in $(all_nodes); do out+="${out:+,}127.0.0.1:$(client_port "$i")"; done
  echo "$out"
  ;;
ports)
  for i in $(all_nodes); do echo "$i $(client_port "$i") $(controller_port "$i")"; done
  ;;
*)
  echo "usage: $0 start | stop [NODE] | kill NODE | restart NODE | status | pids | bootstrap | ports" >&2
  exit 2
  ;;
esac
