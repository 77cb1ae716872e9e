"""How Goodput scales out: N worker processes against engine replicas, closed loop and open loop.

    .venv/bin/python bench/workers_scaling.py                           # 2 cores: 1 and 2 workers
    .venv/bin/python bench/workers_scaling.py --workers 1 2 4 8 14 --streams-per-worker 512 \\
        --replicas auto --rates 500 1000 2000 4000 --duration 30      # a 16-core host

Starts the simulated engine with a huge batch (a token per stream every `--step-ms`, the step
nearly independent of the batch) and its trace, as `--replicas` processes behind one port (`auto`:
the cores the workers and the master leave, at least 1), then for each worker count N runs Locust
with `--processes N` (a master and N workers on this host):

Closed loop, `--streams-per-worker S`: N·S streaming chat users (`--ignore-eos`, output lengths
uniform in [max/2, max]), so each worker carries the same load whatever N. Over the steady middle:
chunks/s received (requests.csv) and the ratio to N × one worker's (`scale`, the goal is ≥ 0.9);
each worker's and the master's CPU (psutil, per process), the engine's CPU per replica (when it
nears 100 % the engine, not Goodput, is the limit); rows/s; the TTFT error users see (client TTFT −
the engine's, joined by request id; p50/p99, and its recv/send parts' p99, bench/loadgen_common.py
`ttft_errors`); the workers' saturated seconds (run.json `loadgen`: event-loop lag p99 over the
threshold for 3 s at ≥ 50 % CPU) and the workers that read late (read lag p99 over it for 3 s: the
report's "client reads late" lines; both rules in loadgen/monitors/selfjudge.py). The TTFT goal
(p99 ≤ 2 ms) applies where no worker is either.

Open loop, `--rates R…` (req/s, all workers together): the open-loop user (`--rate R`, Poisson)
with N = the largest worker count that fits (`--rate-workers`), `--max-tokens` short answers:
due and sent arrivals (run.json `open_loop`), sent/due, the send lag (actual − scheduled, p50/p99)
and the TTFT error.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from loadgen_common import (
    ERR_HEAD,
    ERR_NOTE,
    CpuSampler,
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


def procs_args(n: int) -> list[str]:
    port = str(free_port())  # not 5557: another run on this host may hold it
    return ["--processes", str(n), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-port", port]  # fmt: skip


def saturation(meta: dict) -> tuple[int, int, int]:
    """(most saturated seconds of any worker, workers flagged at all, workers with late-read seconds:
    those in the report's "client reads late" lines)."""
    workers = list(meta.get("loadgen", {}).get("workers", {}).values())
    secs = [w.get("saturated_seconds") or 0 for w in workers]
    late = sum((w.get("late_seconds") or 0) > 0 for w in workers)
    return max(secs, default=0), sum(s > 0 for s in secs), late


def closed_loop(engine, engine_cpu: CpuSampler, work: Path, n: int, s: int, args) -> dict:
    dataset = f"random:n=4000,input=fixed(64),output=uniform({args.max_tokens // 2},{args.max_tokens})"
    users = n * s
    run = run_locust(engine.url, work / "runs", f"closed-w{n}-s{s}", users, args.duration,
                     [*procs_args(n), "--dataset", dataset, "--max-tokens", str(args.max_tokens), "--ignore-eos",
                      "--request-timeout", "60s"])  # fmt: skip
    t0 = run.meta["t_start_unix"] + args.warmup + users / 1000
    t1 = run.meta["t_end_unix"] - 2 * args.max_tokens * args.step_ms / 1000 - 2.0
    if t1 - t0 < 3:
        raise SystemExit(f"workers_scaling: --duration {args.duration} leaves no steady window")
    span = t1 - t0
    rows = read_rows(run.run_dir)
    chunks = sum(1 for r in rows for t in chunk_times(r) if t0 <= t <= t1)
    done = sum(1 for r in rows if r["e2e_s"] and t0 <= float(r["t_start_unix"]) + float(r["e2e_s"]) <= t1)
    workers = [run.cpu.cpu_between(t0, t1, pid) / span for pid in run.cpu.children()]
    sat_s, flagged, late = saturation(run.meta)
    return {
        "workers": n, "streams": users, "rate": chunks / span, "rows_s": done / span,
        "worker_cpu": [c for c in workers if not math.isnan(c)],
        "master_cpu": run.cpu.cpu_between(t0, t1, run.cpu.root.pid) / span,
        "engine_cpu": engine_cpu.cpu_between(t0, t1) / span / args.replicas_n,
        "errs": ttft_errors(rows, read_trace(engine.trace), t0, t1), "sat": sat_s, "flagged": flagged, "late": late,
        "lost": run.meta.get("lost_rows"),
    }  # fmt: skip


def open_loop(engine, work: Path, n: int, rate: float, args) -> dict:
    dataset = f"random:n=4000,input=fixed(64),output=fixed({args.open_tokens})"
    run = run_locust(engine.url, work / "runs", f"open-w{n}-r{rate:g}", 1, args.duration,
                     [*procs_args(n), "--rate", f"{rate:g}", "--dataset", dataset, "--max-tokens",
                      str(args.open_tokens), "--ignore-eos", "--request-timeout", "60s"])  # fmt: skip
    ol = run.meta.get("open_loop") or {}
    due = sum(st["due"] for st in ol.get("stages", []))
    t0 = run.meta["t_start_unix"] + args.warmup
    t1 = run.meta["t_end_unix"] - 2.0
    sat_s, flagged, late = saturation(run.meta)
    return {
        "workers": n, "rate": rate, "due": due, "sent": ol.get("sent", 0), "lag": ol.get("send_lag_ms") or {},
        "achieved": ol.get("achieved_rps"), "errs": ttft_errors(read_rows(run.run_dir), read_trace(engine.trace), t0, t1),
        "sat": sat_s, "flagged": flagged, "late": late, "lost": run.meta.get("lost_rows"),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker processes per run")
    ap.add_argument("--streams-per-worker", type=int, nargs="+", default=[256])
    ap.add_argument("--replicas", default="auto", help="engine replicas, or auto: the cores left (≥ 1)")
    ap.add_argument(
        "--rates", type=float, nargs="*", default=[50.0, 100.0], help="open-loop req/s; none: skip"
    )
    ap.add_argument("--rate-workers", type=int, help="workers for the open-loop runs (default: the most)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--open-tokens", type=int, default=16, help="output tokens of the open-loop requests")
    ap.add_argument("--step-ms", type=float, default=20.0)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    args.replicas_n = max(1, cores - max(args.workers) - 1) if args.replicas == "auto" else int(args.replicas)

    print(machine())
    work = tempdir("workers-scaling")
    closed, opened = [], []
    with simserver(work, step_s=args.step_ms / 1000, replicas=args.replicas_n) as engine:
        engine_cpu = CpuSampler(engine.proc.pid)
        for s in args.streams_per_worker:
            for n in args.workers:
                closed.append(closed_loop(engine, engine_cpu, work, n, s, args))
                print(
                    f"  closed loop, {n} worker(s) × {s} streams: {closed[-1]['rate']:.0f} chunks/s",
                    flush=True,
                )
        for rate in args.rates:
            n = args.rate_workers or max(args.workers)
            opened.append(open_loop(engine, work, n, rate, args))
            print(f"  open loop, {n} worker(s), {rate:g} req/s: sent {opened[-1]['sent']}", flush=True)
        engine_cpu.stop()
    print(f"\n{cores} cores; engine: {args.replicas_n} replica(s), step {args.step_ms:g} ms; closed loop: output "
          f"{args.max_tokens // 2}–{args.max_tokens} tokens; {args.duration:g} s per run, steady window "
          f"from +{args.warmup:g} s")  # fmt: skip
    print_closed(closed)
    if opened:
        print_open(opened, args)
    print(f"run folders and trace: {work}")


def print_closed(results: list[dict]) -> None:
    head = (f"{'workers':>7}{'streams':>8}{'chunks/s':>10}{'scale':>7}{'worker CPU %':>16}{'master':>7}"
            f"{'engine':>7}{'rows/s':>8}{ERR_HEAD}{'sat s':>6}{'flagged':>8}{'late':>5}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    one = {}
    for r in results:
        per_worker_streams = r["streams"] // r["workers"]
        if r["workers"] == 1:
            one[per_worker_streams] = r["rate"]
        base = one.get(per_worker_streams)
        scale = r["rate"] / (r["workers"] * base) if base else math.nan
        cpus = "/".join(f"{c * 100:.0f}" for c in r["worker_cpu"]) or "-"
        print(f"{r['workers']:>7}{r['streams']:>8}{r['rate']:>10.0f}{scale:>7.2f}{cpus:>16}"
              f"{r['master_cpu'] * 100:>6.0f}%{r['engine_cpu'] * 100:>6.0f}%{r['rows_s']:>8.0f}"
              f"{r['errs'].columns()}{r['sat']:>6}{r['flagged']:>8}{r['late']:>5}")  # fmt: skip
    print(
        "(scale: chunks/s ÷ (workers × one worker's at the same streams per worker), goal ≥ 0.9; CPU: % of one\n"
        " core — each worker, the master, the engine per replica; flagged: workers with saturated seconds;\n"
        " late: workers with late-read seconds, read lag p99 over the threshold for 3 s, run.json loadgen)"
    )
    print(ERR_NOTE)
    ok = [r for r in results if r["flagged"] == 0 and r["late"] == 0]
    bad = [r for r in ok if r["errs"].p("full", 0.99) > 2.0]
    over = ", ".join(f"{r['workers']}w×{r['streams']}" for r in bad)
    print(f"TTFT err p99 ≤ 2 ms where no worker was saturated or read late: {len(ok) - len(bad)} of {len(ok)} such runs"
          + (f"; over in {over}" if bad else ""))  # fmt: skip


def print_open(results: list[dict], args) -> None:
    head = (f"{'workers':>7}{'req/s':>8}{'due':>8}{'sent':>8}{'sent/due':>9}{'achieved':>9}"
            f"{'lag p50':>8}{'lag p99':>8}{ERR_HEAD}{'sat s':>6}{'flagged':>8}{'late':>5}")  # fmt: skip
    print(f"\nopen loop: Poisson arrivals, {args.open_tokens} output tokens per request")
    print(head + "\n" + "-" * len(head))
    for r in results:
        ratio = r["sent"] / r["due"] if r["due"] else math.nan
        print(f"{r['workers']:>7}{r['rate']:>8.0f}{r['due']:>8}{r['sent']:>8}{ratio:>9.3f}{r['achieved'] or 0:>9.1f}"
              f"{r['lag'].get('p50') or math.nan:>8.2f}{r['lag'].get('p99') or math.nan:>8.2f}"
              f"{r['errs'].columns()}{r['sat']:>6}{r['flagged']:>8}{r['late']:>5}")  # fmt: skip
    print("(lag: send lag, actual send − scheduled, ms, run.json open_loop; err as above)")


if __name__ == "__main__":
    main()
