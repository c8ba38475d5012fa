#!/usr/bin/env bash
# The soak: SOAK_SECONDS (default 600) of mixed load (noop and http jobs through the api) at
# about half the capacity measured first, with a random fault every FAULT_EVERY seconds
# (default 60): kill -9 of a processor, the api or the scheduler, SIGTERM of a processor,
# a RabbitMQ or a PostgreSQL restart. Reports throughput and latency over time, jobs lost
# (must be 0) and the memory of every service process (must stay flat); exits 1 otherwise.
# Starts a PostgreSQL and a RabbitMQ of its own (data under .esteira-soak/, removed at the
# end) and release builds of the services. Not part of `make test`.
# Usage: make soak   |   SOAK_SECONDS=120 SOAK_RATE=200 SOAK_SEED=7 bench/soak.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
bench_servers esteira-soak 24800 24532

say "building the services (release)"
esteira_build api scheduler

# Keep the logs of the run beside the report (the stack folder goes at the end).
mkdir -p .build/soak
rm -rf .build/soak/logs
ESTEIRA_ROOT="$ESTEIRA_ROOT" ESTEIRA_BIN="$BIN" SOAK_STACK="$STACK" SOAK_NODE="$NODE" \
  python3 bench/soak.py 2>&1 | tee .build/soak/report.txt
rc=${PIPESTATUS[0]}
cp -r "$STACK/logs" .build/soak/logs 2>/dev/null || true
cp "$STACK/memory.tsv" .build/soak/ 2>/dev/null || true
say "report: .build/soak/report.txt; service logs: .build/soak/logs/"
exit "$rc"
