#!/usr/bin/env bash
# Builds and runs the AMQP benchmarks: rabbitmq-c from C, the Swift AMQP module, then C again
# (brokers drift, so C runs on both sides of Swift), and prints the Swift/C ratio.
# Runs on its own: without ESTEIRA_AMQP_URL it starts a RabbitMQ of its own on free ports
# (data under .esteira-bench/amqp/, stopped and removed on exit), so that figures are taken on
# an idle broker and never on a `make up` stack; with ESTEIRA_AMQP_URL it uses that broker.
# Usage: [ESTEIRA_AMQP_URL=amqp://...] MESSAGES=200000 bench/amqp.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
cd "$ESTEIRA_ROOT"
MESSAGES="${MESSAGES:-200000}"
if [ -z "${ESTEIRA_AMQP_URL:-}" ]; then
  ensure_packages
  STACK="$ESTEIRA_ROOT/.esteira-bench/amqp"
  NODE=$(rabbit_node_name esteira-bench-amqp "$STACK")
  trap 'rc=$?; rabbit_stop "$STACK" "$NODE" || true; rm -rf "$STACK"; rmdir "$ESTEIRA_ROOT/.esteira-bench" 2>/dev/null || true; exit $rc' EXIT INT TERM
  rabbit_stop "$STACK" "$NODE" || true; rm -rf "$STACK"; mkdir -p "$STACK"
  AMQP_PORT=$(free_port 23900); MGMT_PORT=$(free_port 29900); PROM_PORT=$(free_port $((MGMT_PORT + 20)))
  DIST_PORT=$(free_port $((AMQP_PORT + 1000)))
  rabbit_start "$STACK" "$NODE" "$AMQP_PORT" "$MGMT_PORT" "$PROM_PORT" "$DIST_PORT"
  ESTEIRA_AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
else
  # amqp://user:pass@host:port/vhost -> host, port (5672 when left out)
  hostport=$(sed -E 's#^amqps?://([^@/]*@)?([^/?]*).*#\2#' <<<"$ESTEIRA_AMQP_URL")
  host=${hostport%%:*}; port=${hostport##*:}; [ "$port" != "$hostport" ] || port=5672
  (exec 3<>"/dev/tcp/${host:-127.0.0.1}/$port") 2>/dev/null \
    || die "no broker answers at ${host:-127.0.0.1}:$port (ESTEIRA_AMQP_URL); unset ESTEIRA_AMQP_URL to let the benchmark start its own RabbitMQ"
fi
URL="$ESTEIRA_AMQP_URL"
say "building (gcc: bench/amqp_c_bench.c; swift release: AMQPBench)"
mkdir -p .build/bench
gcc -O2 -Wall -o .build/bench/amqp_c_bench bench/amqp_c_bench.c $(pkg-config --cflags --libs librabbitmq)
swift build -c release --product AMQPBench >/dev/null

# Shows each run's output and keeps its RESULT line. (Not `tee /dev/stderr`: with stderr
# redirected to a file, tee reopens and truncates that file.)
run() { local out; out=$("$@" "$URL" "$MESSAGES"); echo "$out" >&2; grep '^RESULT' <<<"$out"; }
c1=$(run .build/bench/amqp_c_bench)
swift=$(run .build/release/AMQPBench)
c2=$(run .build/bench/amqp_c_bench)

field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1"; }
echo
printf '%-9s %12s %12s %12s\n' "" publish/s consume/s combined/s
printf '%-9s %12s %12s %12s\n' "C #1" "$(field "$c1" publish)" "$(field "$c1" consume)" "$(field "$c1" combined)"
printf '%-9s %12s %12s %12s\n' "Swift" "$(field "$swift" publish)" "$(field "$swift" consume)" "$(field "$swift" combined)"
printf '%-9s %12s %12s %12s\n' "C #2" "$(field "$c2" publish)" "$(field "$c2" consume)" "$(field "$c2" combined)"
for kind in publish consume combined; do
  awk -v k="$kind" -v s="$(field "$swift" "$kind")" -v a="$(field "$c1" "$kind")" -v b="$(field "$c2" "$kind")" \
    'BEGIN { c = (a + b) / 2; printf "Swift/C %-8s %5.1f%%  (Swift %d vs mean C %d)\n", k, 100 * s / c, s, c }'
done
