"""What merging the workers' self-measurement costs the master as a run grows, and at its close.

Every worker report carries its closed seconds (loadgen/monitors/selfmon.py: ~100 event-loop lag
samples and up to 200 read lags each); the master (or a local runner, for its own process) merges
them. This drives the real `SelfMon.receive` of a master with W workers' seconds for M minutes of
run (one receive per worker per second, as Locust's reports come) and prints, at each checkpoint,
the master CPU that one second of the run costs (all W receives of that second) — the figure that
must not grow with the run — then the cost of the run-long figures written to run.json at the
close, and the memory the kept samples hold. On a local runner W = 1 and that CPU blocks the
process's own event loop, with its streams' reads. Not a timed test: run it by hand.

    .venv/bin/python bench/selfmon_cost.py                       # 8 workers, 60 minutes of run
    .venv/bin/python bench/selfmon_cost.py --workers 1 --minutes 30 --checkpoints 1 10 30
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from locust.runners import MasterRunner  # noqa: E402

from core.slo import parse_slo  # noqa: E402
from loadgen import context  # noqa: E402
from loadgen.context import RunContext  # noqa: E402
from loadgen.monitors.selfmon import SelfMon  # noqa: E402


class _Master(MasterRunner):
    """A master runner as SelfMon tells it (isinstance) without Locust's sockets."""

    greenlet = None

    def __init__(self) -> None:  # nothing of Locust's master is needed here
        pass


class _Environment:
    runner = _Master()
    parsed_options = SimpleNamespace(request_timeout="60s", think_time="0s")


def second(rng: random.Random, t: float) -> dict:
    """One closed second as a busy worker ships it (loadgen/monitors/selfmon.py Meter.tick)."""
    return {"t0": t, "t1": t + 1.0, "cpu": 60.0,
            "lag": [round(rng.random() * 3, 3) for _ in range(100)],
            "read": [round(rng.random() * 2, 3) for _ in range(200)]}  # fmt: skip


def fresh(rec: dict, t: float) -> dict:
    """A copy with its own float objects, as each report's msgpack decoding makes them."""
    return {"t0": t, "t1": t + 1.0, "cpu": rec["cpu"],
            "lag": [x + 0.0 for x in rec["lag"]], "read": [x + 0.0 for x in rec["read"]]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--checkpoints", type=float, nargs="+", default=[1, 10, 30, 60], help="minutes")
    args = ap.parse_args()
    env = _Environment()
    ctx = context.attach(env, RunContext(env, parse_slo("chat"), "m"))
    sm = SelfMon(env, threshold_ms=10.0)
    sm.start()
    sm.agg.steady_from = 0.0
    rng = random.Random(1)
    recs = [second(rng, 0.0) for _ in range(50)]  # drawn up front: the bench times the merge only
    marks = sorted({round(m * 60) for m in args.checkpoints if m <= args.minutes})
    names = [f"w{i}" for i in range(args.workers)]
    tracemalloc.start()
    print(f"{args.workers} workers, one report each per second of run, {len(recs[0]['lag'])} lag + "
          f"{len(recs[0]['read'])} read samples per report")  # fmt: skip
    for s in range(round(args.minutes * 60)):
        batch = [fresh(recs[(s + i) % len(recs)], float(s)) for i in range(len(names))]
        t = time.process_time()
        for name, rec in zip(names, batch, strict=True):
            sm.receive(name, [rec])
        if s + 1 in marks:
            cost_ms = (time.process_time() - t) * 1000
            print(f"  at {(s + 1) / 60:5.1f} min: {cost_ms:8.2f} ms of master CPU for this second of run "
                  f"({cost_ms / 10:.1f} % of a core)")  # fmt: skip
    kept_mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    t = time.process_time()
    sm.stop()  # the close: run-long figures into the meta (loadgen/run/lifecycle.py writes run.json)
    close_ms = (time.process_time() - t) * 1000
    w0 = ctx.meta["loadgen"]["workers"][names[0]]
    print(f"  close (run.json loadgen): {close_ms:.0f} ms once; samples kept {kept_mb:.0f} MB; "
          f"{w0['seconds']} seconds per worker, lag p99 {w0['lag_ms']['p99']} ms")  # fmt: skip


if __name__ == "__main__":
    main()
