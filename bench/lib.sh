# shellcheck shell=bash
# Pieces shared by the benchmarks and the soak. Source it after
# scripts/stack.sh, from $ESTEIRA_ROOT, with servers_start done (ESTEIRA_DATABASE_URL and
# ESTEIRA_AMQP_URL set) and, for the functions that start processes, a `pids` array that the
# caller's exit trap kills.

# esteira_build [PRODUCT...]: builds the products (release; default: processor and JobsBench,
# and the processor is always among them), sets BIN, applies the migrations.
esteira_build() {
  local product
  for product in processor "${@:-JobsBench}"; do
    swift build -c release --product "$product" >/dev/null
  done
  BIN=$(swift build -c release --show-bin-path)
  export ESTEIRA_MIGRATIONS_DIR="$ESTEIRA_ROOT/migrations"
  "$BIN/processor" migrate >/dev/null
}

# esteira_processors_start STACKDIR CONSUMERS PREFETCH [COUNT]: starts COUNT processors
# (default 2; logs in STACKDIR/processor-N.log), adds their pids to `pids` and sets
# PROCESSOR_PIDS to them.
esteira_processors_start() {
  local stack=$1 consumers=$2 prefetch=$3 count=${4:-2} i
  PROCESSOR_PIDS=()
  for ((i = 1; i <= count; i++)); do
    ESTEIRA_HTTP_PORT=$(free_port $((19200 + i * 10))) ESTEIRA_LOG_LEVEL=warning \
      "$BIN/processor" run --consumers "$consumers" --prefetch "$prefetch" >"$stack/processor-$i.log" 2>&1 &
    pids+=($!)
    PROCESSOR_PIDS+=($!)
  done
  sleep 2
}

# esteira_jobs_bench JOBS BATCH ENQUEUERS: runs JobsBench against the running processors, its
# output on stderr, and prints its RESULT line with the enqueue rate added (enqueue_rate=).
esteira_jobs_bench() {
  local out enq
  out=$("$BIN/JobsBench" "$ESTEIRA_DATABASE_URL" "$ESTEIRA_AMQP_URL" "$1" "$2" "$3" | tee -a /dev/stderr)
  enq=$(sed -n 's/^enqueued .* = \([0-9]*\) jobs\/s.*/\1/p' <<<"$out")
  echo "$(grep '^RESULT' <<<"$out") enqueue_rate=${enq:-0}"
}

# rss_sampler OUTFILE ROOTPID...: run in the background; every 200 ms sums VmRSS of the
# ROOTPIDs and all their descendants (from /proc/PID/status) and keeps the peak of that sum,
# in KiB, in OUTFILE. Kill it when the run ends.
rss_sampler() {
  local out=$1; shift
  set +e
  local peak=0 total p k v level next all
  echo 0 >"$out"
  while :; do
    all=("$@"); level=("$@")
    while [ ${#level[@]} -gt 0 ]; do
      next=($(pgrep -P "$(IFS=,; echo "${level[*]}")" 2>/dev/null))
      all+=("${next[@]}"); level=("${next[@]}")
    done
    total=0
    for p in "${all[@]}"; do
      { while read -r k v _; do
          if [ "$k" = VmRSS: ]; then total=$((total + v)); break; fi
        done </proc/"$p"/status; } 2>/dev/null
    done
    if [ "$total" -gt "$peak" ]; then peak=$total; echo "$peak" >"$out"; fi
    sleep 0.2
  done
}

# stop_pids PID...: TERM, then waits for each to exit (they are children of this shell).
stop_pids() {
  local p
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# result_field RESULTLINE NAME: the value of NAME= in a RESULT line.
result_field() { sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<" $1"; }

# bench_servers NAME AMQP_PORT PG_PORT: installs what is missing and starts a PostgreSQL and a
# RabbitMQ of the benchmark's own on free ports from those (data under .NAME/, removed at
# exit); at exit, the processes in `pids` (and `sampler`, when set) are stopped first. Sets
# STACK and NODE.
# BENCH_PG_STATEMENTS=1: PostgreSQL keeps pg_stat_statements, and bench_pg_statements prints
# the statements that took the most of its time (where a benchmark's database time goes;
# their planning too with PG_OPTIONS="-c pg_stat_statements.track_planning=on").
bench_servers() {
  STACK="$ESTEIRA_ROOT/.$1"
  if [ "${BENCH_PG_STATEMENTS:-}" = 1 ]; then export PG_OPTIONS="${PG_OPTIONS:-} -c shared_preload_libraries=pg_stat_statements"; fi
  NODE=$(rabbit_node_name "$1" "$STACK")
  pids=()
  sampler=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  ensure_packages
  servers_start "$STACK" "$NODE" "$2" "$3"
}

bench_pg_statements() {
  [ "${BENCH_PG_STATEMENTS:-}" = 1 ] || return 0
  psql "$ESTEIRA_DATABASE_URL" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  say "PostgreSQL: the statements that took the most of its time"
  psql "$ESTEIRA_DATABASE_URL" -P pager=off -c "
    SELECT round(total_exec_time)::bigint AS ms, round(total_plan_time)::bigint AS plan_ms, calls,
           round((total_exec_time / calls)::numeric, 3) AS ms_per_call, rows, left(regexp_replace(query, '\\s+', ' ', 'g'), 150) AS statement
    FROM pg_stat_statements WHERE calls > 0 ORDER BY total_exec_time + total_plan_time DESC LIMIT ${BENCH_PG_STATEMENTS_TOP:-25}"
}

bench_pg_statements_reset() {
  [ "${BENCH_PG_STATEMENTS:-}" = 1 ] || return 0
  psql "$ESTEIRA_DATABASE_URL" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  psql "$ESTEIRA_DATABASE_URL" -qAtc "SELECT pg_stat_statements_reset()" >/dev/null
}

bench_cleanup() {
  local rc=$? p
  if [ -n "${sampler:-}" ]; then kill "$sampler" 2>/dev/null || true; fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  servers_stop "$STACK" "$NODE"
  exit $rc
}
