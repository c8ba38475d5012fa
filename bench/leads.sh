#!/usr/bin/env bash
# Lead migration benchmark: 1,000,000 leads moved by a lead migration (2 processors) at
# several batch sizes, against one plain UPDATE of as many leads in the same run.
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under .esteira-bench/,
# removed at the end) unless ESTEIRA_DATABASE_URL and ESTEIRA_AMQP_URL are given.
# Usage: LEADS=1000000 BATCH_SIZES="100 1000 10000" bench/leads.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
cd "$ESTEIRA_ROOT"
LEADS="${LEADS:-1000000}"
BATCH_SIZES="${BATCH_SIZES:-100 1000 10000}"
STACK="$ESTEIRA_ROOT/.esteira-bench"
NODE=$(rabbit_node_name esteira-bench "$STACK")
pids=()
own_servers=""

cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -n "$own_servers" ]; then
    servers_stop "$STACK" "$NODE"
  fi
  exit $rc
}
trap cleanup EXIT INT TERM

if [ -z "${ESTEIRA_DATABASE_URL:-}" ] || [ -z "${ESTEIRA_AMQP_URL:-}" ]; then
  own_servers=1
  ensure_packages
  servers_start "$STACK" "$NODE" 21700 21432
fi
mkdir -p "$STACK"

say "building (release)"
swift build -c release --product processor >/dev/null
swift build -c release --product LeadsBench >/dev/null
BIN=$(swift build -c release --show-bin-path)
export ESTEIRA_MIGRATIONS_DIR="$ESTEIRA_ROOT/migrations"
"$BIN/processor" migrate >/dev/null

say "starting 2 processors"
for i in 1 2; do
  ESTEIRA_HTTP_PORT=$(free_port $((19100 + i * 10))) ESTEIRA_LOG_LEVEL=warning \
    "$BIN/processor" run >"$STACK/processor-$i.log" 2>&1 &
  pids+=($!)
done
sleep 2

say "moving $LEADS leads per run; batch sizes: $BATCH_SIZES"
# shellcheck disable=SC2086
"$BIN/LeadsBench" "$ESTEIRA_DATABASE_URL" "$ESTEIRA_AMQP_URL" "$LEADS" $BATCH_SIZES
