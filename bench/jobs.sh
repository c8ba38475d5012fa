#!/usr/bin/env bash
# Jobs end to end: JOBS noop jobs enqueued in batches of BATCH, run by 2 processors, state in
# PostgreSQL; prints jobs/s, enqueue→start p50/p99, and the ratio to the raw broker ceiling
# (bench/amqp_c_bench.c publishing and consuming as many persistent messages with confirms)
# measured in the same run on the same broker.
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under .esteira-bench/,
# removed at the end).
# Usage: JOBS=200000 BATCH=1000 ENQUEUERS=4 bench/jobs.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
JOBS="${JOBS:-200000}"
BATCH="${BATCH:-1000}"
ENQUEUERS="${ENQUEUERS:-4}"
CONSUMERS="${CONSUMERS:-2}"
PREFETCH="${PREFETCH:-500}"
bench_servers esteira-bench-jobs 21800 21532

say "building (release)"
mkdir -p .build/bench
gcc -O2 -Wall -o .build/bench/amqp_c_bench bench/amqp_c_bench.c $(pkg-config --cflags --libs librabbitmq)
esteira_build

say "the broker ceiling: rabbitmq-c from C, $JOBS persistent messages with confirms"
ceiling=$(.build/bench/amqp_c_bench "$ESTEIRA_AMQP_URL" "$JOBS" | tee -a /dev/stderr | sed -n 's/.* combined=\([0-9]*\).*/\1/p')

say "starting 2 processors (--consumers $CONSUMERS --prefetch $PREFETCH)"
esteira_processors_start "$STACK" "$CONSUMERS" "$PREFETCH"

say "$JOBS noop jobs in batches of $BATCH from $ENQUEUERS enqueuers at once"
result=$(esteira_jobs_bench "$JOBS" "$BATCH" "$ENQUEUERS")
rate=$(result_field "$result" rate)
echo
awk -v r="$rate" -v c="$ceiling" 'BEGIN { printf "jobs end to end %d/s; broker ceiling (C publish+consume) %d msg/s; ratio %.2f (target 0.50)\n", r, c, r / c }'
