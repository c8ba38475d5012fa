#!/usr/bin/env bash
# Store-sync benchmark: STORES stores (default 200), three months each, on Shopify and
# Klaviyo stand-ins taking PAGE_MS (default 20) per page, synced by SYNCERS (default 3)
# syncers through the api: total time against the bound of the cap of 3 concurrent syncs,
# and the api's cache-hit latency with 200 requests at once.
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under
# .esteira-bench-sync/, removed at the end).
# Usage: STORES=200 PAGE_MS=20 SYNCERS=3 bench/sync.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
STORES="${STORES:-200}"
PAGE_MS="${PAGE_MS:-20}"
SYNCERS="${SYNCERS:-3}"
bench_servers esteira-bench-sync 23300 23032
say "building (release)"
esteira_build api syncer SyncBench

TOKEN="est_admin_$(openssl rand -hex 24)"
PORT=$(free_port 19700)
ESTEIRA_HTTP_PORT=$PORT ESTEIRA_ADMIN_TOKEN=$TOKEN ESTEIRA_LOG_LEVEL=warning ESTEIRA_API_RATE=0 "$BIN/api" serve >"$STACK/api.log" 2>&1 &
pids+=($!)
wait_for_port "$PORT" 30 || die "the api did not start (log: $STACK/api.log)"

say "syncing $STORES stores"
"$BIN/SyncBench" "http://127.0.0.1:$PORT" "$TOKEN" "$BIN" "$STORES" "$PAGE_MS" "$SYNCERS"
