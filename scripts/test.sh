#!/usr/bin/env bash
# make test: installs what is missing, starts a RabbitMQ, a PostgreSQL and a Dovecot of its
# own (free ports, data under .esteira-test/, wiped each run) beside any `make up` stack, runs every
# test against them, then schemathesis against the api (scripts/schemathesis.sh), the
# dashboard's browser tests (scripts/browser-tests.sh) and the Kubernetes manifests'
# check (scripts/kubernetes-check.sh), and stops the servers again, whatever the outcome
# (those a test started itself too, under a scratch folder: even if the test process crashed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ESTEIRA_ROOT"

STACK="$ESTEIRA_ROOT/.esteira-test"
NODE=$(rabbit_node_name esteira-test "$STACK")

ensure_packages

# Servers a test starts itself (a RabbitMQ cluster, a PostgreSQL to restart) live under a
# scratch folder of this run, stopped here whatever became of the test process.
SCRATCH=$(mktemp -d /tmp/esteira-test-XXXXXX)
export ESTEIRA_TEST_SCRATCH=$SCRATCH

cleanup() {
  local rc=$?
  scratch_servers_stop "$SCRATCH" || true
  rabbit_stop "$STACK" "$NODE" || true
  pg_stop "$STACK" || true
  dovecot_stop "$STACK/dovecot" || true
  exit $rc
}
trap cleanup EXIT INT TERM

# Start from nothing: a previous run that was killed may have left servers or data behind.
rabbit_stop "$STACK" "$NODE" || true
pg_stop "$STACK" || true
dovecot_stop "$STACK/dovecot" || true
pg_destroy "$STACK"
rm -rf "$STACK"
mkdir -p "$STACK"

# Below the kernel's ephemeral range (32768 and up), where outgoing connections take ports.
AMQP_PORT=$(free_port 25700)
MGMT_PORT=$(free_port 27700)
PROM_PORT=$(free_port $((MGMT_PORT + 20)))
DIST_PORT=$(free_port $((AMQP_PORT + 1000)))
PG_PORT=$(free_port 25432)

pg_start "$STACK" "$PG_PORT"
rabbit_start "$STACK" "$NODE" "$AMQP_PORT" "$MGMT_PORT" "$PROM_PORT" "$DIST_PORT"
mail_servers_start "$STACK"

export ESTEIRA_TEST_AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
export ESTEIRA_TEST_AMQP_MGMT_URL="http://guest:guest@127.0.0.1:$MGMT_PORT"
export ESTEIRA_TEST_DATABASE_URL="postgres://esteira@127.0.0.1:$PG_PORT/esteira"
export ESTEIRA_TEST_RABBIT_NODE="$NODE"
export ESTEIRA_TEST_STACK_DIR="$STACK"
export ESTEIRA_MIGRATIONS_DIR="$ESTEIRA_ROOT/migrations"

say "building tests"
# The whole log goes to a file; on a failure its errors (the first 40 distinct ones) and last lines are shown.
if ! swift build --build-tests >"$STACK/build.log" 2>&1; then
  grep -E "error:|Stack dump|Killed|signal" "$STACK/build.log" | awk '!seen[$0]++' | head -n 40 || true
  tail -n 10 "$STACK/build.log"
  die "the build failed (the whole log: $STACK/build.log)"
fi
tail -n 3 "$STACK/build.log"

say "running tests"
set +e
# Most tests wait on servers and child processes, so they run side by side; but all of them
# at once (each starting processors, schedulers, apis) overload a 2-core machine until
# timings a test relies on stretch. ESTEIRA_TEST_PARALLELISM caps how many run at once.
# ESTEIRA_TEST_FILTER (a regular expression of test names) runs only the matching tests, and
# no schemathesis: for a quick loop on a few integration tests.
filter=()
[ -z "${ESTEIRA_TEST_FILTER:-}" ] || filter=(--filter "$ESTEIRA_TEST_FILTER")
SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="${ESTEIRA_TEST_PARALLELISM:-6}" \
  swift test --skip-build "${filter[@]}" 2>&1 | tee "$STACK/swift-test.log"
rc=${PIPESTATUS[0]}

# Bad input: generated requests against the api's /openapi.json, on the same servers (a
# scratch database of its own). ESTEIRA_SCHEMATHESIS_EXAMPLES sets how many per operation.
if [ -z "${ESTEIRA_TEST_FILTER:-}" ]; then
  say "running schemathesis against the api"
  bash "$ESTEIRA_ROOT/scripts/schemathesis.sh" 2>&1 | tee "$STACK/schemathesis-run.log"
  schemathesis_rc=${PIPESTATUS[0]}
  # The dashboard in a real Chromium (scripts/browser-tests.sh), on the same servers.
  say "running the dashboard's browser tests"
  bash "$ESTEIRA_ROOT/scripts/browser-tests.sh" 2>&1 | tee "$STACK/browser-run.log"
  browser_rc=${PIPESTATUS[0]}
  # The Kubernetes recipe against the Kubernetes schemas (scripts/kubernetes-check.sh).
  say "checking the Kubernetes manifests"
  bash "$ESTEIRA_ROOT/scripts/kubernetes-check.sh" 2>&1 | tee "$STACK/kubernetes-run.log"
  kubernetes_rc=${PIPESTATUS[0]}
else
  echo "schemathesis: skipped (ESTEIRA_TEST_FILTER is set)" | tee "$STACK/schemathesis-run.log"
  echo "browser: skipped (ESTEIRA_TEST_FILTER is set)" | tee "$STACK/browser-run.log"
  echo "kubernetes: skipped (ESTEIRA_TEST_FILTER is set)" | tee "$STACK/kubernetes-run.log"
  schemathesis_rc=0
  browser_rc=0
  kubernetes_rc=0
fi
set -e

# The scenarios of the crash suite, the cluster suite and the database switch-over
# (Tests/ServiceTests/CrashSuiteTests.swift, ClusterSuiteTests.swift, DatabaseSwitchoverTests.swift), one line each.
if grep -qE '^(crash suite|cluster suite|database), ' "$STACK/swift-test.log"; then
  echo
  grep -E '^(crash suite|cluster suite|database), ' "$STACK/swift-test.log"
fi

# The failures again, at the end where a CI log's tail shows them: each issue with the lines
# that explain it.
if grep -q '^✘ Test .* recorded an issue' "$STACK/swift-test.log"; then
  echo
  echo "Failures:"
  awk '/^✘ Test .* recorded an issue/ {show = 1; n = 0; print; next}
       show && /^(↳| )/ && n < 8 {print; n++; next}
       {show = 0}' "$STACK/swift-test.log" | cut -c1-400 | head -n 80
  echo
  # schemathesis's own line again, below the failures, where the tail of a log shows it.
  grep -E '^schemathesis: ' "$STACK/schemathesis-run.log" | tail -1 || true
fi
grep -qE '^schemathesis: ' "$STACK/schemathesis-run.log" || echo "schemathesis: failed (exit $schemathesis_rc), no result line"
grep -E '^kubernetes: ' "$STACK/kubernetes-run.log" | tail -1 || echo "kubernetes: failed (exit $kubernetes_rc), no result line"
# The browser tests' line, and their failures by name.
if grep -qE '^browser: ' "$STACK/browser-run.log"; then
  grep -E '^browser: ' "$STACK/browser-run.log" | tail -1
  [ "$browser_rc" -eq 0 ] || grep -E '^(FAILED|ERROR) ' "$STACK/browser-run.log" | head -20 || true
else
  echo "browser: failed (exit $browser_rc), no result line"
fi

# One plain closing line, whatever the runners printed above it (Swift Testing's summary is
# "Test run with N tests [in M suites] passed|failed after ..."); the schemathesis run and the
# Kubernetes check count as one test more each, and each browser test as one.
summary=$(grep -E 'Test run with [0-9]+ tests?' "$STACK/swift-test.log" | tail -1 || true)
browser_line=$(grep -E '^browser: [0-9]+ passed' "$STACK/browser-run.log" | tail -1 || true)
br_pass=$(echo "$browser_line" | grep -Eo '^browser: [0-9]+' | grep -Eo '[0-9]+' || echo 0)
br_fail=$(echo "$browser_line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+' || echo 0)
[ "$browser_rc" -eq 0 ] || [ "${br_fail:-0}" -gt 0 ] || br_fail=1
total=$(echo "$summary" | grep -Eo 'with [0-9]+ tests?' | head -1 | grep -Eo '[0-9]+' || true)
if [ "$schemathesis_rc" -eq 0 ]; then st_pass=1; st_fail=0; else st_pass=0; st_fail=1; fi
if [ "$kubernetes_rc" -eq 0 ]; then st_pass=$((st_pass + 1)); else st_fail=$((st_fail + 1)); fi
if [ -z "$total" ]; then
  echo "$((st_pass + br_pass)) passed, $((1 + st_fail + br_fail)) failed"
  rc=1
else
  nfail=$(grep -E '^✘ Test .* failed after' "$STACK/swift-test.log" | grep -vc 'Test run with' || true)
  [ "$rc" -ne 0 ] && [ "$nfail" -eq 0 ] && nfail=1
  echo "$((total - nfail + st_pass + br_pass)) passed, $((nfail + st_fail + br_fail)) failed"
fi
[ "$schemathesis_rc" -eq 0 ] || [ "$rc" -ne 0 ] || rc=$schemathesis_rc
[ "$browser_rc" -eq 0 ] || [ "$rc" -ne 0 ] || rc=$browser_rc
[ "$kubernetes_rc" -eq 0 ] || [ "$rc" -ne 0 ] || rc=$kubernetes_rc
exit "$rc"
