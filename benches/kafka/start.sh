#!/usr/bin/env bash
# Start a single-node Apache Kafka (KRaft, broker+controller) as the reference broker.
#
#   benches/kafka/start.sh PORT DATADIR
#
# Resolves the broker's jars from Maven Central into benches/kafka/dist/lib (git-ignored) on first
# use, formats DATADIR as a KRaft log dir (once), starts `kafka.Kafka` in the background and waits
# until PORT accepts connections. Clients connect to 127.0.0.1:PORT; the controller listens on
# 127.0.0.1:$CONTROLLER_PORT (default PORT+1). Both bind loopback only.
#
# Writes DATADIR/kafka.pid, DATADIR/server.properties and DATADIR/kafka.out (the broker's log).
# Stop it with benches/kafka/stop.sh DATADIR.
#
# Environment: KAFKA_VERSION (default: the pom's), KAFKA_HEAP (default 1G),
#              CONTROLLER_PORT, START_TIMEOUT (seconds, default 90),
#              KAFKA_EXTRA_PROPS (lines appended to server.properties).
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 PORT DATADIR" >&2
  exit 2
fi
port=$1
datadir=$2
cport=${CONTROLLER_PORT:-$((port + 1))}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lib=$here/dist/lib

mvn_args=(-q -B -f "$here/pom.xml")
[[ -n ${KAFKA_VERSION:-} ]] && mvn_args+=("-Dkafka.version=$KAFKA_VERSION")
stamp=$here/dist/.version
want=${KAFKA_VERSION:-default}
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]] || ! ls "$lib"/kafka_2.13-*.jar >/dev/null 2>&1; then
  echo "kafka: resolving broker jars into $lib" >&2
  rm -rf "$lib"
  mvn "${mvn_args[@]}" dependency:copy-dependencies -DoutputDirectory="$lib" -DincludeScope=runtime >&2
  echo "$want" >"$stamp"
fi

mkdir -p "$datadir"
datadir=$(cd "$datadir" && pwd)
if [[ -f $datadir/kafka.pid ]] && kill -0 "$(cat "$datadir/kafka.pid")" 2>/dev/null; then
  echo "kafka: already running with pid $(cat "$datadir/kafka.pid")" >&2
  exit 1
fi

props=$datadir/server.properties
cat >"$props" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$datadir/logs
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
# Extra server.properties lines (e.g. log.flush.interval.messages=1 for an fsync-per-append run).
[[ -n ${KAFKA_EXTRA_PROPS:-} ]] && printf '%s\n' "$KAFKA_EXTRA_PROPS" >>"$props"

java_opts=(-Xms"${KAFKA_HEAP:-1G}" -Xmx"${KAFKA_HEAP:-1G}" -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/log4j2.properties")
cp="$lib/*"

if [[ ! -f $datadir/logs/meta.properties ]]; then
  cluster_id=$(java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
  java -cp "$cp" "${java_opts[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" >&2
fi

nohup java -cp "$cp" "${java_opts[@]}" kafka.Kafka "$props" >"$datadir/kafka.out" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$datadir/kafka.pid"

deadline=$((SECONDS + ${START_TIMEOUT:-90}))
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "kafka: exited during start; last log lines:" >&2
    tail -30 "$datadir/kafka.out" >&2
    exit 1
  fi
  if ((SECONDS > deadline)); then
    echo "kafka: port $port not open after ${START_TIMEOUT:-90}s" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
  fi
  sleep 0.5
done
echo "kafka: pid $pid listening on 127.0.0.1:$port (controller 127.0.0.1:$cport), data $datadir" >&2
