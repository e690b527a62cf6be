#!/usr/bin/env bash
# A local Apache Kafka 4.x KRaft cluster, the reference for scripts/cluster.sh (same interface):
# N nodes (default 3), each a combined broker + controller voter, all on loopback.
#
#   benches/kafka/cluster.sh start          format (first time, one cluster id, static voters) and
#                                           start every node, wait until each accepts connections
#   benches/kafka/cluster.sh stop [NODE]    SIGTERM (controlled shutdown) and wait; SIGKILL after 30 s
#   benches/kafka/cluster.sh kill NODE      kill -9 NODE and wait until it is gone
#   benches/kafka/cluster.sh restart NODE   start NODE again on its data (stopped first if running;
#                                           STOP_SIGNAL=KILL makes that a crash)
#   benches/kafka/cluster.sh status | pids | bootstrap | ports     as scripts/cluster.sh
#
# The broker's jars come from Maven Central into benches/kafka/dist/lib, shared with start.sh
# (resolve_jars is start.sh's resolution step). Node i listens for clients on CLUSTER_BASE_PORT + (i-1)*CLUSTER_PORT_STEP and for
# controllers on the port after it; CLUSTER_DIR/node-i holds server.properties, logs/, kafka.out
# (appended across restarts) and kafka.pid.
#
# Timing settings are Ringbolt's cluster defaults rather than Kafka's (broker heartbeat 250 ms,
# session 1.5 s, election timeout 500 ms), so that the failover test measures the same protocol
# deadlines on both; KAFKA_EXTRA_PROPS (lines appended to every server.properties) overrides them.
# Internal topics use replication factor 3 (min.insync.replicas 2) as a production cluster would.
#
# Environment: CLUSTER_DIR (default ${TMPDIR:-/tmp}/kafka-cluster), CLUSTER_NODES (3),
# CLUSTER_BASE_PORT (29092), CLUSTER_PORT_STEP (100), KAFKA_VERSION, KAFKA_HEAP (default 512M per
# node), KAFKA_EXTRA_PROPS, START_TIMEOUT (seconds, default 120).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lib=$here/dist/lib
dir=${CLUSTER_DIR:-${TMPDIR:-/tmp}/kafka-cluster}
nodes=${CLUSTER_NODES:-3}
base=${CLUSTER_BASE_PORT:-29092}
step=${CLUSTER_PORT_STEP:-100}

client_port() { echo $((base + ($1 - 1) * step)); }
controller_port() { echo $((base + ($1 - 1) * step + 1)); }
node_dir() { echo "$dir/node-$1"; }
# A process that exited but was not reaped yet (a zombie) answers kill -0: not alive.
alive() { kill -0 "$1" 2>/dev/null && [[ $(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) != Z ]]; }
node_pid() {
  local f pid
  f=$(node_dir "$1")/kafka.pid
  [[ -f $f ]] || return 1
  pid=$(cat "$f")
  alive "$pid" || return 1
  echo "$pid"
}
check_node() {
  if ! [[ ${1:-} =~ ^[0-9]+$ ]] || (($1 < 1 || $1 > nodes)); then
    echo "kafka-cluster: node must be 1..$nodes, not '${1:-}'" >&2
    exit 2
  fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# As start.sh: the broker's runtime jars, resolved once per KAFKA_VERSION.
resolve_jars() {
  local mvn_args=(-q -B -f "$here/pom.xml") stamp=$here/dist/.version want=${KAFKA_VERSION:-default}
  [[ -n ${KAFKA_VERSION:-} ]] && mvn_args+=("-Dkafka.version=$KAFKA_VERSION")
  if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]] || ! ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1; then
    echo "kafka-cluster: resolving broker jars into $lib" >&2
    rm -rf "$lib"
    mvn "${mvn_args[@]}" dependency:copy-dependencies -DoutputDirectory="$lib" -DincludeScope=runtime >&2
    echo "$want" >"$stamp"
  fi
}

java_opts=(-Xms"${KAFKA_HEAP:-512M}" -Xmx"${KAFKA_HEAP:-512M}" -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/log4j2.properties")

write_config() { # node
  local i=$1 d voters="" j
  d=$(node_dir "$i")
  [[ -f $d/server.properties ]] && return 0
  mkdir -p "$d"
  for ((j = 1; j <= nodes; j++)); do
    voters+="${voters:+,}$j@127.0.0.1:$(controller_port "$j")"
  done
  cat >"$d/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(client_port "$i"),CONTROLLER://127.0.0.1:$(controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$i")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/logs
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=$((nodes < 3 ? nodes : 3))
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$((nodes < 3 ? nodes : 3))
transaction.state.log.min.isr=$((nodes < 2 ? nodes : 2))
share.coordinator.state.topic.replication.factor=$((nodes < 3 ? nodes : 3))
share.coordinator.state.topic.min.isr=$((nodes < 2 ? nodes : 2))
group.initial.rebalance.delay.ms=0
broker.heartbeat.interval.ms=250
broker.session.timeout.ms=1500
controller.quorum.election.timeout.ms=500
controller.quorum.fetch.timeout.ms=1000
unclean.leader.election.enable=false
PROPS
  [[ -n ${KAFKA_EXTRA_PROPS:-} ]] && printf '%s\n' "$KAFKA_EXTRA_PROPS" >>"$d/server.properties"
  return 0
}

format_all() { # once per CLUSTER_DIR: one cluster id for every node
  local i id
  mkdir -p "$dir"
  if [[ ! -f $dir/cluster.id ]]; then
    java -cp "$lib/*" "${java_opts[@]}" kafka.tools.StorageTool random-uuid >"$dir/cluster.id"
  fi
  id=$(cat "$dir/cluster.id")
  for i in $(seq 1 "$nodes"); do
    write_config "$i"
    if [[ ! -f $(node_dir "$i")/logs/meta.properties ]]; then
      java -cp "$lib/*" "${java_opts[@]}" kafka.tools.StorageTool format -t "$id" \
        -c "$(node_dir "$i")/server.properties" >"$(node_dir "$i")/format.out" 2>&1 || { cat "$(node_dir "$i")/format.out" >&2; exit 1; }
    fi
  done
}

launch() {
  local i=$1 d pid
  d=$(node_dir "$i")
  if pid=$(node_pid "$i"); then
    echo "kafka-cluster: node $i already running (pid $pid)" >&2
    return 0
  fi
  # Someone else's listener on our port would look like a ready node.
  if port_open "$(client_port "$i")" || port_open "$(controller_port "$i")"; then
    echo "kafka-cluster: port $(client_port "$i") or $(controller_port "$i") of node $i is already in use" >&2
    exit 1
  fi
  echo "---- $(date -u +%FT%TZ) benches/kafka/cluster.sh start node $i" >>"$d/kafka.out"
  nohup java -cp "$lib/*" "${java_opts[@]}" kafka.Kafka "$d/server.properties" >>"$d/kafka.out" 2>&1 </dev/null &
  echo $! >"$d/kafka.pid"
}

wait_ready() {
  local deadline=$((SECONDS + ${START_TIMEOUT:-120})) i pending
  while :; do
    pending=()
    for i in "$@"; do
      if ! node_pid "$i" >/dev/null; then
        echo "kafka-cluster: node $i exited during start; last log lines:" >&2
        tail -30 "$(node_dir "$i")/kafka.out" >&2
        return 1
      fi
      port_open "$(client_port "$i")" || pending+=("$i")
    done
    ((${#pending[@]} == 0)) && break
    if ((SECONDS > deadline)); then
      echo "kafka-cluster: node(s) ${pending[*]} not accepting connections after ${START_TIMEOUT:-120}s" >&2
      return 1
    fi
    sleep 0.2
  done
  for i in "$@"; do
    echo "kafka-cluster: node $i pid $(node_pid "$i") on 127.0.0.1:$(client_port "$i"), log $(node_dir "$i")/kafka.out" >&2
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
        echo "kafka-cluster: node $i (pid $pid) survives SIGKILL; giving up" >&2
        return 1
      fi
      echo "kafka-cluster: node $i (pid $pid) still running 30s after SIG$sig; SIGKILL" >&2
      kill -9 "$pid" 2>/dev/null || true
      killed=1 deadline=$((SECONDS + 30))
    fi
    sleep 0.05
  done
  rm -f "$(node_dir "$i")/kafka.pid"
}

all_nodes() { seq 1 "$nodes"; }

cmd=${1:-}
case $cmd in
start)
  resolve_jars
  format_all
  mapfile -t list < <(all_nodes)
  for i in "${list[@]}"; do launch "$i"; done
  wait_ready "${list[@]}"
  ;;
stop)
  if [[ -n ${2:-} ]]; then
    check_node "$2"
    stop_node "$2" TERM
  else
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
