#!/usr/bin/env bash
# Run the real-client compatibility suite (compat/) against a running broker.
#
#   scripts/compat.sh BOOTSTRAP            e.g. scripts/compat.sh 127.0.0.1:9092
#
# Installs what it needs on first use: a venv in compat/.venv with the pinned Python clients
# (compat/python/requirements.txt) and the Go test binaries (compat/go-*/bin), then runs, each
# under a timeout:
#   go-sarama     github.com/IBM/sarama (latest)      article producer/consumer, multi-partition, keys/headers
#   go-shopify    github.com/Shopify/sarama v1.38.1   the same, with the article's import path
#   go-franz      github.com/twmb/franz-go             newest negotiated versions: round trip, ListOffsets, admin
#   java          org.apache.kafka:kafka-clients 4.3   the reference client: admin, round trip, offsets by time
#                                                      (compat/java ClientsTest, LeaderEpochTest); transactions
#                                                      (TransactionsTest, TransactionsCrashTest: `transactions`)
#   java-admin    kafka-clients 4.3 AdminClient        createPartitions, configs with sources/synonyms,
#                                                      deleteRecords, log dirs, quotas with a measured
#                                                      throttle, electLeaders (compat/java AdminTest, issue 17)
#   kafka-tools   Kafka 4.3's CLI tools                kafka-topics/-configs/-delete-records/-get-offsets/
#                                                      -log-dirs/-consumer-groups, their main classes in one
#                                                      JVM (compat/kafka-tools ToolsTest, issue 17);
#                                                      kafka-transactions (TransactionsToolTest, `transactions`)
#   connect       Kafka Connect 4.3 distributed worker compacted internal topics, a file source, resume
#                                                      after a restart (compat/kafka-tools ConnectTest, issue 17)
#   streams       Kafka Streams 4.3, exactly_once_v2   a word count application in a child JVM, killed -9
#                                                      mid-stream and restarted: exact counts (compat/kafka-tools
#                                                      StreamsEosTest, issue 18, `transactions`)
#   confluent     confluent-kafka (librdkafka)         round trips, admin, offsets; log compaction
#                                                      (test_compaction.py, ~30 s: two cleaner rounds);
#                                                      transactions (test_transactions.py)
#   kafka-python  kafka-python                         producer, consumer, admin
#   wire          compat/python/test_wire.py           raw protocol: 50,000 requests on one connection, pipelining
#   python-groups compat/python/test_groups.py         kafka-python and confluent-kafka group members
#                                                      (issue 5; all marked `groups`)
#
# Environment:
#   COMPAT_CLIENTS="go-sarama go-shopify go-franz java java-admin kafka-tools connect streams confluent kafka-python wire python-groups"
#                                  which clients (default all). java-admin, kafka-tools and connect
#                                  expect the broker's static num.partitions=1 (compat/java/broker.toml)
#   RINGBOLT_COMPAT_GROUPS=1       also consumer-group tests (needs a group coordinator, issue 5)
#   RINGBOLT_COMPAT_COMPRESSION=1  also compressed batches (issue 6)
#   RINGBOLT_COMPAT_IDEMPOTENCE=1  also the idempotent producer (issue 6)
#   RINGBOLT_COMPAT_LEGACY=1       also message formats v0/v1: sarama V0_8_2_0/V0_10_0_0, librdkafka
#                                  with broker.version.fallback 0.9.0, kafka-python with
#                                  api_version (0,8,2)/(0,10,0) (issue 6), and the Shopify sarama
#                                  consumer group with its default config, which commits with
#                                  OffsetCommit v1 (issue 15); Kafka 4 removed these versions, so
#                                  the reference run sets RINGBOLT_COMPAT_LEGACY=0
#   RINGBOLT_COMPAT_TRANSACTIONS=1 also transactions and exactly-once (issue 18): transactional producers,
#                                  consume-transform-produce, read_committed consumers, fencing (java,
#                                  kafka-tools, streams, confluent, go-franz, go-sarama, go-shopify)
#   COMPAT_EXTRAS=all              sets the five above (an explicit RINGBOLT_COMPAT_LEGACY wins)
#   COMPAT_RESTART_CMD='...'       a shell command that restarts the broker on the same data; with
#                                  RINGBOLT_COMPAT_GROUPS=1 the sarama suites then check that a group
#                                  resumes from its committed offsets after a broker restart
#   COMPAT_CRASH_RESTART_CMD='...' a shell command (run from the repository root) that kills the broker
#                                  with SIGKILL and starts it again on the same data dir and port; with
#                                  RINGBOLT_COMPAT_TRANSACTIONS=1 the java suite's TransactionsCrashTest
#                                  then kills the broker mid-transaction (skipped without it)
#   COMPAT_TIMEOUT=300             seconds per client run
#   COMPAT_SETUP_ONLY=1            install and build, run nothing
# Exit status: non-zero if any client run failed. Last line: "compat: N passed, N failed".
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
if [[ $# -ne 1 && -z ${COMPAT_SETUP_ONLY:-} ]]; then
  echo "usage: $0 BOOTSTRAP   (e.g. 127.0.0.1:9092)" >&2
  exit 2
fi
bootstrap=${1:-}
clients=${COMPAT_CLIENTS:-go-sarama go-shopify go-franz java java-admin kafka-tools connect streams confluent kafka-python wire python-groups}
tmo=${COMPAT_TIMEOUT:-300}
if [[ ${COMPAT_EXTRAS:-} == all ]]; then
  export RINGBOLT_COMPAT_GROUPS=1 RINGBOLT_COMPAT_COMPRESSION=1 RINGBOLT_COMPAT_IDEMPOTENCE=1 RINGBOLT_COMPAT_TRANSACTIONS=1
  export RINGBOLT_COMPAT_LEGACY=${RINGBOLT_COMPAT_LEGACY-1}
fi
export RINGBOLT_BOOTSTRAP=$bootstrap
# The Java tests run in their module's directory; the crash hook's command runs from here.
export COMPAT_ROOT=$root
unset RINGBOLT_COMPAT_STATE

passed=0
failed=0
results=()
note() { printf '\n==== compat: %s\n' "$*"; }
record() { # name status seconds
  if [[ $2 == 0 ]]; then
    passed=$((passed + 1))
    results+=("PASS  $1 (${3}s)")
  else
    failed=$((failed + 1))
    results+=("FAIL  $1 (${3}s, exit $2)")
  fi
}

# ---- setup -------------------------------------------------------------------------------------
venv=$root/compat/.venv
setup_python() {
  local py=${PYTHON:-}
  if [[ -z $py ]]; then
    py=$(command -v python3.11 || command -v python3)
  fi
  local want
  want=$(sha256sum compat/python/requirements.txt | cut -c1-64)
  if [[ ! -x $venv/bin/python || $(cat "$venv/.requirements.sha256" 2>/dev/null) != "$want" ]]; then
    note "python: creating $venv with $py and installing compat/python/requirements.txt"
    rm -rf "$venv"
    "$py" -m venv "$venv" &&
      "$venv/bin/pip" install -q --disable-pip-version-check -r compat/python/requirements.txt &&
      echo "$want" >"$venv/.requirements.sha256"
  fi
}

setup_go() { # module dir
  note "$1: go mod download, go test -c"
  (cd "compat/$1" && go mod download && go test -c -o bin/compat.test .)
}

setup_status=0
need_python=0
java_built=0
tools_built=0
for c in $clients; do
  case $c in
  go-sarama | go-shopify | go-franz)
    if [[ $c == go-shopify ]] && ! scripts/sync-go-shopify.sh --check; then
      setup_status=1
    fi
    setup_go "$c" || setup_status=1
    ;;
  confluent | kafka-python | wire | python-groups) need_python=1 ;;
  java | java-admin)
    if [[ $java_built == 0 ]]; then
      note "java: mvn test-compile (kafka-clients, JUnit from Maven Central)"
      (cd compat/java && mvn -B -ntp -q test-compile) || setup_status=1
      java_built=1
    fi
    ;;
  kafka-tools | connect | streams)
    if [[ $tools_built == 0 ]]; then
      note "kafka-tools: mvn test-compile (kafka-tools, kafka_2.13, connect-runtime, connect-file, kafka-streams from Maven Central)"
      (cd compat/kafka-tools && mvn -B -ntp -q test-compile) || setup_status=1
      tools_built=1
    fi
    ;;
  *) echo "compat: unknown client '$c' (go-sarama go-shopify go-franz java java-admin kafka-tools connect streams confluent kafka-python wire python-groups)" >&2; setup_status=1 ;;
  esac
done
if [[ $need_python == 1 ]]; then
  setup_python || setup_status=1
fi
if [[ $setup_status != 0 ]]; then
  echo "compat: setup failed" >&2
  echo "compat: 0 passed, 1 failed"
  exit 1
fi
[[ -n ${COMPAT_SETUP_ONLY:-} ]] && exit 0

# ---- runs --------------------------------------------------------------------------------------
run() { # name command...
  local name=$1 t0=$SECONDS status
  shift
  note "$name against $bootstrap"
  timeout --kill-after=10 "$tmo" "$@"
  status=$?
  [[ $status == 124 ]] && echo "compat: $name timed out after ${tmo}s" >&2
  record "$name" "$status" $((SECONDS - t0))
}

run_go() { # module
  local mod=$1
  run "$mod" bash -c "cd compat/$mod && exec bin/compat.test -test.v -test.count=1 -test.timeout ${tmo}s -test.skip '^TestGroupRestart' -bootstrap '$bootstrap'"
  if [[ $mod != go-franz && ${RINGBOLT_COMPAT_GROUPS:-} == 1 && -n ${COMPAT_RESTART_CMD:-} ]]; then
    local state t0=$SECONDS status
    state=$(mktemp)
    note "$mod: group offsets across a broker restart"
    (cd "compat/$mod" && RINGBOLT_COMPAT_STATE=$state timeout "$tmo" bin/compat.test -test.v -test.count=1 -test.run '^TestGroupRestartBefore$' -bootstrap "$bootstrap") &&
      bash -c "$COMPAT_RESTART_CMD" &&
      (cd "compat/$mod" && RINGBOLT_COMPAT_STATE=$state timeout "$tmo" bin/compat.test -test.v -test.count=1 -test.run '^TestGroupRestartAfter$' -bootstrap "$bootstrap")
    status=$?
    rm -f "$state"
    record "$mod group-restart" "$status" $((SECONDS - t0))
  fi
}

for c in $clients; do
  case $c in
  go-sarama | go-shopify | go-franz) run_go "$c" ;;
  java) run java mvn -B -ntp -f compat/java/pom.xml surefire:test -Dtest="ClientsTest,LeaderEpochTest,TransactionsTest,TransactionsCrashTest" -Dbootstrap="$bootstrap" ;;
  java-admin) run java-admin mvn -B -ntp -f compat/java/pom.xml surefire:test -Dtest=AdminTest -Dbootstrap="$bootstrap" ;;
  kafka-tools) run kafka-tools mvn -B -ntp -f compat/kafka-tools/pom.xml surefire:test -Dtest="ToolsTest,TransactionsToolTest" -Dbootstrap="$bootstrap" ;;
  connect) run connect mvn -B -ntp -f compat/kafka-tools/pom.xml surefire:test -Dtest=ConnectTest -Dbootstrap="$bootstrap" ;;
  streams) run streams mvn -B -ntp -f compat/kafka-tools/pom.xml surefire:test -Dtest=StreamsEosTest -Dbootstrap="$bootstrap" ;;
  confluent) run confluent "$venv/bin/python" -m pytest compat/python/test_confluent.py compat/python/test_compaction.py compat/python/test_transactions.py -v -rs ;;
  kafka-python) run kafka-python "$venv/bin/python" -m pytest compat/python/test_kafka_python.py -v -rs ;;
  wire) run wire "$venv/bin/python" -m pytest compat/python/test_wire.py -v -rs ;;
  python-groups)
    if [[ -f compat/python/test_groups.py ]]; then
      run python-groups "$venv/bin/python" -m pytest compat/python/test_groups.py -v -rs
    else
      note "python-groups: compat/python/test_groups.py not present (group branch not merged), skipped"
    fi
    ;;
  esac
done

printf '\n==== compat summary (%s)\n' "$bootstrap"
printf '  %s\n' "${results[@]}"
echo "compat: $passed passed, $failed failed"
[[ $failed == 0 ]]
