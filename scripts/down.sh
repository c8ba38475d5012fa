#!/usr/bin/env bash
# make down: stops the services (SIGTERM, then SIGKILL after a grace period), RabbitMQ and
# PostgreSQL started by make up. Data under .esteira/ is kept; `make clean` removes it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
STACK="${ESTEIRA_STACK_DIR:-$ESTEIRA_ROOT/.esteira}"
[ -d "$STACK" ] || { say "nothing to stop ($STACK does not exist)"; exit 0; }

stop_pid() { # NAME PIDFILE
  local pid; pid=$(cat "$2" 2>/dev/null) || return 0
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { warn "$1 did not exit in 15 s; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$2"
}
for f in "$STACK"/run/*.pid; do [ -e "$f" ] && stop_pid "$(basename "$f" .pid)" "$f"; done
rabbit_stop "$STACK" "$(rabbit_node_name esteira "$STACK")"
if [ -d "$STACK/cluster" ]; then # make cluster's three nodes
  # shellcheck disable=SC1091
  source "$STACK/ports"
  rabbit_cluster_stop "$STACK" esteira "$AMQP_PORT" "$RABBIT_MGMT_PORT" "$RABBIT_PROM_PORT" "$RABBIT_DIST_PORT"
fi
pg_stop "$STACK"
say "stopped"
