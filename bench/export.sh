#!/usr/bin/env bash
# Export benchmark: LEADS leads (default 100,000) spread over 365 days exported by one
# exporter through the api to a PostgREST stand-in writing into a `fichas` table of its own
# database, at each batch size (default 100 and 1000), against one INSERT ... SELECT of the
# same rows into a table of the same shape (the ceiling), measured in the same run.
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under
# .esteira-bench-export/, removed at the end).
# Usage: LEADS=100000 BATCH_SIZES="100 1000" bench/export.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
LEADS="${LEADS:-100000}"
BATCH_SIZES="${BATCH_SIZES:-100 1000}"
bench_servers esteira-bench-export 23100 22832
say "building (release)"
esteira_build api exporter ExportBench
FICHAS_URL="${ESTEIRA_DATABASE_URL%/*}/esteira_fichas"
psql "$ESTEIRA_DATABASE_URL" -qAt -c "DROP DATABASE IF EXISTS esteira_fichas" -c "CREATE DATABASE esteira_fichas" >/dev/null

TOKEN="est_admin_$(openssl rand -hex 24)"
PORT=$(free_port 19600)
ESTEIRA_HTTP_PORT=$PORT ESTEIRA_ADMIN_TOKEN=$TOKEN ESTEIRA_LOG_LEVEL=warning ESTEIRA_API_RATE=0 "$BIN/api" serve >"$STACK/api.log" 2>&1 &
pids+=($!)
wait_for_port "$PORT" 30 || die "the api did not start (log: $STACK/api.log)"
ESTEIRA_HTTP_PORT=$(free_port 19610) ESTEIRA_LOG_LEVEL=warning "$BIN/exporter" run >"$STACK/exporter.log" 2>&1 &
pids+=($!)
sleep 1

say "exporting $LEADS leads; batch sizes: $BATCH_SIZES"
# shellcheck disable=SC2086
"$BIN/ExportBench" "$ESTEIRA_DATABASE_URL" "$FICHAS_URL" "http://127.0.0.1:$PORT" "$TOKEN" "$LEADS" $BATCH_SIZES
