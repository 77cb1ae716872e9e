"""How many streamed chunks/s one Locust worker process sustains before its timing degrades.

    .venv/bin/python bench/worker_capacity.py                       # 50, 100, 200, 400 users, 12 s each
    .venv/bin/python bench/worker_capacity.py --users 100 300 600 --duration 20
    .venv/bin/python bench/worker_capacity.py --pin        # engine on core 0, Locust on core 1

Starts `python -m simserver --profile capacity` (a huge simulated batch, so the engine is not the
limit) with its request trace, then for each user count runs Locust with `--processes 1` (a master
and exactly one worker process, the unit you scale) against it: closed-loop streaming chat users,
`--ignore-eos` so every request streams `--max-tokens` chunks. For each level it prints the
chunks/s the worker received, the worker's CPU use, and the TTFT error (bench/loadgen_common.py
`ttft_errors`): the client's TTFT minus the engine's own (first emit − arrival, its trace, joined by
X-Request-Id), with its two parts' p99 (`recv`: first-token time − emit; `send`: engine arrival −
client send). When the error p99 passes a few ms, the worker is saturated: add workers (README.md
§ Running on a cluster) — or, when `send` dominates, the engine parses requests late: add `--replicas`.
`µs CPU/chunk` (worker CPU time per chunk received, request overhead included) is the figure that
survives a busy host; `chunks/s @100%` is its inverse, the ceiling of one worker core. Both
processes share this machine's cores, so on a small or busy host the engine's own CPU use lowers
the achieved rates; read them as a lower bound.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from loadgen_common import ERR_HEAD, ERR_NOTE, free_port, read_rows, read_trace, simserver, ttft_errors

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def run_level(url: str, users: int, duration_s: float, max_tokens: int, out: Path) -> dict:
    """One Locust run; CPU of the worker process sampled over the middle of the run."""
    port = str(free_port())  # not 5557: another run on this host may hold it
    cmd = [PY, "-m", "locust", "-f", "locustfile.py", "--headless", "--processes", "1",
           "--master-bind-host", "127.0.0.1", "--master-bind-port", port, "--master-port", port,
           "--host", url, "--shape", "none", "-u", str(users), "-r", str(max(users, 50)),
           "-t", f"{duration_s:.0f}s", "--dataset", "random", "--max-tokens", str(max_tokens),
           "--ignore-eos", "--results-dir", str(out), "--run-name", f"u{users}", "--only-summary"]  # fmt: skip
    log = out / f"u{users}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    try:
        time.sleep(min(4.0, duration_s / 3))  # users started, streams steady
        children = psutil.Process(proc.pid).children()
        worker = children[0] if children else psutil.Process(proc.pid)
        c0, t0, w0 = worker.cpu_times(), time.monotonic(), time.time()
        time.sleep(duration_s / 2)
        c1, t1, w1 = worker.cpu_times(), time.monotonic(), time.time()
        cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
        proc.wait(duration_s + 60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(30)
    runs = sorted(out.glob(f"u{users}-*/requests.csv"))
    if not runs:
        raise SystemExit(f"worker_capacity: the {users}-user run wrote no run folder; see {log}")
    return {"run": runs[-1].parent, "cpu": cpu, "window": (w0, w1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, nargs="+", default=[50, 100, 200, 400])
    ap.add_argument("--duration", type=float, default=12.0, help="seconds per level")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--pin", action="store_true", help="engine on core 0, Locust on core 1 (Linux)")
    ap.add_argument(
        "--replicas", type=int, default=1, help="engine replicas (python -m simserver --replicas)"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="goodput-worker-capacity-"))
    levels = []
    with simserver(tmp, engine_args=["--profile", "capacity"], pin_core=0 if args.pin else None,
                   replicas=args.replicas) as sim:  # fmt: skip
        if args.pin:
            os.sched_setaffinity(0, {1})  # Locust started from here inherits core 1
        for users in args.users:
            levels.append((users, run_level(sim.url, users, args.duration, args.max_tokens, tmp)))
    engine = read_trace(sim.trace)
    print(f"one worker process, {os.cpu_count()} cores on this host (shared with the simulated engine, "
          f"{args.replicas} replica(s))")  # fmt: skip
    print(
        f"{'users':>6} {'chunks/s':>9} {'worker CPU':>10} {'µs CPU/chunk':>12} {'chunks/s @100%':>14} {ERR_HEAD} {'rows':>6}"
    )
    for users, lv in levels:
        rows = read_rows(lv["run"])  # cancelled streams at the end count too
        w0, w1 = lv["window"]  # chunks that arrived while the worker's CPU was sampled
        chunks = 0
        for r in rows:
            if not r["ttft_s"]:
                continue
            t = float(r["t_start_unix"]) + float(r["ttft_s"])
            for gap in [0.0, *(float(g) for g in r["itl_s"].split(";") if g)]:
                t += gap
                chunks += w0 <= t < w1
        errs = ttft_errors(rows, engine, w0, w1)
        rate = max(chunks, 1) / (w1 - w0)
        cpu = max(lv["cpu"], 1e-6)
        print(
            f"{users:>6} {rate:>9.0f} {cpu * 100:>9.0f}% {cpu * 1e6 / rate:>12.0f} {rate / cpu:>14.0f} "
            f"{errs.columns()} {len(rows):>6}"
        )
    print(ERR_NOTE)
    print(f"run folders: {tmp}")


if __name__ == "__main__":
    main()
