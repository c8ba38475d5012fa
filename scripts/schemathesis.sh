#!/usr/bin/env bash
# Bad input: runs schemathesis (PyPI) against the api's own /openapi.json. Every operation is
# called with generated valid and invalid input (a bounded number of examples each, a fixed
# seed); the run fails on any 5xx, on any 4xx or 5xx that is not an RFC 9457 problem
# (application/problem+json with status and title; scripts/schemathesis/hooks.py), on
# responses the document does not describe (status, content type, headers, body schema), and
# on invalid input the api accepts.
#
# make test runs it after the Swift tests, on its PostgreSQL and RabbitMQ
# (ESTEIRA_TEST_DATABASE_URL, ESTEIRA_TEST_AMQP_URL): a scratch database of its own, migrated,
# and an api on a free port with a fresh admin token; no processor. Run alone, it starts
# servers of its own under .esteira-schemathesis/ and stops them again.
#
# ESTEIRA_SCHEMATHESIS_EXAMPLES (default 25): examples per operation and phase.
# ESTEIRA_SCHEMATHESIS_SEED (default 1): the seed; the same seed generates the same cases.
# The last line is "schemathesis: passed|failed, ..."; the exit code is schemathesis's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ESTEIRA_ROOT"

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${ESTEIRA_SCHEMATHESIS_EXAMPLES:-25}
SEED=${ESTEIRA_SCHEMATHESIS_SEED:-1}
[[ "$EXAMPLES" =~ ^[1-9][0-9]*$ ]] || die "ESTEIRA_SCHEMATHESIS_EXAMPLES must be a positive number, not '$EXAMPLES'"
[[ "$SEED" =~ ^[0-9]+$ ]] || die "ESTEIRA_SCHEMATHESIS_SEED must be a number, not '$SEED'"
VENV="$ESTEIRA_ROOT/.build/schemathesis-venv"

api_pid=""
own_stack=""
cleanup() {
  local rc=$?
  if [ -n "$api_pid" ] && kill -0 "$api_pid" 2>/dev/null; then
    kill -TERM "$api_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$api_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$api_pid" 2>/dev/null || true
    wait "$api_pid" 2>/dev/null || true
  fi
  if [ -n "$own_stack" ]; then servers_stop "$own_stack" "$(rabbit_node_name esteira-st "$own_stack")"; fi
  exit $rc
}
trap cleanup EXIT INT TERM

# ---- schemathesis in a virtualenv of its own, kept under .build/ --------------------------
python_venv "$VENV" "schemathesis==$SCHEMATHESIS_VERSION"

# ---- servers: make test's, or our own ------------------------------------------------------
test_servers_or_own "$ESTEIRA_ROOT/.esteira-schemathesis" esteira-st 25800 25532
if [ -n "$own_stack" ]; then
  say "building the api"
  swift build --product api 2>&1 | tail -n 1
fi
WORK="${ESTEIRA_TEST_STACK_DIR:-${own_stack:-$ESTEIRA_ROOT/.esteira-schemathesis}}/schemathesis"
rm -rf "$WORK"
mkdir -p "$WORK"
BIN=$(swift build --show-bin-path)
[ -x "$BIN/api" ] || die "$BIN/api not built (swift build --product api)"

# A scratch database beside the tests' (whose URL ends in the database name).
DB="esteira_schemathesis"
SERVER_URL="${ESTEIRA_TEST_DATABASE_URL%/*}"
psql "$SERVER_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null \
  || die "could not create database $DB on $SERVER_URL"
export ESTEIRA_DATABASE_URL="$SERVER_URL/$DB"
export ESTEIRA_AMQP_URL="$ESTEIRA_TEST_AMQP_URL"
export ESTEIRA_MIGRATIONS_DIR="$ESTEIRA_ROOT/migrations"
"$BIN/api" migrate >"$WORK/migrate.log" 2>&1 || { tail -20 "$WORK/migrate.log" >&2; die "api migrate failed"; }

# ---- the api -------------------------------------------------------------------------------
PORT=$(free_port 28080)
TOKEN="est_admin_$(openssl rand -hex 24)"
say "starting the api on 127.0.0.1:$PORT for schemathesis"
ESTEIRA_HTTP_HOST=127.0.0.1 ESTEIRA_HTTP_PORT=$PORT ESTEIRA_ADMIN_TOKEN=$TOKEN ESTEIRA_LOG_LEVEL=info \
  "$BIN/api" serve >"$WORK/api.log" 2>&1 </dev/null &
api_pid=$!
healthy=""
for _ in $(seq 1 300); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && { healthy=1; break; }
  kill -0 "$api_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$healthy" ] || { tail -20 "$WORK/api.log" >&2; die "the api did not become healthy (log: $WORK/api.log)"; }

# ---- the run -------------------------------------------------------------------------------
# Checks: schemathesis's own, but for positive_data_acceptance (the api rejects some
# schema-valid input on grounds a schema cannot state: `from` before `to`, a cron expression,
# an opaque cursor) and for those that need links or several principals; problem_json_errors
# is ours (hooks.py).
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance
CHECKS+=,response_schema_conformance,negative_data_rejection,problem_json_errors
say "schemathesis: $EXAMPLES examples per operation, seed $SEED"
started=$(date +%s)
set +e
SCHEMATHESIS_HOOKS="$ESTEIRA_ROOT/scripts/schemathesis/hooks.py" \
  "$VENV/bin/schemathesis" --config-file "$ESTEIRA_ROOT/scripts/schemathesis/schemathesis.toml" \
  run "http://127.0.0.1:$PORT/openapi.json" \
  --header "Authorization: Bearer $TOKEN" \
  --checks "$CHECKS" \
  --max-examples "$EXAMPLES" --seed "$SEED" \
  --workers 1 --generation-database none --no-color \
  --report junit --report-junit-path "$WORK/junit.xml" \
  2>&1 | tee "$WORK/schemathesis.log"
rc=${PIPESTATUS[0]}
set -e
elapsed=$(( $(date +%s) - started ))

# "Test cases:" is followed by e.g. "1497 generated, 1497 passed" or "... found 2 unique failures".
cases=$(grep -A1 '^Test cases:' "$WORK/schemathesis.log" | tail -1 | sed -E 's/^ +//' || true)
if grep -q 'level":"error' "$WORK/api.log"; then
  echo "the api logged errors during the run ($WORK/api.log):"
  grep 'level":"error' "$WORK/api.log" | head -5 | cut -c1-400
fi
if [ "$rc" -eq 0 ]; then
  echo "schemathesis: passed, ${cases:-no test cases} in ${elapsed}s ($EXAMPLES examples per operation, seed $SEED)"
else
  echo "schemathesis: failed (exit $rc), ${cases:-no summary} in ${elapsed}s ($EXAMPLES examples per operation, seed $SEED; log: $WORK/schemathesis.log, api log: $WORK/api.log)"
fi
exit "$rc"
