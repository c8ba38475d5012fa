#!/usr/bin/env bash
# Messaging: a campaign to CONTACTS contacts (default 100,000) sent by 2 processors to a
# provider stand-in that answers at once, against the noop jobs/s of the same 2 processors
# measured first in the same run (bench/jobs.sh's run, JOBS noop jobs); then the change →
# feed event latency with CLIENTS (default 1,000) feed clients following one contact on one api.
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under
# .esteira-bench-messaging/, removed at the end).
# Prints what a noop job and a send cost each program in CPU (bench/cpu.py).
# Usage: CONTACTS=100000 JOBS=100000 CLIENTS=1000 bench/messaging.sh (BENCH_PG_STATEMENTS=1:
# and PostgreSQL's busiest statements during the campaign, bench/lib.sh; CLIENTS=0: no feed)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
CONTACTS="${CONTACTS:-100000}"
JOBS="${JOBS:-100000}"
CLIENTS="${CLIENTS:-1000}"
bench_servers esteira-bench-messaging 23400 23132
say "building (release)"
esteira_build api JobsBench MessagingBench
# The provider stand-in listens on 127.0.0.2: instances are users' URLs, checked by the policy.
export ESTEIRA_HTTP_ALLOW=127.0.0.2/32

say "starting 2 processors (--consumers 2 --prefetch 500)"
esteira_processors_start "$STACK" 2 500

# Every program's CPU, sampled throughout (bench/cpu.py): what a noop job and a send cost.
python3 bench/cpu.py sample "$STACK/cpu.jsonl" &
pids+=($!)
until [ -s "$STACK/cpu.jsonl" ]; do sleep 0.1; done

say "baseline: $JOBS noop jobs in batches of 1000 from 4 enqueuers"
noop_start=$(date +%s.%N)
noop=$(result_field "$(esteira_jobs_bench "$JOBS" 1000 4)" rate)
noop_end=$(date +%s.%N)

TOKEN="est_admin_$(openssl rand -hex 24)"
PORT=$(free_port 19800)
ESTEIRA_HTTP_PORT=$PORT ESTEIRA_ADMIN_TOKEN=$TOKEN ESTEIRA_LOG_LEVEL=warning ESTEIRA_API_RATE=0 ESTEIRA_API_MAX_STREAMS=0 \
  "$BIN/api" serve >"$STACK/api.log" 2>&1 &
pids+=($!)
wait_for_port "$PORT" 30 || die "the api did not start (log: $STACK/api.log)"

say "a campaign to $CONTACTS contacts"
bench_pg_statements_reset
out=$("$BIN/MessagingBench" "http://127.0.0.1:$PORT" "$TOKEN" "$CONTACTS")
echo "$out"
bench_pg_statements
rate=$(result_field "$(grep '^RESULT' <<<"$out")" rate)
awk -v r="$rate" -v n="$noop" 'BEGIN { printf "messages sent %d/s; noop jobs %d/s in the same run; ratio %.2f (goal 0.50)\n", r, n, r / n }'
read -r _ window_start window_end <<<"$(grep '^WINDOW' <<<"$out" | tr '=' ' ' | awk '{ print $1, $3, $5 }')"
sleep 0.5  # a snapshot after the campaign's end
python3 bench/cpu.py report "$STACK/cpu.jsonl" "$noop_start" "$noop_end" "$JOBS" "a noop job (enqueue to end; JobsBench enqueues)"
python3 bench/cpu.py report "$STACK/cpu.jsonl" "$window_start" "$window_end" "$CONTACTS" "a send (campaign request to end; MessagingBench is the provider stand-in)"

[ "$CLIENTS" -gt 0 ] || exit 0
say "feed latency: $CLIENTS clients following one contact"
python3 bench/feed_latency.py "http://127.0.0.1:$PORT" "$TOKEN" "$ESTEIRA_DATABASE_URL" "$CLIENTS" 100 10
