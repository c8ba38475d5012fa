#!/usr/bin/env bash
# Builds and runs the AMQP benchmarks: rabbitmq-c from C, the Swift AMQP module, then C again
# (brokers drift, so C runs on both sides of Swift), and prints the Swift/C ratio.
# Usage: ESTEIRA_AMQP_URL=amqp://... MESSAGES=200000 bench/amqp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${ESTEIRA_AMQP_URL:-amqp://guest:guest@127.0.0.1:5680/}"
MESSAGES="${MESSAGES:-200000}"
mkdir -p .build/bench
gcc -O2 -Wall -o .build/bench/amqp_c_bench bench/amqp_c_bench.c $(pkg-config --cflags --libs librabbitmq)
swift build -c release --product AMQPBench >/dev/null

run() { "$@" "$URL" "$MESSAGES" | tee /dev/stderr | grep '^RESULT'; }
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
