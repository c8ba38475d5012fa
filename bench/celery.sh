#!/usr/bin/env bash
# Esteira against Celery on one machine and one broker: JOBS no-op jobs run by WORKERS worker
# instances of each system, back to back on the same RabbitMQ and PostgreSQL:
#   1. Esteira: JobsBench enqueues in batches, WORKERS processors run them (bench/jobs.sh's run);
#   2. Celery 5 with a PostgreSQL result backend (db+postgresql://, the same server);
#   3. Celery 5 without a result backend.
# Prints jobs/s end to end, enqueue->start p50/p99, the peak RSS of the workers and Esteira's
# ratio to each. Method and every setting: docs/benchmarks.md, "Esteira against Celery".
# Starts a PostgreSQL and a RabbitMQ of its own on free ports (data under
# .esteira-bench-celery/, removed at the end); Celery is installed from PyPI in a virtualenv
# kept in .build/bench/celery-venv (reused while bench/celery/requirements.txt is unchanged).
# Usage: JOBS=50000 WORKERS=2 CONCURRENCY=2 PREFETCH=500 PRODUCERS=1 bench/celery.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/stack.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ESTEIRA_ROOT"
JOBS="${JOBS:-50000}"
WORKERS="${WORKERS:-2}"          # processor instances / celery worker instances
CONCURRENCY="${CONCURRENCY:-2}"  # Esteira --consumers / Celery --concurrency, per instance
PREFETCH="${PREFETCH:-500}"      # Esteira --prefetch (per consumer) / Celery worker_prefetch_multiplier
CELERY_POOL="${CELERY_POOL:-prefork}"
PRODUCERS="${PRODUCERS:-1}"      # Celery: processes publishing the tasks at once (driver.py)
BATCH="${BATCH:-1000}"           # Esteira: jobs per enqueue call
ENQUEUERS="${ENQUEUERS:-4}"      # Esteira: concurrent enqueue calls in the one JobsBench process
VENV="$ESTEIRA_ROOT/.build/bench/celery-venv"
REQUIREMENTS="$ESTEIRA_ROOT/bench/celery/requirements.txt"

# celery_venv: creates the virtualenv and installs the pinned packages, unless it exists
# with the same requirements.
celery_venv() {
  if [ -x "$VENV/bin/celery" ] && cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then return 0; fi
  say "creating $VENV (Celery from PyPI: $(grep -i '^celery==' "$REQUIREMENTS"))"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 has no venv module (nor ensurepip) without python3-venv.
    rm -rf "$VENV"
    command -v apt-get >/dev/null 2>&1 || die "python3 -m venv failed and no apt-get: install python3-venv"
    say "installing python3-venv"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    /usr/bin/python3 -m venv "$VENV" || die "python3 -m venv failed"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS" || die "pip install failed"
  cp "$REQUIREMENTS" "$VENV/requirements.txt"
}

# sample_rss_start ROOTPID...: starts the RSS sampler on them (peak in $STACK/rss.peak).
sample_rss_start() { rss_sampler "$STACK/rss.peak" "$@" & sampler=$!; }
# sample_rss_stop SYSTEM: stops it and keeps the peak in MiB in rss[SYSTEM].
sample_rss_stop() {
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; sampler=""
  rss[$1]=$(awk '{ printf "%.0f", $1 / 1024 }' "$STACK/rss.peak")
}

bench_servers esteira-bench-celery 22800 22532
celery_venv
say "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"

say "building (release)"
mkdir -p .build/bench
esteira_build
psql "$ESTEIRA_DATABASE_URL" -qc "create database celery" >/dev/null
CELERY_BROKER="${ESTEIRA_AMQP_URL%/}//"
CELERY_BACKEND="db+postgresql+psycopg2://${ESTEIRA_DATABASE_URL#postgres://}"
CELERY_BACKEND="${CELERY_BACKEND%/*}/celery"
CELERY_DB="${ESTEIRA_DATABASE_URL%/*}/celery"

declare -A rate p50 p99 rss enq
systems=(esteira celery-pg celery-none)
declare -A label=([esteira]="Esteira" [celery-pg]="Celery+PostgreSQL backend" [celery-none]="Celery no backend")

# ---- 1. Esteira ---------------------------------------------------------------------------
psql "$ESTEIRA_DATABASE_URL" -qc checkpoint >/dev/null
say "Esteira: $WORKERS processors (--consumers $CONCURRENCY --prefetch $PREFETCH), $JOBS noop jobs in batches of $BATCH from $ENQUEUERS enqueuers"
esteira_processors_start "$STACK" "$CONCURRENCY" "$PREFETCH" "$WORKERS"
sample_rss_start "${PROCESSOR_PIDS[@]}"
result=$(esteira_jobs_bench "$JOBS" "$BATCH" "$ENQUEUERS")
sample_rss_stop esteira
stop_pids "${PROCESSOR_PIDS[@]}"
for f in rate p50_ms p99_ms enqueue_rate; do declare "v_$f=$(result_field "$result" $f)"; done
rate[esteira]=$v_rate; p50[esteira]=$v_p50_ms; p99[esteira]=$v_p99_ms; enq[esteira]=$v_enqueue_rate

# ---- 2, 3. Celery -------------------------------------------------------------------------
for system in celery-pg celery-none; do
  backend=""; [ "$system" = celery-pg ] && backend="$CELERY_BACKEND"
  queue="bench-$system-$(date +%s)"
  timings="$STACK/timings-$system"
  rm -rf "$timings"; mkdir -p "$timings"
  psql "$ESTEIRA_DATABASE_URL" -qc checkpoint >/dev/null
  export BENCH_BROKER_URL="$CELERY_BROKER" BENCH_RESULT_BACKEND="$backend" BENCH_QUEUE="$queue" \
    BENCH_PREFETCH_MULTIPLIER="$PREFETCH" BENCH_TIMINGS_DIR="$timings" BENCH_PRODUCERS="$PRODUCERS" PYTHONPATH="$ESTEIRA_ROOT/bench/celery"
  say "${label[$system]}: $WORKERS workers (--pool $CELERY_POOL --concurrency $CONCURRENCY, prefetch multiplier $PREFETCH), queue $queue${backend:+, results in $backend}"
  workers=()
  for ((i = 1; i <= WORKERS; i++)); do
    "$VENV/bin/celery" -A bench_app worker -n "bench$i@%h" --pool "$CELERY_POOL" --concurrency "$CONCURRENCY" \
      --loglevel WARNING --without-gossip --without-mingle --without-heartbeat >"$STACK/$system-worker-$i.log" 2>&1 &
    pids+=($!); workers+=($!)
  done
  for ((t = 0; t < 600; t++)); do
    [ "$(ls "$timings" | grep -c '^ready\.')" -ge "$WORKERS" ] && break
    for p in "${workers[@]}"; do kill -0 "$p" 2>/dev/null || { tail -n 20 "$STACK/$system-worker-"*.log >&2; die "a celery worker exited"; }; done
    sleep 0.1
  done
  [ "$(ls "$timings" | grep -c '^ready\.')" -ge "$WORKERS" ] || die "celery workers not ready after 60 s"
  sample_rss_start "${workers[@]}"
  result=$("$VENV/bin/python" bench/celery/driver.py "$JOBS" | tee -a /dev/stderr | grep '^RESULT')
  sample_rss_stop "$system"
  stop_pids "${workers[@]}"
  if [ -n "$backend" ]; then
    stored=$(psql "$CELERY_DB" -Atc "select count(*) from celery_taskmeta where status = 'SUCCESS'")
    psql "$CELERY_DB" -qc "truncate celery_taskmeta" >/dev/null
    say "results stored in PostgreSQL: $stored"
    [ "$stored" -ge "$JOBS" ] || die "$stored results stored for $JOBS tasks"
  fi
  for f in rate p50_ms p99_ms enqueue_rate duplicates; do declare "v_$f=$(result_field "$result" $f)"; done
  [ "$v_duplicates" = 0 ] || warn "$v_duplicates tasks ran more than once"
  rate[$system]=$v_rate; p50[$system]=$v_p50_ms; p99[$system]=$v_p99_ms; enq[$system]=$v_enqueue_rate
done

# ---- the table ----------------------------------------------------------------------------
echo
echo "$JOBS jobs, $WORKERS worker instances each, concurrency $CONCURRENCY, prefetch $((CONCURRENCY * PREFETCH)) per instance, $PRODUCERS Celery producer(s); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-26s | %7s | %8s | %8s | %19s | %13s\n' system jobs/s "p50 ms" "p99 ms" "peak worker RSS MiB" "Esteira ratio"
printf '%s\n' "---------------------------+---------+----------+----------+---------------------+--------------"
for s in "${systems[@]}"; do
  awk -v n="${label[$s]}" -v r="${rate[$s]}" -v a="${p50[$s]}" -v b="${p99[$s]}" -v m="${rss[$s]}" -v e="${rate[esteira]}" \
    'BEGIN { printf "%-26s | %7d | %8.1f | %8.1f | %19d | %13.2f\n", n, r, a, b, m, e / r }'
done
echo
for s in "${systems[@]}"; do printf 'enqueue rate, %s: %d jobs/s\n' "${label[$s]}" "${enq[$s]}"; done
