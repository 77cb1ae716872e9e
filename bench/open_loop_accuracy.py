"""Open-loop timing accuracy: does Goodput send requests when its arrival process says so?

Starts the simulated engine (capacity profile, so the engine is never the bottleneck) and runs
Locust open loop, then reads requests.csv: achieved rate, inter-arrival CV of the actual sends
(vs the process's documented CV), send lag = t_start_unix − t_scheduled_unix, and the TTFT error
against the engine's trace (bench/loadgen_common.py `ttft_errors`: client TTFT − engine TTFT, p50/p99).

    python bench/open_loop_accuracy.py                  # the acceptance run: Poisson 20 req/s, 60 s
    python bench/open_loop_accuracy.py --all            # + gamma (burstiness 0.25, 4), constant, 2 processes, trace at 50 req/s
    python bench/open_loop_accuracy.py --rate 100 --duration 30 --processes 2

Acceptance (issue 5): Poisson 20 req/s for 60 s → 20 ± 1 req/s, CV ≈ 1, send lag p99 ≤ 10 ms;
gamma burstiness changes the CV as 1/sqrt(k); a trace replays within ±5 ms at 50 req/s.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadgen_common import free_port, read_trace, simserver, ttft_errors  # noqa: E402

from shapes.arrivals import cv, expected_cv  # noqa: E402


def run(url: str, out: Path, name: str, args: list[str], timeout_s: float) -> tuple[list[dict], dict]:
    results = out / name
    cmd = [sys.executable, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", url, "--only-summary",
           "--results-dir", str(results), "--max-tokens", "16", "--run-name", name, *args]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise SystemExit(f"{name}: locust failed:\n{done.stderr[-2000:]}")
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run_dir / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["t_scheduled_unix"]]
    return rows, json.loads((run_dir / "run.json").read_text())


def ttft_error(rows: list[dict], trace: Path) -> str:
    """`full p50/p99` of the TTFT error of the run's completed requests (ms)."""
    errs = ttft_errors(rows, read_trace(trace), 0.0, float("inf"))
    return f"{errs.p('full', 0.5):.2f}/{errs.p('full', 0.99):.2f}"


def figures(rows: list[dict]) -> dict:
    starts = sorted(float(r["t_start_unix"]) for r in rows)
    lags = sorted(float(r["t_start_unix"]) - float(r["t_scheduled_unix"]) for r in rows)

    def q(p: float) -> float:
        return lags[min(len(lags) - 1, int(p * (len(lags) - 1)))] * 1000.0

    return {
        "sent": len(rows),
        "achieved_rps": (len(starts) - 1) / (starts[-1] - starts[0]),
        "cv": cv([b - a for a, b in itertools.pairwise(starts)]),
        "lag_p50_ms": q(0.5),
        "lag_p99_ms": q(0.99),
        "lag_max_ms": lags[-1] * 1000.0,
        "within_5ms": sum(abs(x) <= 0.005 for x in lags) / len(lags),
    }


def write_trace(path: Path, rate: float, seconds: float, seed: int = 1) -> None:
    rng, t, lines = random.Random(seed), 0.0, ["timestamp,input_tokens,output_tokens,prefix_id"]
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            break
        lines.append(f"{t:.6f},{rng.randint(64, 512)},{rng.randint(4, 16)},{'p' + str(rng.randrange(4))}")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--duration", type=int, default=60, help="seconds")
    ap.add_argument("--arrival", default="poisson", choices=["poisson", "gamma", "constant"])
    ap.add_argument("--burstiness", type=float, default=1.0)
    ap.add_argument("--processes", type=int, default=0)
    ap.add_argument("--all", action="store_true", help="also gamma, constant, 2 processes and a trace")
    args = ap.parse_args()
    cases = [
        (
            f"{args.arrival}-{args.rate:g}",
            args.arrival,
            args.burstiness,
            args.rate,
            args.duration,
            args.processes,
        )
    ]
    if args.all:
        cases += [
            ("gamma-k0.25", "gamma", 0.25, 20.0, 30, 0),
            ("gamma-k4", "gamma", 4.0, 20.0, 30, 0),
            ("constant", "constant", 1.0, 20.0, 30, 0),
            ("poisson-2proc", "poisson", 1.0, 40.0, 30, 2),
        ]
    with tempfile.TemporaryDirectory(prefix="goodput-bench-") as tmp:
        out = Path(tmp)
        with simserver(out, engine_args=["--profile", "capacity"]) as engine:
            url = engine.url
            print(f"{'case':<16} {'target':>7} {'sent':>6} {'achieved':>9} {'CV':>6} {'CV doc':>7} "
                  f"{'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'≤5ms':>6} {'warn':>5} {'TTFT err p50/p99':>17}")  # fmt: skip
            for name, kind, k, rate, seconds, procs in cases:
                port = str(free_port())  # not Locust's default 5557, which other runs may hold
                extra = (
                    ["--processes", str(procs), "--master-bind-port", port, "--master-port", port]
                    if procs
                    else []
                )
                rows, meta = run(url, out, name, ["--rate", str(rate), "--arrival", kind, "--burstiness", str(k),
                                                  "-t", f"{seconds}s", *extra], seconds + 90)  # fmt: skip
                f = figures(rows)
                print(f"{name:<16} {rate:>7.1f} {f['sent']:>6} {f['achieved_rps']:>9.2f} {f['cv']:>6.2f} "
                      f"{expected_cv(kind, k):>7.2f} {f['lag_p50_ms']:>8.2f} {f['lag_p99_ms']:>8.2f} "
                      f"{f['lag_max_ms']:>8.2f} {f['within_5ms']:>6.1%} {meta['open_loop']['behind_warnings']:>5} "
                      f"{ttft_error(rows, engine.trace):>17}")  # fmt: skip
            if args.all:
                trace = out / "trace50.csv"
                write_trace(trace, 50.0, 20.0)
                rows, meta = run(url, out, "trace-50", ["--shape", "trace", "--trace-file", str(trace)], 120)
                f = figures(rows)
                print(f"{'trace-50':<16} {50.0:>7.1f} {f['sent']:>6} {f['achieved_rps']:>9.2f} {f['cv']:>6.2f} "
                      f"{1.0:>7.2f} {f['lag_p50_ms']:>8.2f} {f['lag_p99_ms']:>8.2f} {f['lag_max_ms']:>8.2f} "
                      f"{f['within_5ms']:>6.1%} {meta['open_loop']['behind_warnings']:>5} "
                      f"{ttft_error(rows, engine.trace):>17}")  # fmt: skip


if __name__ == "__main__":
    main()
