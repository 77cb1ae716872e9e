"""How many rows a second one master takes in, what that costs it, and that none is lost.

    .venv/bin/python bench/master_ingest.py                              # 5,000 rows/s from 2 workers
    .venv/bin/python bench/master_ingest.py --workers 1 2 --rows-per-s 2500 5000 10000 --duration 20
    .venv/bin/python bench/master_ingest.py --workers 8 --rows-per-s 20000      # a 16-core host

Runs Goodput with `--processes W` and bench/ingest_probe.py beside the locustfile: real Locust
worker processes whose users make complete rows (each with `--gaps` inter-token gaps, 200 by
default: a 200-token stream's row, ~1.9 kB) without HTTP, handed on exactly as a streaming
request's row is, so the master, its ZeroMQ socket, the msgpack reports, `receive_rows`, the
failure rule and the CSV sink do the real work at a rate no streaming worker on this host could
reach (200-gap rows at 5,000/s are a million chunks/s of streams, ~50 worker cores). A simulated
engine is started only because the master checks its target; no request is sent to it.

Per run, over the steady window (after `--warmup`, before the end):
- rows/s written to requests.csv, the master's CPU (% of one core; its own process only, psutil
  from outside) and µs of master CPU per row, its peak resident memory, each worker's CPU;
- the master's event-loop lag (p99/max, a 10 ms sleep's lateness: how long something held its
  loop), how long one sink flush took (max; it yields between chunks since the sink fix), and the age of the oldest row when its flush wrote it (request end → on disk;
  a report interval and a flush interval, ~2 s, when the master keeps up; growing when it doesn't);
- loss: run.json's requests_sent, rows_received, lost_rows, every worker's started == rows, and
  the data lines in requests.csv — the run fails (exit 1) if any of them disagree.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

from loadgen_common import free_port, machine, pct, run_locust, simserver, tempdir


def measure(url: str, work: Path, workers: int, rows_per_s: float, args: argparse.Namespace) -> dict:
    users_per_worker = max(1, math.ceil(rows_per_s / workers / args.user_rps))
    users = users_per_worker * workers
    name = f"w{workers}-r{rows_per_s:g}"
    out = work / name
    out.mkdir()
    port = str(free_port())
    env = {"GOODPUT_INGEST_OUT": str(out), "GOODPUT_INGEST_USER_RPS": str(rows_per_s / users),
           "GOODPUT_INGEST_GAPS": str(args.gaps)}  # fmt: skip
    run = run_locust(url, out, name, users, args.duration,
                     ["--processes", str(workers), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                      "--master-port", port, "--dataset", "random"],
                     env=env, locustfiles="locustfile.py,bench/ingest_probe.py")  # fmt: skip
    meta, probe = run.meta, json.loads((out / "master.json").read_text())
    t0 = meta["t_start_unix"] + args.warmup
    t1 = (meta["t_end_unix"] or run.t_end) - 1.0
    span = t1 - t0
    flushes = [f for f in probe["flushes"] if t0 <= f[0] <= t1]
    lags = sorted(lag for t, lag in probe["lag_ms"] if t0 <= t <= t1)
    master_cpu = run.cpu.cpu_between(t0, t1, run.cpu.root.pid)
    rows_in = sum(f[1] for f in flushes)
    lines = int(subprocess.run(["wc", "-l", str(run.run_dir / "requests.csv")], capture_output=True,
                               text=True, check=True).stdout.split()[0]) - 1  # fmt: skip
    per_worker = meta.get("per_worker", {})
    return {
        "workers": workers, "target": rows_per_s, "rows_s": rows_in / span,
        "master_cpu": master_cpu / span, "us_row": master_cpu / max(rows_in, 1) * 1e6,
        "rss_mb": run.cpu.root_rss_max / 2**20,
        "worker_cpu": [run.cpu.cpu_between(t0, t1, pid) / span for pid in run.cpu.children()],
        "lag99": pct(lags, 0.99), "lag_max": lags[-1] if lags else math.nan,
        "flush_max": max((f[2] for f in flushes), default=math.nan) * 1000,
        "age50": pct([f[3] for f in flushes], 0.5), "age_max": max((f[3] for f in flushes), default=math.nan),
        "sent": meta.get("requests_sent", -1), "received": meta.get("rows_received", -1), "lines": lines,
        "lost": meta.get("lost_rows", -1),
        "per_worker_ok": bool(per_worker) and all(w["started"] == w["rows"] for w in per_worker.values()),
        "missing": meta.get("missing_workers"), "returncode": run.returncode, "run_dir": run.run_dir,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="+", default=[2], help="worker processes (--processes)")
    ap.add_argument(
        "--rows-per-s", type=float, nargs="+", default=[5000.0], help="rows a second, all workers"
    )
    ap.add_argument("--gaps", type=int, default=200, help="inter-token gaps per row (ITL list length)")
    ap.add_argument("--user-rps", type=float, default=25.0, help="rows a second per user (sets the users)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds left out at the start")
    args = ap.parse_args()

    print(machine())
    work = tempdir("master-ingest")
    results = []
    with simserver(work, engine_args=["--profile", "capacity"], trace=False) as engine:
        for w in args.workers:
            for r in args.rows_per_s:
                results.append(measure(engine.url, work, w, r, args))
                x = results[-1]
                print(f"  {w} worker(s), {r:g} rows/s: {x['rows_s']:.0f} rows/s in, master CPU "
                      f"{x['master_cpu'] * 100:.0f} %", flush=True)  # fmt: skip
    print(f"\n{args.gaps} gaps per row, {args.duration:g} s per run, steady window from +{args.warmup:g} s")
    head = (f"{'workers':>7}{'target':>8}{'rows/s':>8}{'master CPU':>11}{'µs/row':>8}{'RSS MB':>8}"
            f"{'worker CPU %':>14}{'lag p99/max':>13}{'flush max':>10}{'age p50/max s':>15}"
            f"{'sent':>8}{'received':>9}{'csv':>8}{'lost':>5}{'per worker':>11}")  # fmt: skip
    print(head + "\n" + "-" * len(head))
    bad = []
    for x in results:
        wcpu = "/".join(f"{c * 100:.0f}" for c in x["worker_cpu"]) or "-"
        equal = x["sent"] == x["received"] == x["lines"] and x["lost"] == 0 and x["per_worker_ok"]
        if not equal or x["missing"]:
            bad.append(x)
        print(f"{x['workers']:>7}{x['target']:>8.0f}{x['rows_s']:>8.0f}{x['master_cpu'] * 100:>10.0f}%"
              f"{x['us_row']:>8.1f}{x['rss_mb']:>8.0f}{wcpu:>14}{x['lag99']:>7.1f}/{x['lag_max']:<5.0f}"
              f"{x['flush_max']:>10.1f}{x['age50']:>8.2f}/{x['age_max']:<6.2f}{x['sent']:>8}{x['received']:>9}"
              f"{x['lines']:>8}{x['lost']:>5}{'yes' if x['per_worker_ok'] else 'NO':>11}")  # fmt: skip
    print("(master CPU: % of one core, its process only; lag, flush: ms; age: request end → written, s;\n"
          " per worker: run.json per_worker started == rows for every worker)")  # fmt: skip
    print(f"run folders: {work}")
    if bad:
        sys.exit(f"master_ingest: rows lost or miscounted in {', '.join(str(x['run_dir']) for x in bad)}")


if __name__ == "__main__":
    main()
