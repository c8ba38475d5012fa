#!/usr/bin/env bash
# The web dashboard in a real browser: Playwright (PyPI, in a virtualenv under .build/) drives
# Debian's Chromium (its own browser download is not used) through Tests/Browser/*.py, against
# an api, a processor and a scheduler on a scratch database. Each page's screenshot is kept
# under Tests/Browser/screenshots/; a JavaScript error on any page fails its test.
#
# make test runs it after the Swift tests, on its PostgreSQL and RabbitMQ
# (ESTEIRA_TEST_DATABASE_URL, ESTEIRA_TEST_AMQP_URL); run alone, it starts servers of its own
# under .esteira-browser/ and stops them again. Arguments go to pytest (`-k schedule` runs the
# tests whose names match). The last line is "browser: N passed, M failed".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ESTEIRA_ROOT"

PLAYWRIGHT_VERSION=1.65.2
PYTEST_VERSION=9.2.0
VENV="$ESTEIRA_ROOT/.build/browser-venv"
CHROMIUM=${ESTEIRA_CHROMIUM:-/usr/bin/chromium}

pids=()
own_stack=""
own_mail=""
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$own_mail" ]; then dovecot_stop "$own_mail/dovecot" || true; rm -rf "$own_mail"; fi
  if [ -n "$own_stack" ]; then servers_stop "$own_stack" "$(rabbit_node_name esteira-browser "$own_stack")"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- Chromium from Debian, Playwright and pytest in a virtualenv ----------------------------
if [ ! -x "$CHROMIUM" ]; then
  command -v dpkg-query >/dev/null 2>&1 || die "$CHROMIUM not found (set ESTEIRA_CHROMIUM to a Chromium binary)"
  install_debs chromium
  [ -x "$CHROMIUM" ] || die "$CHROMIUM not found after installing Debian's chromium package"
fi
python_venv "$VENV" "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"

# ---- servers: make test's, or our own ------------------------------------------------------
test_servers_or_own "$ESTEIRA_ROOT/.esteira-browser" esteira-browser 25900 25632
if [ -n "$own_stack" ]; then
  say "building the executables"
  swift build >"$own_stack/build.log" 2>&1 || { grep -E 'error:' "$own_stack/build.log" | head -20 >&2; die "build failed (log: $own_stack/build.log)"; }
fi
# Logs outlive servers of our own (whose folder goes when they stop).
# The email page's test: make test's Dovecot and SMTP sink, or servers of its own.
if [ -z "${ESTEIRA_TEST_IMAP_PORT:-}" ]; then
  own_mail="$ESTEIRA_ROOT/.esteira-browser-mail"
  mail_servers_start "$own_mail"
fi
WORK="${ESTEIRA_TEST_STACK_DIR:-$ESTEIRA_ROOT/.build}/browser"
rm -rf "$WORK"
mkdir -p "$WORK"
BIN=$(swift build --show-bin-path)
for exe in api processor exporter scheduler; do [ -x "$BIN/$exe" ] || die "$BIN/$exe not built (swift build)"; done

# A scratch database and vhost of their own beside the tests' (the database URL ends in its
# name): no other run's messages reach this processor.
DB="esteira_browser"
VHOST="esteira-browser"
SERVER_URL="${ESTEIRA_TEST_DATABASE_URL%/*}"
psql "$SERVER_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null \
  || die "could not create database $DB on $SERVER_URL"
MGMT="${ESTEIRA_TEST_AMQP_MGMT_URL:?ESTEIRA_TEST_AMQP_MGMT_URL is not set}"
curl -fsS -o /dev/null -X DELETE "$MGMT/api/vhosts/$VHOST" 2>/dev/null || true
curl -fsS -o /dev/null -X PUT "$MGMT/api/vhosts/$VHOST" || die "could not create vhost $VHOST through $MGMT"
curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/json' -d '{"configure":".*","write":".*","read":".*"}' \
  "$MGMT/api/permissions/$VHOST/guest" || die "could not open vhost $VHOST to guest"
export ESTEIRA_DATABASE_URL="$SERVER_URL/$DB"
export ESTEIRA_AMQP_URL="${ESTEIRA_TEST_AMQP_URL%/}/$VHOST"
export ESTEIRA_RABBITMQ_MANAGEMENT_URL="$MGMT"
export ESTEIRA_MIGRATIONS_DIR="$ESTEIRA_ROOT/migrations"
export ESTEIRA_LOG_LEVEL=info
"$BIN/api" migrate >"$WORK/migrate.log" 2>&1 || { tail -20 "$WORK/migrate.log" >&2; die "api migrate failed"; }

# ---- the api, a processor, a scheduler, an exporter ------------------------------------------
start() {  # start NAME PORT [ARGS...]: runs the executable on PORT, logging to $WORK/NAME.log
  local name=$1 port=$2
  shift 2
  ESTEIRA_HTTP_HOST=127.0.0.1 ESTEIRA_HTTP_PORT=$port "$BIN/$name" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
  pids+=($!)
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  tail -20 "$WORK/$name.log" >&2
  die "$name did not become healthy (log: $WORK/$name.log)"
}
TOKEN="est_admin_$(openssl rand -hex 24)"
API_PORT=$(free_port 28180)
# Every page a test opens starts an event stream for the one admin token; a page left is
# noticed at the stream's next keep-alive line: every 2 s here, so the token's streams stay
# well under its cap (ESTEIRA_API_MAX_STREAMS) while tests open page after page.
ESTEIRA_ADMIN_TOKEN=$TOKEN ESTEIRA_API_SSE_KEEPALIVE=2 start api "$API_PORT"
# The provider stand-in of the messaging test listens on loopback: instances are users' URLs.
ESTEIRA_HTTP_ALLOW=127.0.0.1/32 start processor "$(free_port $((API_PORT + 1)))"
start scheduler "$(free_port $((API_PORT + 2)))"
start exporter "$(free_port $((API_PORT + 3)))"
ESTEIRA_HTTP_ALLOW=127.0.0.1/32 ESTEIRA_INGESTOR_MAIL_INTERVAL=0.5 start ingestor "$(free_port $((API_PORT + 4)))"

# ---- the tests -------------------------------------------------------------------------------
SHOTS="$ESTEIRA_ROOT/Tests/Browser/screenshots"
rm -rf "$SHOTS"
mkdir -p "$SHOTS"
say "browser tests: Chromium $("$CHROMIUM" --version 2>/dev/null | grep -Eo '[0-9][0-9.]+' | head -1), Playwright $PLAYWRIGHT_VERSION"
set +e
ESTEIRA_BROWSER_BASE="http://127.0.0.1:$API_PORT" ESTEIRA_BROWSER_TOKEN="$TOKEN" ESTEIRA_BROWSER_CHROMIUM="$CHROMIUM" \
ESTEIRA_BROWSER_SCREENSHOTS="$SHOTS" ESTEIRA_BROWSER_DATABASE_URL="$ESTEIRA_DATABASE_URL" \
  "$VENV/bin/python" -m pytest "$ESTEIRA_ROOT/Tests/Browser" -p no:cacheprovider -q -rA \
  --junitxml "$WORK/junit.xml" "$@" 2>&1 | tee "$WORK/pytest.log"
rc=${PIPESTATUS[0]}
set -e
# pytest's closing line: "N failed, M passed, K errors in 12.3s".
summary=$(grep -E '[0-9]+ (passed|failed|errors?)' "$WORK/pytest.log" | tail -1 || true)
passed=$(echo "$summary" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+' || echo 0)
failed=$(echo "$summary" | { grep -Eo '[0-9]+ (failed|errors?)' || true; } | awk '{s += $1} END {print s + 0}')
[ "$rc" -eq 0 ] || [ "${failed:-0}" -gt 0 ] || failed=1
if grep -q 'level":"error' "$WORK/api.log"; then
  echo "the api logged errors during the run ($WORK/api.log):"
  grep 'level":"error' "$WORK/api.log" | head -5 | cut -c1-400
fi
echo "browser: ${passed:-0} passed, ${failed:-0} failed (screenshots: Tests/Browser/screenshots/, logs: $WORK)"
exit "$rc"
