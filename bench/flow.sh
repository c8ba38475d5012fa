#!/usr/bin/env bash
# Flow control, measured against a plain kind in the same run on the same servers:
#  1. JOBS noop jobs of kinds with `unique`, with a global concurrency limit too high to bind,
#     with a per-key limit of 1 on keys all distinct (never binds) and with a rate limiter
#     too fast to bind (2 processors), each between two runs of a
#     plain kind: each kind's jobs/s and its ratio to the mean of the plain runs beside it.
#  2. A global limit of 3 over 4 processors: LIMITED jobs of SLEEP_MS each; the most running
#     at once (sampled every 10 ms) and the throughput against 3 / job duration.
#  3. A rate limiter of RATE jobs/s: how many jobs start a second over WINDOW seconds.
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under .esteira-bench-flow/,
# removed at the end).
# Usage: JOBS=50000 LIMITED=150 SLEEP_MS=500 RATE=50 WINDOW=60 bench/flow.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
JOBS="${JOBS:-50000}"
BATCH="${BATCH:-1000}"
LIMITED="${LIMITED:-150}"
SLEEP_MS="${SLEEP_MS:-500}"
RATE="${RATE:-50}"
WINDOW="${WINDOW:-60}"
bench_servers esteira-bench-flow 21900 21632

export ESTEIRA_KINDS_FILE="$STACK/kinds.yaml"
cat >"$ESTEIRA_KINDS_FILE" <<YAML
limiters:
  wide: { rate: 100000, burst: 1000000 }
  metered: { rate: $RATE, burst: 1 }
kinds:
  plain: { handler: noop, concurrency: 256 }
  unique: { handler: noop, concurrency: 256, unique: { keys: [i] } }
  capped: { handler: noop, concurrency: 256, globalConcurrency: 10000 }
  keyed: { handler: noop, concurrency: 256, concurrencyKey: i, keyConcurrency: 1 }
  limited: { handler: noop, concurrency: 256, limiter: wide }
  three: { handler: noop, globalConcurrency: 3, heartbeatTimeout: 60 }
  metered: { handler: noop, limiter: metered }
YAML

say "building (release)"
esteira_build processor scheduler JobsBench

say "starting 2 processors and a scheduler (the relay publishes jobs held back until their time)"
esteira_processors_start "$STACK" 2 500
ESTEIRA_HTTP_PORT=$(free_port 19400) ESTEIRA_LOG_LEVEL=warning "$BIN/scheduler" run >"$STACK/scheduler.log" 2>&1 &
pids+=($!)

run() { # KIND [JOBS]: prints the RESULT line of JobsBench for JOBS jobs of KIND
  BENCH_KIND=$1 esteira_jobs_bench "${2:-$JOBS}" "$BATCH" 4
}

declare -A rate
say "$JOBS jobs of kind plain"
plains=("$(result_field "$(run plain)" rate)")
for kind in unique capped keyed limited; do
  say "$JOBS jobs of kind $kind"
  rate[$kind]=$(result_field "$(run "$kind")" rate)
  say "$JOBS jobs of kind plain"
  plains+=("$(result_field "$(run plain)" rate)")
done

say "a global limit of 3 over 4 processors: $LIMITED jobs of $SLEEP_MS ms"
esteira_processors_start "$STACK" 2 500 2
three=$(BENCH_KIND=three BENCH_SAMPLE=1 BENCH_PAYLOAD="\"sleep_ms\": $SLEEP_MS" esteira_jobs_bench "$LIMITED" 100 1)

say "a rate limiter of $RATE jobs/s: $((RATE * (WINDOW + 10))) jobs, counted over $WINDOW s"
metered=$(BENCH_KIND=metered BENCH_WINDOW="$WINDOW" esteira_jobs_bench $((RATE * (WINDOW + 10))) 1000 1)

echo
echo "plain kind: ${plains[*]} jobs/s"
i=0
for kind in unique capped keyed limited; do
  awk -v k="$kind" -v r="${rate[$kind]}" -v a="${plains[$i]}" -v b="${plains[$((i + 1))]}" \
    'BEGIN { p = (a + b) / 2; printf "%-8s %6d jobs/s; plain beside it %d; ratio %.2f (target 0.80)\n", k, r, p, r / p }'
  i=$((i + 1))
done
awk -v peak="$(result_field "$three" peak_running)" -v n="$LIMITED" -v s="$(result_field "$three" seconds)" -v ms="$SLEEP_MS" \
  'BEGIN { r = n / s; e = 3000 / ms; printf "global limit 3 over 4 processors: peak running %d (target exactly 3); %.2f jobs/s vs 3 / %d ms = %.2f: ratio %.2f (target 0.90-1.10)\n", peak, r, ms, e, r / e }'
awk -v w="$(result_field "$metered" window_rate)" -v r="$RATE" -v s="$WINDOW" \
  'BEGIN { printf "rate limiter of %d jobs/s: %.2f jobs/s over %d s; ratio %.3f (target 0.95-1.05)\n", r, w, s, w / r }'
