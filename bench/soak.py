#!/usr/bin/env python3
"""The soak: a whole Esteira stack under mixed load at about half its measured capacity for
SOAK_SECONDS (default 600), with a random fault every FAULT_EVERY seconds (default 60).

Run by bench/soak.sh, which starts PostgreSQL and RabbitMQ of their own and builds the
services; this script starts the api, two processors and a scheduler, an `http` target of its
own, measures the capacity, runs the load and the faults, and reports:
  - throughput and enqueue->start latency per 30 s, and percentiles over the whole run;
  - jobs lost: accepted (201) but not ended exactly once as expected (must be 0);
  - memory (RSS) of every service process over its life, and its growth (must be flat).
Exit status 0 only when nothing was lost and memory stayed flat.

Standard library only; PostgreSQL is read with psql.
"""
import http.server
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.environ["ESTEIRA_ROOT"]
BIN = os.environ["ESTEIRA_BIN"]
STACK = os.environ["SOAK_STACK"]
NODE = os.environ["SOAK_NODE"]
DB = os.environ["ESTEIRA_DATABASE_URL"]
AMQP = os.environ["ESTEIRA_AMQP_URL"]
AMQP_PORT, MGMT_PORT, PROM_PORT, DIST_PORT, PG_PORT = os.environ["ESTEIRA_SERVERS_PORTS"].split()
DURATION = int(os.environ.get("SOAK_SECONDS", "600"))
FAULT_EVERY = int(os.environ.get("FAULT_EVERY", "60"))
PROBE_JOBS = int(os.environ.get("PROBE_JOBS", "6000"))
FIXED_RATE = os.environ.get("SOAK_RATE")
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
ADMIN = "est_admin_soak_" + os.urandom(12).hex()
SECRET = "soak-signing-secret"
LOGS = os.path.join(STACK, "logs")
os.makedirs(LOGS, exist_ok=True)
T0 = time.time()


def say(msg):
    print(f"[{time.time() - T0:6.0f}s] {msg}", flush=True)


def psql(script):
    """Runs SQL (psql meta-commands such as \\copy included) and returns the rows it printed."""
    out = subprocess.run(["psql", DB, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"], input=script,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"psql: {out.stderr.strip()}")
    return [line.split("\t") for line in out.stdout.splitlines() if line]


def stack_fn(command):
    subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/stack.sh'; {command}"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- The http target ------------------------------------------------------------------------

class Target:
    """/ok answers 200; /flaky 503 to a job's first delivery, then 200; /gone 422."""

    def __init__(self):
        self.lock = threading.Lock()
        self.successes = {}
        self.refused = set()
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                job = self.headers.get("X-Esteira-Job-Id", "")
                status = 200
                with target.lock:
                    if self.path == "/gone":
                        status = 422
                    elif self.path == "/flaky" and job not in target.refused:
                        target.refused.add(job)
                        status = 503
                    else:
                        target.successes[job] = target.successes.get(job, 0) + 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        # A loopback address of its own, the only non-public one the processors are allowed.
        self.server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.2:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# ---- The services ---------------------------------------------------------------------------

KINDS = os.path.join(STACK, "kinds.yaml")
with open(KINDS, "w") as f:
    # A killed processor's attempts run again once their heartbeat is this old.
    f.write("kinds:\n  http: { maxAttempts: 5, backoffBase: 1, backoffFactor: 1, timeout: 5, heartbeatTimeout: 10 }\n"
            "  noop: { heartbeatTimeout: 10 }\n")


class Service:
    def __init__(self, role, executable, arguments):
        self.role, self.executable, self.arguments = role, executable, arguments
        self.port = None
        self.proc = None
        self.generation = 0

    def start(self):
        for _ in range(5):
            self.port = free_port()
            env = dict(os.environ, ESTEIRA_HTTP_PORT=str(self.port), ESTEIRA_ADMIN_TOKEN=ADMIN,
                       ESTEIRA_KINDS_FILE=KINDS, ESTEIRA_HTTP_SIGNING_SECRET=SECRET, ESTEIRA_LOG_LEVEL="warning",
                       ESTEIRA_HTTP_ALLOW="127.0.0.2/32",
                       # The load runs with one admin token, far over a principal's default rate.
                       ESTEIRA_API_RATE="0")
            self.generation += 1
            log = open(os.path.join(LOGS, f"{self.role}.log"), "a")
            self.proc = subprocess.Popen([os.path.join(BIN, self.executable)] + self.arguments, env=env,
                                         stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            deadline = time.time() + 60
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                        if r.status == 200:
                            return
                except Exception:
                    time.sleep(0.1)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        raise RuntimeError(f"{self.role} did not become healthy; see {LOGS}/{self.role}.log")

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout=60):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            say(f"{self.role} did not stop within {timeout} s; killing it")
            self.proc.kill()
            self.proc.wait()


api = Service("api", "api", ["serve"])
processors = [Service(f"processor-{i}", "processor", ["run", "--consumers", "2", "--prefetch", "50"]) for i in (1, 2)]
scheduler = Service("scheduler", "scheduler", ["run"])
services = [api] + processors + [scheduler]


# ---- Load -----------------------------------------------------------------------------------

class Load:
    """Sends batches of jobs through the api at `rate` jobs/s; keeps what was accepted."""

    MIX = [("noop", None, "completed")] * 12 + [("http", "/ok", "completed")] * 5 + \
          [("http", "/flaky", "completed")] * 2 + [("http", "/gone", "dead")]

    def __init__(self, target, tag):
        self.target, self.tag = target, tag
        self.lock = threading.Lock()
        self.accepted = {}          # id -> (expected final status, kind path)
        self.accepted_at = []       # (time, count)
        self.refused = 0
        self.stopped = threading.Event()

    def body(self, n, start):
        jobs = []
        for i in range(n):
            kind, path, _ = self.MIX[(start + i) % len(self.MIX)]
            payload = {"tag": self.tag, "i": start + i}
            if kind == "noop":
                payload["sleep_ms"] = 5
            else:
                payload["url"] = self.target.url + path
            jobs.append({"kind": kind, "payload": payload})
        return jobs

    def send(self, n, start):
        jobs = self.body(n, start)
        request = urllib.request.Request(f"http://127.0.0.1:{api.port}/v1/jobs", method="POST",
                                         data=json.dumps({"jobs": jobs}).encode(),
                                         headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                answer = json.load(r)
                if r.status != 201:
                    raise RuntimeError(r.status)
        except Exception:
            with self.lock:
                self.refused += n
            return False
        with self.lock:
            for job, outcome in zip(jobs, answer["jobs"]):
                _, path, expected = self.MIX[job["payload"]["i"] % len(self.MIX)]
                self.accepted[outcome["id"].lower()] = (expected, path)
            self.accepted_at.append((time.time(), n))
        return True

    def run_at(self, rate, lanes=4):
        """Until stopped: every lane sends a batch every 100 ms, together `rate` jobs/s."""
        per_batch = max(1, round(rate / lanes / 10))
        counter = [0]

        def lane(k):
            next_at = time.time() + k * 0.1 / lanes
            while not self.stopped.is_set():
                with self.lock:
                    start = counter[0]
                    counter[0] += per_batch
                self.send(per_batch, start)
                next_at += 0.1
                delay = next_at - time.time()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -1:
                    next_at = time.time()   # fell behind during a fault: do not burst to catch up

        threads = [threading.Thread(target=lane, args=(k,), daemon=True) for k in range(lanes)]
        for t in threads:
            t.start()
        return threads


def measure_capacity(target):
    """PROBE_JOBS jobs of the soak's mix, sent as fast as 4 lanes can; jobs/s to the last end."""
    load = Load(target, "probe")
    n_batches = PROBE_JOBS // 100
    start = time.time()
    sent = [0]
    lock = threading.Lock()

    def lane():
        while True:
            with lock:
                if sent[0] >= n_batches:
                    return
                k = sent[0]
                sent[0] += 1
            load.send(100, k * 100)

    threads = [threading.Thread(target=lane) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = len(load.accepted)
    while True:
        done = int(psql("SELECT count(*) FROM jobs WHERE payload->>'tag' = 'probe' AND status IN ('completed', 'dead')")[0][0])
        if done >= total:
            break
        time.sleep(0.2)
    elapsed = time.time() - start
    return total / elapsed, total, elapsed


# ---- Memory ---------------------------------------------------------------------------------

class Memory:
    def __init__(self):
        self.samples = []   # (t, role, generation, pid, rss MiB)
        self.stopped = threading.Event()
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stopped.is_set():
            now = time.time() - T0
            for s in services:
                p = s.proc
                if p is None or p.poll() is not None:
                    continue
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                self.samples.append((now, s.role, s.generation, p.pid, int(line.split()[1]) / 1024))
                except OSError:
                    pass
            self.stopped.wait(5)


# ---- Faults ---------------------------------------------------------------------------------

def fault_kill_processor(rng):
    p = rng.choice(processors)
    p.signal(signal.SIGKILL); p.wait(); time.sleep(1); p.start()
    return f"kill -9 {p.role}, started again"


def fault_kill_api(rng):
    api.signal(signal.SIGKILL); api.wait(); time.sleep(1); api.start()
    return "kill -9 api, started again"


def fault_kill_scheduler(rng):
    scheduler.signal(signal.SIGKILL); scheduler.wait(); time.sleep(1); scheduler.start()
    return "kill -9 scheduler, started again"


def fault_sigterm_processor(rng):
    p = rng.choice(processors)
    p.signal(signal.SIGTERM); p.wait(); p.start()
    return f"SIGTERM {p.role} (drain), started again"


def fault_restart_rabbitmq(rng):
    stack_fn(f"rabbit_stop '{STACK}' '{NODE}'")
    time.sleep(3)
    stack_fn(f"rabbit_start '{STACK}' '{NODE}' {AMQP_PORT} {MGMT_PORT} {PROM_PORT} {DIST_PORT}")
    return "RabbitMQ stopped for 3 s, started again"


def fault_restart_postgres(rng):
    stack_fn(f"pg_stop '{STACK}'")
    time.sleep(3)
    stack_fn(f"pg_start '{STACK}' {PG_PORT}")
    return "PostgreSQL stopped for 3 s, started again"


FAULTS = [fault_kill_processor, fault_kill_api, fault_kill_scheduler, fault_sigterm_processor,
          fault_restart_rabbitmq, fault_restart_postgres]


# ---- Report ---------------------------------------------------------------------------------

def check(load, target):
    """Waits for every accepted job to end; returns (lost, problems, duplicates)."""
    ids = load.accepted
    path = os.path.join(STACK, "accepted.tsv")
    with open(path, "w") as f:
        for i, (expected, _) in ids.items():
            f.write(f"{i}\t{expected}\n")
    psql(f"CREATE TABLE soak_accepted (id uuid PRIMARY KEY, expected text);\n\\copy soak_accepted FROM '{path}'\n")
    say(f"waiting for the {len(ids)} accepted jobs to end")
    deadline = time.time() + 300
    while True:
        rows = psql("SELECT count(*) FROM soak_accepted a JOIN jobs j USING (id) WHERE j.status NOT IN ('completed', 'dead')")
        open_jobs = int(rows[-1][0])
        if open_jobs == 0 or time.time() > deadline:
            break
        time.sleep(2)
    time.sleep(1)
    rows = psql("""
        SELECT a.id, a.expected, coalesce(j.status, 'missing'),
               (SELECT count(*) FROM job_events e WHERE e.job_id = a.id AND e.status = 'completed'),
               (SELECT count(*) FROM job_events e WHERE e.job_id = a.id AND e.status = 'dead'),
               (SELECT count(*) FROM dead_letters d WHERE d.job_id = a.id)
        FROM soak_accepted a LEFT JOIN jobs j USING (id)""")
    problems, duplicates = [], 0
    with target.lock:
        successes = dict(target.successes)
    for job_id, expected, status, completed, dead, letters in rows:
        completed, dead, letters = int(completed), int(dead), int(letters)
        kind_path = ids[job_id][1]
        ok = status == expected and ((completed, dead, letters) == (1, 0, 0) if expected == "completed" else (completed, dead, letters) == (0, 1, 1))
        if ok and kind_path in ("/ok", "/flaky") and successes.get(job_id, 0) == 0:
            ok = False
        if successes.get(job_id, 0) > 1:
            duplicates += 1
        if not ok:
            problems.append(f"{job_id}: expected {expected}, is {status} ({completed} completed, {dead} dead events, {letters} dead letters, {successes.get(job_id, 0)} target successes)")
    return len(problems), problems, duplicates


def report_timeline(start_epoch, faults):
    rows = psql(f"""
        WITH b AS (
          SELECT floor(extract(epoch FROM created_at) - {start_epoch})::int / 30 AS bucket,
                 extract(epoch FROM first_started_at - created_at) * 1000 AS wait_ms
          FROM jobs WHERE payload->>'tag' = 'soak'),
        f AS (
          SELECT floor(extract(epoch FROM finished_at) - {start_epoch})::int / 30 AS bucket, count(*) AS n
          FROM jobs WHERE payload->>'tag' = 'soak' AND finished_at IS NOT NULL GROUP BY 1)
        SELECT b.bucket, count(*), coalesce(max(f.n), 0),
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY wait_ms)::numeric, 1),
               round(max(wait_ms)::numeric, 1)
        FROM b LEFT JOIN f USING (bucket) WHERE b.bucket >= 0 GROUP BY b.bucket ORDER BY 1""")
    print()
    print("Throughput and enqueue->start latency per 30 s (jobs by the time they were enqueued / ended):")
    print(f"{'from s':>7} {'enqueued/s':>11} {'ended/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9}  fault")
    for bucket, enq, ended, p50, p99, mx in rows:
        b = int(bucket)
        marks = "; ".join(what for at, what in faults if b * 30 <= at < (b + 1) * 30)
        print(f"{b * 30:>7} {int(enq) / 30:>11.1f} {int(ended) / 30:>9.1f} {p50:>9} {p99:>9} {mx:>9}  {marks}")
    total = psql("""
        SELECT count(*),
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - created_at) * 1000)::numeric, 1),
               round(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - created_at) * 1000)::numeric, 1),
               round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - created_at) * 1000)::numeric, 1),
               round(percentile_cont(0.999) WITHIN GROUP (ORDER BY extract(epoch FROM first_started_at - created_at) * 1000)::numeric, 1)
        FROM jobs WHERE payload->>'tag' = 'soak'""")[0]
    print(f"whole run: {total[0]} jobs; enqueue->start p50 {total[1]} ms, p95 {total[2]} ms, p99 {total[3]} ms, p99.9 {total[4]} ms")


def report_memory(memory):
    """Per service process: RSS per minute of its life. A process that lived 4 minutes or more
    is judged on the second half of its life (the first half is warm-up: buffers, connection
    caches and the allocator's arenas grow to what the load needs): flat when the median of its
    last minute is less than 10% or 8 MiB above the median of the minute at half its life."""
    print()
    print("Memory (RSS, MiB) of each service process, median per minute of its life:")
    flat = True
    lives = {}
    with open(os.path.join(STACK, "memory.tsv"), "w") as f:
        f.write("t_s\trole\tgeneration\tpid\trss_mib\n")
        for t, role, gen, pid, rss in memory.samples:
            f.write(f"{t:.0f}\t{role}\t{gen}\t{pid}\t{rss:.1f}\n")
            lives.setdefault((role, gen, pid), []).append((t, rss))
    for (role, gen, pid), series in sorted(lives.items()):
        t0, t1 = series[0][0], series[-1][0]
        lived = t1 - t0
        minutes = []
        for m in range(int(lived // 60) + 1):
            window = [r for t, r in series if t0 + 60 * m <= t < t0 + 60 * (m + 1)]
            if window:
                minutes.append(statistics.median(window))
        if lived < 240:
            verdict = "lived too short to judge"
        else:
            middle = statistics.median([r for t, r in series if t0 + lived / 2 - 30 <= t < t0 + lived / 2 + 30])
            last = statistics.median([r for t, r in series if t >= t1 - 60])
            growth = last - middle
            ok = growth < 8 or growth < 0.10 * middle
            flat &= ok
            verdict = f"second half {middle:.1f} -> {last:.1f} ({growth:+.1f}): {'flat' if ok else 'GROWING'}"
        print(f"  {role} #{gen} (pid {pid}, {lived:.0f} s, peak {max(r for _, r in series):.1f}): "
              + " ".join(f"{m:.0f}" for m in minutes) + f"  -- {verdict}")
    return flat


def main():
    rng = random.Random(SEED)
    say(f"seed {SEED}; starting the http target, api, 2 processors and a scheduler")
    target = Target()
    for s in services:
        s.start()
    memory = Memory()
    if FIXED_RATE:
        rate = float(FIXED_RATE)
        say(f"rate {rate:.0f} jobs/s (SOAK_RATE)")
    else:
        capacity, total, elapsed = measure_capacity(target)
        rate = capacity / 2
        say(f"capacity: {total} jobs of the mix in {elapsed:.1f} s = {capacity:.0f} jobs/s; soak at half: {rate:.0f} jobs/s")
    load = Load(target, "soak")
    start_epoch = time.time()
    soak_t0 = time.time()
    threads = load.run_at(rate)
    faults = []
    next_fault = soak_t0 + FAULT_EVERY
    last_report = soak_t0
    while time.time() - soak_t0 < DURATION:
        now = time.time()
        if now >= next_fault and now - soak_t0 < DURATION - 20:
            fault = rng.choice(FAULTS)
            at = now - soak_t0
            try:
                what = fault(rng)
            except Exception as error:
                what = f"{fault.__name__} failed: {error}"
            faults.append((at, what))
            say(f"fault at {at:.0f} s: {what} ({time.time() - now:.1f} s)")
            next_fault += FAULT_EVERY
        if now - last_report >= 30:
            with load.lock:
                n, refused = len(load.accepted), load.refused
            say(f"{n} jobs accepted, {refused} refused")
            last_report = now
        time.sleep(0.2)
    load.stopped.set()
    for t in threads:
        t.join()
    say(f"load stopped after {time.time() - soak_t0:.0f} s: {len(load.accepted)} jobs accepted, {load.refused} not (sent during a fault)")
    lost, problems, duplicates = check(load, target)
    memory.stopped.set()
    for s in services:
        s.signal(signal.SIGTERM)
    for s in services:
        s.wait(60)
    report_timeline(start_epoch, faults)
    flat = report_memory(memory)
    print()
    print(f"faults: {len(faults)}; accepted jobs: {len(load.accepted)}; http successes delivered more than once: {duplicates}")
    print(f"jobs lost or not ended exactly once: {lost}")
    for p in problems[:20]:
        print("  " + p)
    print(f"memory: {'flat' if flat else 'GROWING'}")
    print(f"SOAK {'PASSED' if lost == 0 and flat else 'FAILED'}")
    return 0 if lost == 0 and flat else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        for s in services:
            if s.proc and s.proc.poll() is None:
                s.proc.kill()
