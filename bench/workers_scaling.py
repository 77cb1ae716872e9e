"""One worker process vs two: chunks/s, CPU and timing truth at the same offered load.

    .venv/bin/python bench/workers_scaling.py                        # 300 and 1,200 streams, 1 and 2 workers
    .venv/bin/python bench/workers_scaling.py --streams 2000 --processes 1 2 --duration 24

Starts the simulated engine with a huge batch (a token per stream every `--step-ms`) and its trace,
then runs Locust with `--processes N` (a master and N worker processes on this host, each on its own
master port) for each stream count. Over the steady middle of each run it prints the chunks/s
received (requests.csv), the CPU of all Locust processes together and of each worker (run.json
`loadgen`), the first-token timing error against the engine's trace (p50/p99 ms), and the workers'
worst event-loop lag p99 and saturated seconds. On a 2-core host the engine needs a core too: a
second worker helps only while the first one is the bottleneck.
"""

from __future__ import annotations

import argparse

from loadgen_common import (
    chunk_times,
    first_token_errors,
    free_port,
    machine,
    pct,
    read_rows,
    read_trace,
    run_locust,
    simserver,
    tempdir,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, nargs="+", default=[300, 1200])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--step-ms", type=float, default=20.0)
    args = ap.parse_args()

    print(machine())
    work = tempdir("workers-scaling")
    dataset = f"random:n=2000,input=fixed(64),output=uniform({args.max_tokens // 2},{args.max_tokens})"
    lines = []
    with simserver(work, step_s=args.step_ms / 1000) as engine:
        for n in args.streams:
            for procs in args.processes:
                port = str(free_port())
                run = run_locust(engine.url, work / "runs", f"p{procs}-{n}", n, args.duration,
                                 ["--processes", str(procs), "--master-bind-port", port, "--master-port", port,
                                  "--dataset", dataset, "--max-tokens", str(args.max_tokens), "--ignore-eos",
                                  "--request-timeout", "60s"])  # fmt: skip
                t0 = run.meta["t_start_unix"] + args.warmup + n / 1000
                t1 = run.meta["t_end_unix"] - 2 * args.max_tokens * args.step_ms / 1000 - 2.0
                rows = read_rows(run.run_dir)
                chunks = sum(1 for r in rows for t in chunk_times(r) if t0 <= t <= t1)
                errs = first_token_errors(rows, read_trace(engine.trace), t0, t1)
                workers = list(run.meta.get("loadgen", {}).get("workers", {}).values())
                cpu = run.cpu.cpu_between(t0, t1) / (t1 - t0)
                per_worker = "/".join(f"{w['cpu_percent']['mean']:.0f}" for w in workers) or "-"
                lag = max((w["lag_ms"]["p99"] or 0 for w in workers), default=float("nan"))
                sat = max((w["saturated_seconds"] for w in workers), default=0)
                lines.append(
                    (n, procs, chunks / (t1 - t0), cpu, per_worker, pct(errs, 0.5), pct(errs, 0.99), lag, sat)
                )
                print(f"  {n} streams, {procs} worker(s): {chunks / (t1 - t0):.0f} chunks/s", flush=True)
    print(f"\nengine step {args.step_ms:g} ms, output {args.max_tokens // 2}–{args.max_tokens} tokens, "
          f"{args.duration:g} s per run")  # fmt: skip
    head = (f"{'streams':>8}{'workers':>8}{'chunks/s':>10}{'Locust CPU':>11}{'per worker %':>14}"
            f"{'err p50':>9}{'err p99':>9}{'lag p99':>9}{'sat s':>7}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    for n, procs, rate, cpu, per_worker, e50, e99, lag, sat in lines:
        print(f"{n:>8}{procs:>8}{rate:>10.0f}{cpu * 100:>10.0f}%{per_worker:>14}{e50:>9.2f}{e99:>9.2f}"
              f"{lag:>9.1f}{sat:>7}")  # fmt: skip
    print(
        "(Locust CPU: master and workers, % of one core; err: first-token time minus the engine's emit, ms)"
    )
    print(f"run folders and trace: {work}")


if __name__ == "__main__":
    main()
