#!/usr/bin/env bash
# Email: STORES stores (default 100) with MESSAGES messages each (default 500) waiting in a
# Dovecot of the benchmark's own, answered end to end (IMAP fetch -> store -> classify ->
# order lookup in a Shopify stand-in -> SMTP to a counting sink) by one ingestor and 2
# processors, with the rule classifier and no added latency; against the noop jobs/s of the
# same 2 processors measured first in the same run (bench/jobs.sh's run, JOBS noop jobs).
# Goal: 500,000 emails an hour. Starts a PostgreSQL, a RabbitMQ, a Dovecot and the SMTP sink
# of its own on free ports (data under .esteira-bench-email/, removed at the end).
# Usage: STORES=100 MESSAGES=500 JOBS=100000 bench/email.sh (BENCH_PG_STATEMENTS=1: and
# PostgreSQL's busiest statements during the emails, bench/lib.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
STORES="${STORES:-100}"
MESSAGES="${MESSAGES:-500}"
JOBS="${JOBS:-100000}"
bench_servers esteira-bench-email 23500 23232
mail_servers_start "$STACK"
trap 'dovecot_stop "$STACK/dovecot" || true; bench_cleanup' EXIT
SMTP_PORT=$(free_port 19925)
"$ESTEIRA_TEST_SMTP_PYTHON" "$ESTEIRA_TEST_SMTP_SINK" --port "$SMTP_PORT" --dir "$STACK/smtp" --count-only >"$STACK/smtp.log" 2>&1 &
pids+=($!)
say "building (release)"
esteira_build api ingestor JobsBench EmailBench
# Dovecot and the sink are on loopback: the stores' servers are their owners' choice, checked by the policy.
export ESTEIRA_HTTP_ALLOW=127.0.0.1/32,127.0.0.2/32

say "starting 2 processors (--consumers 2 --prefetch 500)"
esteira_processors_start "$STACK" 2 500
say "baseline: $JOBS noop jobs in batches of 1000 from 4 enqueuers"
noop=$(result_field "$(esteira_jobs_bench "$JOBS" 1000 4)" rate)
kill "${PROCESSOR_PIDS[@]}"
wait "${PROCESSOR_PIDS[@]}" 2>/dev/null || true

TOKEN="est_admin_$(openssl rand -hex 24)"
PORT=$(free_port 19900)
ESTEIRA_HTTP_PORT=$PORT ESTEIRA_ADMIN_TOKEN=$TOKEN ESTEIRA_LOG_LEVEL=warning ESTEIRA_API_RATE=0 "$BIN/api" serve >"$STACK/api.log" 2>&1 &
pids+=($!)
wait_for_port "$PORT" 30 || die "the api did not start (log: $STACK/api.log)"

bench_pg_statements_reset
out=$("$BIN/EmailBench" "http://127.0.0.1:$PORT" "$TOKEN" "$BIN" "$ESTEIRA_DATABASE_URL" "$STORES" "$MESSAGES" 2 "$SMTP_PORT" \
  "$ESTEIRA_TEST_IMAP_PORT" "$ESTEIRA_TEST_IMAP_PASSWORD")
echo "$out"
bench_pg_statements
rate=$(result_field "$(grep '^RESULT' <<<"$out")" rate)
sleep 0.2 # the sink writes its counters every 50 ms
alone=$(result_field "$(grep '^RESULT' <<<"$out")" smtp_alone_sends)
awk -v r="$rate" -v n="$noop" -v s="$(( $(cat "$STACK/smtp/count" 2>/dev/null || echo 0) - alone ))" -v c="$(cat "$STACK/smtp/sessions" 2>/dev/null || echo 0)" \
  'BEGIN { printf "emails %.1f/s; noop jobs %d/s in the same run; ratio %.2f; replies the SMTP sink took: %d in %d SMTP sessions\n", r, n, r / n, s, c }'
