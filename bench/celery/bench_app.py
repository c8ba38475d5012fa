# The Celery side of bench/celery.sh: one app, one no-op task, configured from the environment
# so that the workers and the driver (driver.py) share it.
#
#   BENCH_BROKER_URL          amqp://guest:guest@127.0.0.1:PORT//
#   BENCH_RESULT_BACKEND      db+postgresql://esteira@127.0.0.1:PORT/celery, or empty: no backend
#   BENCH_QUEUE               the queue of this run (a fresh name per run)
#   BENCH_PREFETCH_MULTIPLIER worker_prefetch_multiplier (prefetch = it x --concurrency)
#   BENCH_TIMINGS_DIR         where each worker child appends one line per task it ran
#
# Timing: the driver passes its wall clock (time.time()) at enqueue as the task's one
# argument; the task takes time.time() when it starts; the task_postrun signal, sent once
# the result is stored (when there is a backend), takes the finish time and appends
# "task-id enqueue start finish\n" to the child's own file with one os.write (no buffering, so the
# driver sees every finished task without waiting for the worker to stop).
import os
import time

from celery import Celery
from celery.signals import task_postrun, worker_process_init, worker_ready

backend = os.environ.get("BENCH_RESULT_BACKEND") or None
queue = os.environ.get("BENCH_QUEUE", "celery-bench")
timings_dir = os.environ.get("BENCH_TIMINGS_DIR", "/tmp/celery-bench-timings")

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
             backend=backend)
app.conf.update(
    task_default_queue=queue,
    task_default_exchange=queue,
    task_default_routing_key=queue,
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    # Ack after the task has run (and its result is stored): a worker that dies mid-task
    # leaves the message to be redelivered, as Esteira acks only once the outcome is recorded.
    task_acks_late=True,
    # No STARTED state written: with a backend, one write per task (the SUCCESS row).
    task_track_started=False,
    # Without a backend nothing is stored, and the task is not asked to store anything.
    task_ignore_result=backend is None,
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH_MULTIPLIER", "500")),
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_fd = None
_start = 0.0


@worker_process_init.connect
def _open_timings(**_):
    global _fd
    os.makedirs(timings_dir, exist_ok=True)
    _fd = os.open(os.path.join(timings_dir, "t.%d" % os.getpid()), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


@worker_ready.connect
def _ready(sender=None, **_):
    os.makedirs(timings_dir, exist_ok=True)
    with open(os.path.join(timings_dir, "ready.%d" % os.getpid()), "w") as f:
        f.write(str(sender.hostname) if sender is not None else "")


@app.task(name="bench.noop")
def noop(enqueued_at):
    global _start
    _start = time.time()
    return None


@task_postrun.connect
def _record(task_id=None, args=None, **_):
    os.write(_fd, ("%s %r %r %r\n" % (task_id, args[0], _start, time.time())).encode())
