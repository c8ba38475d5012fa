"""CPU time by program, from /proc, for the benchmarks' "where a job's cost goes" lines.

  cpu.py sample FILE        appends a snapshot to FILE every 0.25 s until killed: a wall-clock
                            time and, for every process, its program and CPU seconds so far
  cpu.py report FILE START END UNITS LABEL
                            prints the CPU each program spent between the wall-clock times
                            START and END (seconds since the epoch), in total and in
                            milliseconds per unit (a job, a send), from the last snapshot at or
                            before START to the first at or after END

Programs are named by their executable (postgres covers all its processes, beam.smp is
RabbitMQ). A process counts up to its last snapshot in the window (one that exits as the
window ends keeps what it spent); one that started inside it counts from zero.
"""
import json
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def snapshot():
    processes = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline") as f:
                command = f.read().split("\0")[0]
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        program = os.path.basename(command) or name
        if "postgres" in program or "postgres" in name:
            program = "postgres"
        processes[pid] = (program, (int(fields[11]) + int(fields[12])) / TICK)
    return processes


def sample(path):
    with open(path, "a") as out:
        while True:
            out.write(json.dumps({"t": time.time(), "p": snapshot()}) + "\n")
            out.flush()
            time.sleep(0.25)


def report(path, start, end, units, label):
    snaps = []
    with open(path) as f:
        for line in f:
            try:
                snaps.append(json.loads(line))
            except ValueError:
                pass  # the last line, cut short when the sampler was stopped
    first = max((i for i, s in enumerate(snaps) if s["t"] <= start), default=None)
    final = min((i for i, s in enumerate(snaps) if s["t"] >= end), default=None)
    if first is None or final is None:
        print(f"CPU {label}: no snapshots around the window")
        return
    a, b = snaps[first], snaps[final]
    # Each process's last CPU figure up to the window's end: one that exits as the window
    # ends (the benchmark process itself) keeps what it spent.
    last = {}
    for s in snaps[first:final + 1]:
        last.update(s["p"])
    spent = {}
    for pid, (program, seconds) in last.items():
        spent[program] = spent.get(program, 0) + seconds - a["p"].get(pid, (program, 0))[1]
    top = sorted(((s, p) for p, s in spent.items() if s >= 0.05), reverse=True)[:6]
    total = sum(spent.values())
    window = b["t"] - a["t"]
    parts = ", ".join(f"{p} {1000 * s / units:.3f}" for s, p in top)
    print(f"CPU {label}: {1000 * total / units:.3f} ms a unit over {window:.1f} s "
          f"({total / window:.2f} cores busy); by program, ms a unit: {parts}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "sample":
        sample(sys.argv[2])
    elif len(sys.argv) == 7 and sys.argv[1] == "report":
        report(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit(__doc__)
