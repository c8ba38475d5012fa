# The producer and the clock of bench/celery.sh's Celery runs: purges the run's queue,
# publishes JOBS no-op tasks from this one process as fast as apply_async goes (one
# producer connection, each task carrying its enqueue wall-clock time; BENCH_PRODUCERS=N
# splits them over N forked processes publishing at once), waits until the
# workers have recorded every task (bench_app.py), and prints jobs/s end to end (JOBS over
# first enqueue to last finish) and the enqueue->start latency percentiles.
# Usage: driver.py JOBS   (configuration from the environment, see bench_app.py)
import glob
import multiprocessing
import os
import sys
import time

from bench_app import app, noop, timings_dir

STALL_SECONDS = 120


def percentile_cont(sorted_values, p):
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    pos = p * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def publish(count):
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            noop.apply_async((time.time(),), producer=producer)


def main():
    total = int(sys.argv[1])
    if app.conf.result_backend:
        # Create the result tables now, not in a race between the worker processes' first
        # stores (the losers retry with a back-off, which would count in the run).
        app.backend.ResultSession().close()
    purged = app.control.purge()
    if purged:
        print("purged %d messages left in the queue" % purged)

    producers = max(1, int(os.environ.get("BENCH_PRODUCERS", "1")))
    start = time.time()
    if producers == 1:
        publish(total)
    else:
        fork = multiprocessing.get_context("fork")
        shares = [total // producers + (1 if i < total % producers else 0) for i in range(producers)]
        procs = [fork.Process(target=publish, args=(n,)) for n in shares]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
            if p.exitcode != 0:
                print("celery bench failed: a producer process exited with %s" % p.exitcode)
                sys.exit(1)
    enqueued = time.time() - start
    print("enqueued %d tasks in %.2f s = %d tasks/s (%d producer process%s, apply_async in a loop)"
          % (total, enqueued, total / enqueued, producers, "" if producers == 1 else "es"), flush=True)

    offsets, lines, seen = {}, [], set()
    last_progress = time.time()
    while len(seen) < total:
        before = len(lines)
        for path in glob.glob(os.path.join(timings_dir, "t.*")):
            with open(path, "rb") as f:
                f.seek(offsets.get(path, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line still being written is read next time
            offsets[path] = offsets.get(path, 0) + end
            for line in data[:end].splitlines():
                lines.append(line)
                seen.add(line.split(None, 1)[0])
        if len(lines) > before:
            last_progress = time.time()
        elif time.time() - last_progress > STALL_SECONDS:
            print("celery bench failed: %d of %d tasks recorded, none for %d s" % (len(seen), total, STALL_SECONDS))
            sys.exit(1)
        else:
            time.sleep(0.1)

    rows = [tuple(map(float, line.split()[1:])) for line in lines]
    distinct = len(seen)
    first_enqueue = min(r[0] for r in rows)
    last_finish = max(r[2] for r in rows)
    seconds = last_finish - first_enqueue
    waits = sorted(r[1] - r[0] for r in rows)
    p50, p99 = percentile_cont(waits, 0.5) * 1000, percentile_cont(waits, 0.99) * 1000
    rate = total / seconds
    print("processed %d tasks end to end in %.2f s = %d tasks/s; enqueue->start p50 %.1f ms, p99 %.1f ms; run more than once %d"
          % (total, seconds, rate, p50, p99, len(rows) - distinct))
    print("RESULT jobs=%d seconds=%.2f rate=%d p50_ms=%.1f p99_ms=%.1f enqueue_rate=%d duplicates=%d"
          % (total, seconds, rate, p50, p99, total / enqueued, len(rows) - distinct))


if __name__ == "__main__":
    main()
