"""Does anything grow with a run's length? A long run, cut into minutes.

    .venv/bin/python bench/soak.py                                   # 2 workers × 128 users, 8 minutes
    .venv/bin/python bench/soak.py --workers 8 --users 512 --minutes 30 --replicas 7   # a 16-core host

Short benchmarks (20 s) cannot show a cost that grows with the run: one did for weeks (the master
re-sorted every self-measurement sample per report; bench/README.md § The self-measurement merge as
a run grows). This runs Goodput (`--processes W`: a master and W workers, closed-loop streaming
users, `--ignore-eos`) against the simulated engine (`--profile capacity`, its trace on) for
`--minutes`, samples every process's CPU and resident memory from outside (bench/loadgen_common.py
`CpuSampler`), and prints per minute:
chunks/s received, the workers' CPU per chunk, the master's CPU, each kind's memory, and the TTFT
error against the engine's trace (bench/loadgen_common.py `ttft_errors`). Flat columns are the
answer; a column that climbs minute after minute is a leak or a cost that grows with the run.
"""

from __future__ import annotations

import argparse
import math

from loadgen_common import (
    ERR_HEAD,
    ERR_NOTE,
    chunk_times,
    free_port,
    machine,
    read_rows,
    read_trace,
    run_locust,
    simserver,
    tempdir,
    ttft_errors,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--users", type=int, default=256, help="in all, spread over the workers")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument(
        "--replicas", type=int, default=1, help="engine replicas (python -m simserver --replicas)"
    )
    args = ap.parse_args()
    work = tempdir("soak")
    print(machine())
    duration_s = args.minutes * 60
    with simserver(work, engine_args=["--profile", "capacity"], replicas=args.replicas) as sim:
        port = str(free_port())
        run = run_locust(sim.url, work, "soak", args.users, duration_s,
                         ["--processes", str(args.workers), "--master-bind-host", "127.0.0.1",
                          "--master-bind-port", port, "--master-port", port, "--dataset", "random",
                          "--max-tokens", str(args.max_tokens), "--ignore-eos"])  # fmt: skip
    rows, trace = read_rows(run.run_dir), read_trace(sim.trace)
    arrivals = sorted(t for r in rows for t in chunk_times(r))
    t_start = run.meta["t_start_unix"]
    workers = run.cpu.children()
    print(f"{args.workers} workers × {args.users // args.workers} users, {args.max_tokens}-token answers, "
          f"{args.replicas} engine replica(s), {args.minutes:g} minutes; run folder {run.run_dir}")  # fmt: skip
    print(f"{'minute':>6} {'chunks/s':>9} {'µs/chunk':>9} {'master CPU':>10} {'master MB':>9} "
          f"{'worker MB':>9} {ERR_HEAD}")  # fmt: skip
    for m in range(int(args.minutes)):
        t0, t1 = t_start + 60 * m + (5 if m == 0 else 0), t_start + 60 * (m + 1)
        chunks = sum(1 for t in arrivals if t0 <= t < t1)
        # a process seen in the minute only once (a short-lived helper) has no figure there: skip it
        worker_cpu = sum(c for pid in workers if not math.isnan(c := run.cpu.cpu_between(t0, t1, pid)))
        master_cpu = run.cpu.cpu_between(t0, t1, run.cpu.root.pid) / (t1 - t0)
        master_mb = run.cpu.rss_mb_at(t1, run.cpu.root.pid)
        sizes = [mb for pid in workers if not math.isnan(mb := run.cpu.rss_mb_at(t1, pid))]
        worker_mb = max(sizes, default=float("nan"))
        errs = ttft_errors(rows, trace, t0, t1)
        print(f"{m + 1:>6} {chunks / (t1 - t0):>9.0f} {worker_cpu * 1e6 / max(chunks, 1):>9.1f} "
              f"{master_cpu * 100:>9.1f}% {master_mb:>9.0f} {worker_mb:>9.0f} {errs.columns()}")  # fmt: skip
    print(
        "µs/chunk: the workers' CPU time per chunk received; master CPU: % of one core; MB: resident memory"
    )
    print(ERR_NOTE)


if __name__ == "__main__":
    main()
