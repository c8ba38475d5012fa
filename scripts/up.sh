#!/usr/bin/env bash
# make up: installs what is missing, starts RabbitMQ and PostgreSQL with their data under
# .esteira/, applies migrations, builds and starts every service in Services/, runs a short
# demo and prints the URLs. Running it again while the stack is up changes nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/stack.sh"
cd "$ESTEIRA_ROOT"

STACK="$ESTEIRA_ROOT/.esteira"
mkdir -p "$STACK/logs" "$STACK/run"

# Ports: chosen on the first `make up` (environment overrides), then kept in .esteira/ports.
if [ -f "$STACK/ports" ]; then source "$STACK/ports"; fi
AMQP_PORT=${ESTEIRA_AMQP_PORT:-${AMQP_PORT:-5672}}
RABBIT_MGMT_PORT=${ESTEIRA_RABBIT_MGMT_PORT:-${RABBIT_MGMT_PORT:-15672}}
RABBIT_PROM_PORT=${ESTEIRA_RABBIT_PROM_PORT:-${RABBIT_PROM_PORT:-15692}}
RABBIT_DIST_PORT=${ESTEIRA_RABBIT_DIST_PORT:-${RABBIT_DIST_PORT:-25672}}
PG_PORT=${ESTEIRA_PG_PORT:-${PG_PORT:-5432}}
API_PORT=${ESTEIRA_API_PORT:-${API_PORT:-8080}}
OPS_PORT_BASE=${ESTEIRA_OPS_PORT_BASE:-${OPS_PORT_BASE:-9100}}
NODE=$(rabbit_node_name esteira "$STACK")
# make cluster (ESTEIRA_CLUSTER=1): three RabbitMQ nodes joined in a cluster instead of one,
# on the AMQP, management and Prometheus ports and the two after each, with quorum queues.
CLUSTER=${ESTEIRA_CLUSTER:-${CLUSTER:-0}}
case "$CLUSTER" in 0|1) ;; *) die "ESTEIRA_CLUSTER=$CLUSTER: expected 0 (one RabbitMQ node) or 1 (a cluster of three)" ;; esac
cluster_args() { echo "$STACK esteira $AMQP_PORT $RABBIT_MGMT_PORT $RABBIT_PROM_PORT $RABBIT_DIST_PORT"; }

ensure_packages

# A port is only a conflict when it is not ours already.
ours_running() { [ -f "$STACK/run/$1.pid" ] && kill -0 "$(cat "$STACK/run/$1.pid")" 2>/dev/null; }
pg_running() { [ -e "$STACK/pg" ] && [ -f "$(pg_data_dir "$STACK")/data/postmaster.pid" ]; }
rabbit_running() {
  local pidfile="$STACK/rabbitmq/rabbit.pid"
  [ "$CLUSTER" = 1 ] && pidfile="$STACK/cluster/node1/rabbitmq/rabbit.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}
if [ -f "$STACK/ports" ] && [ "$(sed -n 's/^CLUSTER=//p' "$STACK/ports")" != "$CLUSTER" ] && { [ -n "$(ls "$STACK"/run/*.pid 2>/dev/null)" ] || pg_running; }; then
  die "the stack in .esteira/ runs with ESTEIRA_CLUSTER=$(sed -n 's/^CLUSTER=//p' "$STACK/ports"): make down first (jobs queued in one broker are not moved to the other; make clean starts afresh)"
fi

services=()
for d in Services/*/; do services+=("$(basename "$d")"); done
service_port() { # api listens on the api port; the others serve /healthz and /metrics on OPS_PORT_BASE+n
  local name=$1 i=1 s
  [ "$name" = api ] && { echo "$API_PORT"; return; }
  for s in processor exporter syncer ingestor scheduler; do
    [ "$s" = "$name" ] && { echo $((OPS_PORT_BASE + i)); return; }
    i=$((i + 1))
  done
  echo $((OPS_PORT_BASE + 9))
}

# WHAT|PORT|VARIABLE[|OFFSET[|STEP]] for every port this run would open (the RabbitMQ CLI
# tools use the 10 ports after the distribution port, hence its step of 100).
checks=()
pg_running || checks+=("PostgreSQL|$PG_PORT|ESTEIRA_PG_PORT")
if ! rabbit_running; then
  for i in $([ "$CLUSTER" = 1 ] && echo 0 1 2 || echo 0); do
    checks+=("RabbitMQ (AMQP)|$((AMQP_PORT + i))|ESTEIRA_AMQP_PORT|$i|3"
             "RabbitMQ management|$((RABBIT_MGMT_PORT + i))|ESTEIRA_RABBIT_MGMT_PORT|$i|3"
             "RabbitMQ Prometheus|$((RABBIT_PROM_PORT + i))|ESTEIRA_RABBIT_PROM_PORT|$i|3"
             "RabbitMQ distribution|$((RABBIT_DIST_PORT + 20 * i))|ESTEIRA_RABBIT_DIST_PORT|$((20 * i))|100")
  done
fi
for s in "${services[@]}"; do
  ours_running "$s" && continue
  port=$(service_port "$s")
  if [ "$s" = api ]; then checks+=("api|$port|ESTEIRA_API_PORT")
  else checks+=("$s /healthz|$port|ESTEIRA_OPS_PORT_BASE|$((port - OPS_PORT_BASE))"); fi
done
[ ${#checks[@]} -eq 0 ] || require_free_ports "${checks[@]}"

cat >"$STACK/ports" <<P
AMQP_PORT=$AMQP_PORT
RABBIT_MGMT_PORT=$RABBIT_MGMT_PORT
RABBIT_PROM_PORT=$RABBIT_PROM_PORT
RABBIT_DIST_PORT=$RABBIT_DIST_PORT
PG_PORT=$PG_PORT
API_PORT=$API_PORT
OPS_PORT_BASE=$OPS_PORT_BASE
CLUSTER=$CLUSTER
P

pg_start "$STACK" "$PG_PORT"
if [ "$CLUSTER" = 1 ]; then
  # shellcheck disable=SC2046
  rabbit_cluster_start $(cluster_args)
  # shellcheck disable=SC2046
  AMQP_URLS=$(rabbit_cluster_urls $(cluster_args))
  QUEUE_TYPE=quorum
else
  rabbit_start "$STACK" "$NODE" "$AMQP_PORT" "$RABBIT_MGMT_PORT" "$RABBIT_PROM_PORT" "$RABBIT_DIST_PORT"
  AMQP_URLS="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
  QUEUE_TYPE=classic
fi

# The admin token is made once and kept, so clients configured with it keep working.
ADMIN_TOKEN=""
[ -f "$STACK/env" ] && ADMIN_TOKEN=$(sed -n 's/^ESTEIRA_ADMIN_TOKEN=//p' "$STACK/env")
[ -n "$ADMIN_TOKEN" ] || ADMIN_TOKEN="est_admin_$(openssl rand -hex 24)"
cat >"$STACK/env" <<E
ESTEIRA_AMQP_URL=$AMQP_URLS
ESTEIRA_QUEUE_TYPE=$QUEUE_TYPE
ESTEIRA_DATABASE_URL=postgres://esteira@127.0.0.1:$PG_PORT/esteira
ESTEIRA_API_URL=http://127.0.0.1:$API_PORT
ESTEIRA_ADMIN_TOKEN=$ADMIN_TOKEN
ESTEIRA_RABBITMQ_MANAGEMENT_URL=http://127.0.0.1:$RABBIT_MGMT_PORT
E
chmod 600 "$STACK/env"
set -a; source "$STACK/env"; set +a
export ESTEIRA_MIGRATIONS_DIR="$ESTEIRA_ROOT/migrations"

# A release build by default (what a deployment runs); ESTEIRA_BUILD=debug for a debug one.
CONFIG=${ESTEIRA_BUILD:-release}
case "$CONFIG" in release|debug) ;; *) die "ESTEIRA_BUILD=$CONFIG: expected release or debug" ;; esac
say "building ($CONFIG; the first build takes several minutes)"
swift build -c "$CONFIG" >"$STACK/logs/build.log" 2>&1 || { tail -40 "$STACK/logs/build.log" >&2; die "build failed (log: .esteira/logs/build.log); RabbitMQ and PostgreSQL keep running, make down stops them"; }
BIN=$(swift build -c "$CONFIG" --show-bin-path)

say "applying migrations"
"$BIN/api" migrate || die "migrations failed"

for s in "${services[@]}"; do
  if ours_running "$s"; then say "$s already running (pid $(cat "$STACK/run/$s.pid"))"; continue; fi
  port=$(service_port "$s")
  say "starting $s (port $port)"
  ESTEIRA_HTTP_PORT=$port nohup "$BIN/$s" >>"$STACK/logs/$s.log" 2>&1 </dev/null &
  echo $! >"$STACK/run/$s.pid"
done
for s in "${services[@]}"; do
  port=$(service_port "$s")
  ok=""
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && { ok=1; break; }
    ours_running "$s" || break
    sleep 0.1
  done
  [ -n "$ok" ] || { tail -20 "$STACK/logs/$s.log" >&2; die "$s did not become healthy (log: .esteira/logs/$s.log)"; }
done

bash "$ESTEIRA_ROOT/scripts/demo.sh" || warn "the demo did not finish; see the messages above"

cat <<MSG

Esteira is up.
  api                      $ESTEIRA_API_URL   (OpenAPI: $ESTEIRA_API_URL/openapi.json, health: $ESTEIRA_API_URL/healthz)
  api index (links)        $ESTEIRA_API_URL/   (JSON; a browser is sent to the dashboard)
  dashboard                $ESTEIRA_API_URL/ui/
                           sign in by pasting the admin token: sed -n 's/^ESTEIRA_ADMIN_TOKEN=//p' .esteira/env
  RabbitMQ management UI   $ESTEIRA_RABBITMQ_MANAGEMENT_URL   (guest / guest, from this machine only)
$([ "$CLUSTER" = 1 ] && printf '                           a cluster of three nodes (management also on %s and %s), quorum queues\n' "$((RABBIT_MGMT_PORT + 1))" "$((RABBIT_MGMT_PORT + 2))")
  PostgreSQL               $ESTEIRA_DATABASE_URL
  admin token, URLs        .esteira/env   (source it: set -a; . .esteira/env; set +a)
  logs                     .esteira/logs/
$(for s in "${services[@]}"; do [ "$s" = api ] || printf '  %-24s http://127.0.0.1:%s/healthz and /metrics\n' "$s" "$(service_port "$s")"; done)
Stop it all with: make down
MSG
