#!/usr/bin/env bash
# The dashboard's pages with JOBS jobs in the table (default 1,000,000: 90% completed, 5%
# dead with their dead letters, 3% queued, 1% retrying, 1% running; one event each; a day of
# per-minute metrics; a tenth of the jobs a user's): each page's time to the last byte over
# loopback (REQUESTS sequential requests after one to warm up; p50, p95, max), its ratio to
# the api's own JSON job listing (`GET /v1/jobs?limit=50`, the baseline, measured in the
# same run), and whether its p95 is under the budget of BUDGET_MS (default 100).
# The overview's counts by status are taken in the background (a page never waits for them):
# how long one count of everyone's jobs and one of the user's took is printed too.
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under
# .esteira-bench-dashboard/, removed at the end).
# Usage: JOBS=1000000 REQUESTS=30 BUDGET_MS=100 bench/dashboard.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
JOBS="${JOBS:-1000000}"
REQUESTS="${REQUESTS:-30}"
BUDGET_MS="${BUDGET_MS:-100}"
bench_servers esteira-bench-dashboard 22900 22632
read -r _ MGMT_PORT _ _ _ <<<"$ESTEIRA_SERVERS_PORTS"
say "building (release)"
esteira_build api

TOKEN="est_admin_$(openssl rand -hex 24)"
PORT=$(free_port 19500)
BASE="http://127.0.0.1:$PORT"
ESTEIRA_HTTP_PORT=$PORT ESTEIRA_ADMIN_TOKEN=$TOKEN ESTEIRA_LOG_LEVEL=warning ESTEIRA_API_RATE=0 \
  ESTEIRA_RABBITMQ_MANAGEMENT_URL="http://guest:guest@127.0.0.1:$MGMT_PORT" "$BIN/api" serve >"$STACK/api.log" 2>&1 &
pids+=($!)
wait_for_port "$PORT" 30 || die "the api did not start (log: $STACK/api.log)"
USER_TOKEN=$(curl -fsS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "bench-user"}' "$BASE/v1/tokens" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
[ -n "$USER_TOKEN" ] || die "no user token"

say "writing $JOBS jobs, their events, dead letters and a day of metrics"
started=$(date +%s)
psql "$ESTEIRA_DATABASE_URL" -qAt -v ON_ERROR_STOP=1 -v jobs="$JOBS" >/dev/null <<'SQL'
CREATE TEMP TABLE who AS
  SELECT (SELECT id FROM api_principals WHERE name = 'admin') AS admin, (SELECT id FROM api_principals WHERE name = 'bench-user') AS usr;
INSERT INTO jobs (id, kind, status, payload, attempts, max_attempts, owner_id, created_at, updated_at, published_at,
                  started_at, first_started_at, finished_at, last_error, last_error_class)
SELECT gen_random_uuid(), (ARRAY['noop', 'http', 'noop'])[1 + i % 3], s.status,
       jsonb_build_object('customer', jsonb_build_object('id', i % 5000), 'note', repeat('x', 100)),
       CASE WHEN s.status = 'queued' THEN 0 ELSE 1 END, 5,
       CASE WHEN i % 10 = 0 THEN who.usr ELSE who.admin END,
       t, t, t, t, t, CASE WHEN s.status IN ('completed', 'dead') THEN t + interval '1 second' END,
       CASE WHEN s.status = 'dead' THEN 'HTTP 400 from the target' END,
       CASE WHEN s.status = 'dead' THEN 'permanent' END
  FROM generate_series(1, :jobs) i, who,
       LATERAL (SELECT now() - i * interval '500 milliseconds' AS t) tt,
       LATERAL (SELECT CASE WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 95 THEN 'dead' WHEN i % 100 < 98 THEN 'queued'
                            WHEN i % 100 < 99 THEN 'retrying' ELSE 'running' END AS status) s;
INSERT INTO job_events (job_id, kind, owner_id, status, attempt, at)
SELECT id, kind, owner_id, status, attempts, updated_at FROM jobs;
INSERT INTO dead_letters (job_id, kind, owner_id, reason, error_class, attempts, dead_at)
SELECT id, kind, owner_id, last_error, 'permanent', 1, finished_at FROM jobs WHERE status = 'dead';
INSERT INTO queue_metrics (kind, minute, enqueued, started, completed, failed, retried, dead, wait_p50, wait_p95, run_p50, run_p95)
SELECT k, date_trunc('minute', now()) - m * interval '1 minute', 120, 120, 110, 10, 5, 5, 0.01, 0.05, 0.1, 0.4
  FROM unnest(ARRAY['noop', 'http']) k, generate_series(1, 1440) m;
INSERT INTO schedules (id, name, cron, time_zone, kind, payload, enabled, owner_id, next_run_at)
SELECT gen_random_uuid(), 'schedule-' || i, '*/5 * * * *', 'UTC', 'noop', '{}', true, who.admin, now() + interval '5 minutes'
  FROM generate_series(1, 50) i, who;
VACUUM ANALYZE;
SQL
say "written in $(( $(date +%s) - started )) s"

# Sessions, the way a browser gets them.
signin() {  # signin TOKEN: prints the session cookie
  curl -fsS -o /dev/null -D - --data-urlencode "token=$1" "$BASE/ui/sign-in" | sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\);.*/\1/p'
}
ADMIN_COOKIE=$(signin "$TOKEN")
USER_COOKIE=$(signin "$USER_TOKEN")
JOB=$(psql "$ESTEIRA_DATABASE_URL" -qAt -c "SELECT id FROM jobs WHERE status = 'dead' ORDER BY created_at DESC LIMIT 1")
USER_JOB=$(psql "$ESTEIRA_DATABASE_URL" -qAt -c "SELECT id FROM jobs WHERE owner_id = (SELECT id FROM api_principals WHERE name = 'bench-user') ORDER BY created_at DESC LIMIT 1")

# measure LABEL SLEEP CURL-ARGS...: REQUESTS timed requests (after one to warm up), each must
# answer 200; prints "p50 p95 max" in ms.
measure() {
  local label=$1 pause=$2 i code t times=()
  shift 2
  curl -s -o /dev/null "$@" >/dev/null
  for ((i = 0; i < REQUESTS; i++)); do
    [ "$pause" = 0 ] || sleep "$pause"
    read -r code t < <(curl -s -o /dev/null -w '%{http_code} %{time_total}\n' "$@")
    [ "$code" = 200 ] || die "$label answered $code"
    times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v n="$REQUESTS" '
    { v[NR] = $1 * 1000 }
    END { p50 = v[int((n + 1) * 0.50)]; p95 = v[int(n * 0.95) > 0 ? int(n * 0.95) : 1]; printf "%.1f %.1f %.1f\n", p50, p95, v[n] }'
}

say "$REQUESTS requests per page"
baseline=$(measure baseline 0 -H "Authorization: Bearer $TOKEN" "$BASE/v1/jobs?limit=50")
read -r B50 B95 BMAX <<<"$baseline"
printf '%-44s %8s %8s %8s %10s %s\n' page p50_ms p95_ms max_ms ratio_p95 budget
printf '%-44s %8s %8s %8s %10s %s\n' "GET /v1/jobs?limit=50 (baseline)" "$B50" "$B95" "$BMAX" 1.00 -
worst=0
page() {  # page LABEL COOKIE PATH [PAUSE]
  local r p50 p95 max ratio verdict
  r=$(measure "$1" "${4:-0}" -H "Cookie: $2" -H 'Accept: text/html' "$BASE$3")
  read -r p50 p95 max <<<"$r"
  ratio=$(awk -v a="$p95" -v b="$B95" 'BEGIN { printf "%.2f", a / b }')
  verdict=$(awk -v a="$p95" -v b="$BUDGET_MS" 'BEGIN { print (a < b ? "under" : "OVER") }')
  [ "$verdict" = under ] || worst=1
  printf '%-44s %8s %8s %8s %10s %s\n' "$1" "$p50" "$p95" "$max" "$ratio" "$verdict ${BUDGET_MS} ms"
}
page "overview (admin)" "$ADMIN_COOKIE" /ui/
page "overview (user)" "$USER_COOKIE" /ui/
page "queues" "$ADMIN_COOKIE" /ui/queues
page "jobs" "$ADMIN_COOKIE" /ui/jobs
page "jobs (user)" "$USER_COOKIE" /ui/jobs
page "jobs, kind + status" "$ADMIN_COOKIE" "/ui/jobs?kind=noop&status=dead"
page "jobs, created in a window" "$ADMIN_COOKIE" "/ui/jobs?created_after=$(date -u -d '-2 hours' +%Y-%m-%dT%H:%M)&created_before=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M)"
page "jobs, payload search (10,000-job window)" "$ADMIN_COOKIE" "/ui/jobs?q=payload.customer.id%3D42"
page "job" "$ADMIN_COOKIE" "/ui/jobs/$JOB"
page "job (user)" "$USER_COOKIE" "/ui/jobs/$USER_JOB"
page "dead letters" "$ADMIN_COOKIE" /ui/dead-letters
page "dead letters (user)" "$USER_COOKIE" /ui/dead-letters
page "dead letters, kind" "$ADMIN_COOKIE" "/ui/dead-letters?kind=http"
page "schedules" "$ADMIN_COOKIE" /ui/schedules
page "lead migrations" "$ADMIN_COOKIE" /ui/lead-migrations
page "tokens" "$ADMIN_COOKIE" /ui/tokens
counted() {  # counted COOKIE: how long the last background count of that session's scope took
  curl -s -H "Cookie: $1" "$BASE/ui/" | grep -o 'Counted at .*</time> (in [^)]*)' | sed 's/.*(in \([^)]*\))/\1/'
}
echo "background count by status: everyone's jobs $(counted "$ADMIN_COOKIE"), the user's $(counted "$USER_COOKIE")"
echo "RESULT jobs=$JOBS requests=$REQUESTS baseline_p95_ms=$B95 all_under_budget=$([ "$worst" = 0 ] && echo yes || echo no)"
