#!/usr/bin/env bash
# What replication costs: `make bench-jobs`' workload (JOBS noop jobs in batches of BATCH from
# ENQUEUERS enqueuers, 2 processors) against one RabbitMQ node with classic queues, then
# against a cluster of three nodes on this machine with quorum queues, in the same run on the
# same PostgreSQL (a fresh database for each); then once more on the cluster with kill -9 of
# the node every process connects to first, KILL_AFTER seconds into the run. Prints each
# rate and enqueue->start p99, and the cluster's rate as a ratio of the one node's.
# Usage: JOBS=200000 BATCH=1000 ENQUEUERS=4 KILL_AFTER=8 bench/cluster.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
JOBS="${JOBS:-200000}"
BATCH="${BATCH:-1000}"
ENQUEUERS="${ENQUEUERS:-4}"
KILL_AFTER="${KILL_AFTER:-8}"
bench_servers esteira-bench-cluster 21900 21632
CLUSTER_ARGS=("$STACK" esteira-bench-cl "$(free_port 22000)" "$(free_port 22100)" "$(free_port 22200)" "$(free_port 22300)")
trap 'rc=$?; rabbit_cluster_stop "${CLUSTER_ARGS[@]}" >/dev/null 2>&1; (exit $rc); bench_cleanup' EXIT
PG_URL=$ESTEIRA_DATABASE_URL

say "building (release)"
esteira_build

# fresh_database NAME: a new database on the benchmark's PostgreSQL, migrated, in ESTEIRA_DATABASE_URL.
fresh_database() {
  psql "$PG_URL" -qc "create database $1" >/dev/null
  export ESTEIRA_DATABASE_URL="${PG_URL%/*}/$1"
  "$BIN/processor" migrate >/dev/null
}

# one_run LABEL [KILL]: 2 processors, the jobs, the processors stopped; prints the RESULT line.
one_run() {
  local result bench
  esteira_processors_start "$STACK" 2 500 >&2
  if [ -n "${2:-}" ]; then
    esteira_jobs_bench "$JOBS" "$BATCH" "$ENQUEUERS" >"$STACK/kill-run.txt" &
    bench=$!
    sleep "$KILL_AFTER"
    say "kill -9 of node 1 of 3"
    kill -9 "$(cat "$STACK/cluster/node1/rabbitmq/rabbit.pid")"
    wait "$bench"
    result=$(cat "$STACK/kill-run.txt")
  else
    result=$(esteira_jobs_bench "$JOBS" "$BATCH" "$ENQUEUERS")
  fi
  stop_pids "${PROCESSOR_PIDS[@]}"
  echo "$result"
}

say "one node, classic queues: $JOBS noop jobs"
fresh_database bench_classic
export ESTEIRA_QUEUE_TYPE=classic
classic=$(one_run classic)

say "starting a cluster of three nodes"
rabbit_cluster_start "${CLUSTER_ARGS[@]}"
export ESTEIRA_AMQP_URL=$(rabbit_cluster_urls "${CLUSTER_ARGS[@]}")
export ESTEIRA_QUEUE_TYPE=quorum
say "three nodes, quorum queues: $JOBS noop jobs"
fresh_database bench_quorum
quorum=$(one_run quorum)
say "three nodes, quorum queues, kill -9 of a node after $KILL_AFTER s: $JOBS noop jobs"
fresh_database bench_quorum_kill
killed=$(one_run killed kill)

echo
for line in "one node, classic queues|$classic" "three nodes, quorum queues|$quorum" "three nodes, a node killed|$killed"; do
  IFS='|' read -r label result <<<"$line"
  printf '%-28s %6d jobs/s  enqueue->start p50 %8.1f ms  p99 %8.1f ms\n' "$label" \
    "$(result_field "$result" rate)" "$(result_field "$result" p50_ms)" "$(result_field "$result" p99_ms)"
done
awk -v q="$(result_field "$quorum" rate)" -v c="$(result_field "$classic" rate)" -v k="$(result_field "$killed" rate)" \
  'BEGIN { printf "three nodes with quorum queues / one node with classic: %.2f; with a node killed: %.2f\n", q / c, k / c }'
