#!/usr/bin/env bash
# librdkafka's own integration test suite (its tests/test-runner) against one plaintext broker.
#
#   compat/librdkafka/run.sh BOOTSTRAP [TEST...]     run tests against BOOTSTRAP (host:port)
#   compat/librdkafka/run.sh --build-only            fetch, verify and build the runner only
#   compat/librdkafka/run.sh --kafka-props           broker.toml as server.properties lines (its
#                                                    settings and its "#kafka:" lines)
#
# The runner is built from librdkafka's release source as shipped, complete with tests/, in the
# npm package @confluentinc/kafka-javascript (the registry is reachable where GitHub is not); the
# tarball is checked against the sha512 pinned below, then configured with the system's libraries
# (OpenSSL, zlib, zstd, lz4, RapidJSON from Debian's -dev packages, installed with apt-get when
# missing and we are root), without SASL/GSSAPI and HTTP, which a plaintext broker does not need.
# The build is cached outside the checkout, in ~/.cache/ringbolt/librdkafka (LIBRDKAFKA_BUILD_DIR),
# so that CI's fresh clones and every worktree share it: a rerun with the same pin and configure
# flags starts the tests at once (a lock serialises concurrent first builds).
#
# TESTs are librdkafka test numbers (0001 ...); without them, the tests.list beside this script
# selects: the "fast" set by default, every listed test with LIBRDKAFKA_TESTS=full. Each number
# runs as its own test-runner process under a timeout (all of its variants, e.g. 0045_*), in
# upstream's normal mode: never quick mode (-Q), which skips every sub-test not marked quick and
# still reports the test PASSED, having checked nothing. A test number that ends with no test run
# (all skipped) counts as a failure: the list must only name tests that apply. The broker is
# expected to run with broker.toml's settings (scripts/test.sh starts it so).
#
# known-failures beside this script ("NNNN reason" lines) lists tests that fail for a tracked
# broker gap: they still run, are reported KNOWN-FAIL and do not fail the run; one that passes is
# reported so its line can be removed. LIBRDKAFKA_KNOWN_FAILURES=none (the reference run against
# Apache Kafka) makes every listed test required.
#
# Environment: LIBRDKAFKA_TESTS (fast|full), LIBRDKAFKA_KNOWN_FAILURES (file or none),
# LIBRDKAFKA_TEST_TIMEOUT (seconds per test number; default 300, 1500 for full),
# LIBRDKAFKA_LOG_DIR (per-test logs; default a new temporary dir), LIBRDKAFKA_BUILD_DIR,
# LIBRDKAFKA_PYTHON (a python with confluent_kafka; default the compat venv), LIBRDKAFKA_RETRIES
# (reruns of a failed test, default 0; a pass on a rerun is reported as such), TEST_KAFKA_VERSION
# (the broker version the suite gates tests on; default 4.3.0, the reference Kafka), TEST_LEVEL,
# TEST_DEBUG.
# Exit status non-zero if a test failed that is not a known failure.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# The pin: the npm package and the sha512 of its tarball (npm's dist.integrity), and the
# librdkafka version it carries in deps/librdkafka.
NPM_PKG=@confluentinc/kafka-javascript
NPM_VERSION=1.10.1
NPM_INTEGRITY=sha512-KVePUBn21EqCVP9mfxzEuM3SYJHHEF7X+iiC2e43QQgDSyEaksInmCGooT3w5q+cNAdkSCrK71j0ICfqoSqZLw==
RDK_VERSION=2.15.1
CONFIGURE_ARGS=(--no-download --enable-ssl --disable-gssapi --disable-curl
  --enable-zlib --enable-zstd --enable-lz4-ext --disable-debug-symbols)
DEB_PACKAGES=(libssl-dev zlib1g-dev libzstd-dev liblz4-dev rapidjson-dev)
# What the tests need of the build: SSL only for configuration checks (0064 sets an invalid SSL
# config so that rd_kafka_new() fails), RapidJSON to verify statistics JSON (0053, 0110), sockem
# (the runner's own socket emulation) for the network-fault tests.
REQUIRED_FEATURES=(WITH_SSL WITH_ZLIB WITH_ZSTD WITH_SNAPPY WITH_RAPIDJSON WITH_SOCKEM)

build=${LIBRDKAFKA_BUILD_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ringbolt/librdkafka}
src=$build/librdkafka-$RDK_VERSION
stamp=$build/.built-$NPM_VERSION-$(printf '%s ' "${CONFIGURE_ARGS[@]}" | cksum | cut -d' ' -f1)

log() { printf 'librdkafka: %s\n' "$*" >&2; }

install_deps() {
  local missing=() p
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    log "missing build dependencies: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})"
    return 1
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

fetch_source() {
  local tgz got
  mkdir -p "$build/dl"
  tgz=$build/dl/confluentinc-kafka-javascript-$NPM_VERSION.tgz
  if [[ ! -f $tgz ]]; then
    log "fetching $NPM_PKG@$NPM_VERSION (librdkafka $RDK_VERSION source) from the npm registry"
    (cd "$build/dl" && npm pack --silent "$NPM_PKG@$NPM_VERSION" >&2) || return 1
  fi
  got=sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)
  if [[ $got != "$NPM_INTEGRITY" ]]; then
    log "integrity mismatch for $tgz: got $got, pinned $NPM_INTEGRITY"
    rm -f "$tgz"
    return 1
  fi
  rm -rf "$src" "$build/unpack"
  mkdir -p "$build/unpack"
  tar -xzf "$tgz" -C "$build/unpack" package/deps/librdkafka || return 1
  mv "$build/unpack/package/deps/librdkafka" "$src" && rm -rf "$build/unpack"
  grep -q "RD_KAFKA_VERSION  *0x$(printf '%02x%02x%02x' ${RDK_VERSION//./ })" "$src/src/rdkafka.h" ||
    { log "$src is not librdkafka $RDK_VERSION"; return 1; }
}

ensure_runner() {
  [[ -f $stamp && -x $src/tests/test-runner ]] && return 0
  mkdir -p "$build" || return 1
  (
    flock 9 || exit 1
    [[ -f $stamp && -x $src/tests/test-runner ]] && exit 0 # built by a concurrent run meanwhile
    build_runner
  ) 9>"$build/.lock"
}

build_runner() {
  local jobs
  jobs=$(nproc 2>/dev/null || echo 2)
  install_deps || return 1
  command -v npm >/dev/null || { log "npm is needed to fetch the source"; return 1; }
  rm -f "$build"/.built-*
  fetch_source || return 1
  log "building librdkafka $RDK_VERSION and tests/test-runner in $src (a few minutes, once)"
  (
    cd "$src" &&
      ./configure "${CONFIGURE_ARGS[@]}" >"$build/configure.log" 2>&1 &&
      for f in "${REQUIRED_FEATURES[@]}"; do
        grep -q "^#define $f 1" config.h || { echo "configure: $f missing" >>"$build/configure.log"; exit 1; }
      done &&
      make -j"$jobs" libs >"$build/make.log" 2>&1 &&
      make -j"$jobs" -C tests build >>"$build/make.log" 2>&1
  ) || {
    log "build failed; last lines of $build/configure.log and $build/make.log:"
    tail -20 "$build/configure.log" "$build/make.log" >&2
    return 1
  }
  touch "$stamp"
}

# A few tests create, grow or delete topics with Kafka's bin/kafka-topics.sh ($KAFKA_PATH); ours
# (kafka/bin/kafka-topics.sh) sends the same Admin API requests with confluent-kafka from the
# compat venv, which scripts/compat.sh builds when it is missing.
python=${LIBRDKAFKA_PYTHON:-$root/compat/.venv/bin/python}
ensure_admin_tool() {
  "$python" -c 'import confluent_kafka' 2>/dev/null && return 0
  [[ -z ${LIBRDKAFKA_PYTHON:-} ]] && COMPAT_CLIENTS=confluent COMPAT_SETUP_ONLY=1 "$root/scripts/compat.sh" >&2 &&
    "$python" -c 'import confluent_kafka' 2>/dev/null && return 0
  log "no python with confluent_kafka at $python (for kafka/bin/kafka-topics.sh)"
  return 1
}

# tests.list: "NNNN SET  what it covers" lines, SET being fast or full.
listed_tests() { # set -> numbers
  awk -v set="$1" '/^[0-9][0-9][0-9][0-9] / && (set == "full" || $2 == "fast") { print $1 }' "$here/tests.list"
}

describe() { # number -> its tests.list description, cut short
  awk -v t="$1" '$1 == t { $1 = ""; $2 = ""; sub(/^ +/, ""); print substr($0, 1, 38); exit }' "$here/tests.list"
}

known_reason() { # number -> reason, status 0 if listed
  local f=${LIBRDKAFKA_KNOWN_FAILURES:-$here/known-failures}
  [[ $f != none && -f $f ]] || return 1
  awk -v t="$1" '$1 == t { $1 = ""; sub(/^ +/, ""); print; found = 1 } END { exit !found }' "$f"
}

if [[ ${1:-} == --build-only ]]; then
  ensure_runner
  exit
fi
if [[ ${1:-} == --kafka-props ]]; then # broker.toml as server.properties lines
  sed -n -e 's/^"\([^"]*\)" *= *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1=\2/p' -e 's/^#kafka: *//p' "$here/broker.toml"
  exit
fi
if [[ $# -lt 1 || $1 == -* ]]; then
  echo "usage: $0 BOOTSTRAP [TEST...] | --build-only | --kafka-props" >&2
  exit 2
fi
bootstrap=$1
shift
set_name=${LIBRDKAFKA_TESTS:-fast}
case $set_name in fast | full) ;; *) echo "LIBRDKAFKA_TESTS must be fast or full" >&2; exit 2 ;; esac
if [[ $# -gt 0 ]]; then
  tests=("$@")
else
  mapfile -t tests < <(listed_tests "$set_name")
fi
((${#tests[@]} > 0)) || { log "no tests selected"; exit 2; }

ensure_runner || exit 1
ensure_admin_tool || exit 1

logdir=${LIBRDKAFKA_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/librdkafka-tests.XXXXXX")}
mkdir -p "$logdir" && logdir=$(cd "$logdir" && pwd) || exit 1
conf=$logdir/test.conf
mkdir -p "$logdir/work" && ln -sfn "$src/src" "$logdir/src" || exit 1
cat >"$conf" <<CONF
metadata.broker.list=$bootstrap
# Random topic names: a rerun against the same broker never meets an earlier run's topics.
test.topic.random=true
CONF

# A backstop against a hung runner: each test enforces its own, shorter timeouts. 0113 alone runs
# for about 15 minutes against Kafka.
per_test_timeout=${LIBRDKAFKA_TEST_TIMEOUT:-$([[ $set_name == full ]] && echo 1500 || echo 300)}
log "${#tests[@]} tests ($set_name) against $bootstrap, broker version ${TEST_KAFKA_VERSION:-4.3.0}, logs in $logdir"

passed=0 failed=0 known=0 fixed=0
rows=()
failures=()
t_all=$SECONDS
run_one() { # number log report -> result string on stdout
  local t=$1 out=$2 report=$3 t0=$SECONDS status secs ran nfail
  rm -f "$report"
  # CI is unset so the runner behaves the same on a developer's machine and in CI (it would
  # otherwise raise its timeouts and request.timeout.ms on its own). It runs in $logdir/work,
  # where it writes its stats_*.json and *.offset files; $logdir/src stands for the source's src/
  # (0053 reads ../src/statistics_schema.json, as from tests/).
  (
    cd "$logdir/work" &&
      env -u CI LD_LIBRARY_PATH="$src/src:$src/src-cpp" RDKAFKA_TEST_CONF="$conf" TESTS="$t" \
        TEST_REPORT="$report" TEST_KAFKA_VERSION="${TEST_KAFKA_VERSION:-4.3.0}" \
        KAFKA_PATH="$here/kafka" BROKERS="$bootstrap" LIBRDKAFKA_PYTHON="$python" \
        RDKAFKA_GITVER="v$RDK_VERSION" \
        timeout -k 10 "$per_test_timeout" "$src/tests/test-runner"
    exit $? # not exec'd: a runner's abort is then reported in its log, not on our stderr
  ) >"$out" 2>&1
  status=$?
  secs=$((SECONDS - t0))
  ran=$(sed -n 's/.*"tests_run": \([0-9]*\).*/\1/p' "$report" 2>/dev/null)
  nfail=$(sed -n 's/.*"tests_failed": \([0-9]*\).*/\1/p' "$report" 2>/dev/null)
  if [[ $status == 0 && ${ran:-0} -gt 0 && ${nfail:-1} == 0 ]]; then
    echo PASS
  elif [[ $status == 124 ]] || ((status == 137 && secs >= per_test_timeout)); then
    echo "FAIL (timeout ${per_test_timeout}s)"
  elif [[ $status == 0 ]]; then
    echo "FAIL (no test ran: skipped)"
  else
    echo "FAIL (exit $status)"
  fi
}

for t in "${tests[@]}"; do
  t0=$SECONDS
  result=$(run_one "$t" "$logdir/$t.log" "$logdir/$t.json")
  # LIBRDKAFKA_RETRIES: the reference run's allowance for a failure of the broker's timing rather
  # than of the test (see scripts/test.sh); the first run's log is kept as NNNN.try1.log.
  for ((try = 1; try <= ${LIBRDKAFKA_RETRIES:-0}; try++)); do
    [[ $result == PASS ]] && break
    mv "$logdir/$t.log" "$logdir/$t.try$try.log"
    first=$result
    result=$(run_one "$t" "$logdir/$t.log" "$logdir/$t.json")
    [[ $result == PASS ]] && result="PASS (on retry $try; before: $first, log $t.try$try.log)"
  done
  secs=$((SECONDS - t0))
  if reason=$(known_reason "$t"); then
    if [[ $result == PASS* ]]; then
      fixed=$((fixed + 1)) passed=$((passed + 1))
      result="PASS -- listed in known-failures ($reason): remove the line"
    else
      known=$((known + 1))
      result="KNOWN-FAIL ($reason)"
    fi
  elif [[ $result == PASS* ]]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$t")
  fi
  row=$(printf '%-44s %5ss  %s' "$t $(describe "$t")" "$secs" "$result")
  rows+=("$row")
  printf '%s\n' "$row" >&2
done

for t in "${failures[@]}"; do
  printf '\n---- %s: last 40 lines of %s\n' "$t" "$logdir/$t.log"
  sed 's/\x1b\[[0-9;]*m//g' "$logdir/$t.log" | tail -40
done
printf '\n---- librdkafka %s test suite against %s (%s set, %ss)\n' "$RDK_VERSION" "$bootstrap" "$set_name" $((SECONDS - t_all))
printf '  %s\n' "${rows[@]}"
((fixed > 0)) && echo "($fixed listed known failures now pass: remove them from $here/known-failures)"
echo "librdkafka: $passed passed, $failed failed, $known known failures"
((failed == 0))
