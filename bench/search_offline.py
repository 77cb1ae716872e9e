"""The capacity search in virtual time: how often does its 95 % interval hold the engine's known capacity?

A live search takes minutes; this one drives the same schedule (shapes/search.py `SearchSchedule`)
against the simulated engine's core in virtual time (simserver/offline.py), so a hundred searches
take a few minutes on one core. Each search's rows become a run folder (requests.csv + run.json, the
contract) that the analysis reads like any other (analysis/api.py), and its capacity interval is
checked against the capacity the engine model gives for the same workload and SLO
(simserver/capacity.py: long open-loop runs, bisected). The search's progress here is computed
from the simulated requests (`VirtualProgress`), standing in for the live figures of a real run.

    .venv/bin/python bench/search_offline.py --runs 100                  # coverage and widths
    .venv/bin/python bench/search_offline.py --runs 1 --keep /tmp/search  # one run folder to look at
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import api  # noqa: E402
from core.slo import Slo, parse_slo  # noqa: E402
from loadgen.state.livefigures import slope  # noqa: E402
from shapes.arrivals import arrival_offsets, stage_seed  # noqa: E402
from shapes.base import Level, StageFigures  # noqa: E402
from shapes.search import SearchSchedule  # noqa: E402
from simserver.__main__ import apply_overrides  # noqa: E402
from simserver.answer import output_length  # noqa: E402
from simserver.capacity import closed_loop_capacity, open_loop_capacity  # noqa: E402
from simserver.engine import EngineCore, Seq  # noqa: E402
from simserver.offline import Request, random_chat  # noqa: E402
from simserver.profiles import Profile, load_profile  # noqa: E402

T0 = 1_767_225_600.0  # the virtual run's wall-clock anchor


@dataclass
class Row:
    step: int
    users: int
    t_sched: float | None
    t_send: float
    prompt: int
    t_first: float = -1.0
    t_last: float = -1.0
    out: int = 0
    done: bool = False


class VirtualRun:
    """One engine, the current stage's arrivals (open loop) or users (closed loop), in virtual time."""

    def __init__(self, profile: Profile, make_request, seed: int) -> None:
        self.profile, self.make = profile, make_request
        self.core = EngineCore(profile, seed)
        self.rng, self.len_rng = random.Random(seed), random.Random(seed + 1)
        self.seed = seed
        self.t = 0.0
        self.level: Level | None = None
        self.t_stage = 0.0
        self.arrivals: list[float] = []
        self.rows: list[Row] = []
        self.in_flight = 0
        self.stages: list[dict] = []
        self.ended_s = 0.0

    def set_level(self, level: Level, t_start: float) -> None:
        if self.stages:
            self.stages[-1]["t_end_unix"] = T0 + self.t
        self.level, self.t_stage = level, t_start
        self.stages.append(
            {"step": level.step, "label": level.label, "target_users": level.users, "rate_rps": level.rate_rps,
             "warmup_s": level.warmup_s, "cooldown_s": 0.0, "t_start_unix": T0 + t_start, "t_end_unix": None}
        )  # fmt: skip
        self.arrivals = []
        if level.rate_rps:
            offsets = arrival_offsets("poisson", level.rate_rps, 1.0, stage_seed(self.seed, level.step))
            self.arrivals = iter(offsets)  # type: ignore[assignment]
            self.next_at = t_start + next(self.arrivals)  # type: ignore[call-overload]
        elif level.rate_rps is None:
            for _ in range(level.users):
                self._send(t_start, None)

    def _send(self, t: float, t_sched: float | None) -> None:
        prompt, max_tokens = self.make(self.rng)
        target, reason = output_length(self.len_rng, self.profile.output, max_tokens, 0, False)
        row = Row(self.level.step, self.level.users, t_sched, t, len(prompt))  # type: ignore[union-attr]
        self.rows.append(row)
        self.in_flight += 1
        level = self.level
        run = self

        class Sink:
            def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
                if row.t_first < 0:
                    row.t_first = now
                row.t_last, row.out = now, seq.num_output
                if finish is not None:
                    row.done = True
                    run.in_flight -= 1
                    if run.level is level and level.rate_rps is None:  # type: ignore[union-attr]
                        run._send(now, None)  # the closed-loop user sends again

        e = self.profile.engine
        seq = Seq(f"v{len(self.rows)}", prompt, max_tokens, target, reason, Sink(),
                  self.len_rng.getrandbits(16), e.block_size, e.enable_prefix_caching)  # fmt: skip
        self.core.add(seq, t)

    def advance(self, t_end: float) -> None:
        """Run the engine (and the stage's arrivals) up to `t_end`; a step may end a little past it."""
        open_loop = self.level is not None and bool(self.level.rate_rps)
        while True:
            nxt = self.next_at if open_loop else float("inf")
            while nxt <= self.t and nxt < t_end:
                self._send(nxt, nxt)
                self.next_at = nxt = self.t_stage + next(self.arrivals)  # type: ignore[call-overload]
            if self.core.has_work():
                plan = self.core.schedule()
                self.t += plan.duration
                self.core.complete(plan, self.t)
                if self.t >= t_end:
                    return
            elif nxt >= t_end:
                self.t = max(self.t, t_end)
                return
            else:
                self.t = nxt


class VirtualProgress:
    """What the live figures give a schedule (shapes.base.Progress), from the simulated rows."""

    def __init__(self, run: VirtualRun, slo: Slo) -> None:
        self.run, self.slo = run, slo
        self.samples: list[tuple[float, int]] = []
        self.key: object = None

    def ok(self) -> int:
        return sum(r.done for r in self.run.rows)

    def finished(self) -> int:
        return self.ok()

    def in_flight(self) -> int:
        return self.run.in_flight

    def attain_target(self) -> float:
        return self.slo.attain_target

    def stage_figures(self) -> StageFigures | None:
        run, lv = self.run, self.run.level
        t_measure = run.t_stage + (lv.warmup_s if lv else 0.0)
        if lv is None or run.t < t_measure:
            return None
        if self.key != (lv.step, run.t_stage):
            self.key, self.samples = (lv.step, run.t_stage), []
        self.samples.append((run.t - t_measure, run.in_flight))
        ended = [r for r in run.rows if r.done and t_measure < r.t_last <= run.t]
        good = sum(self.slo.is_good(r.t_first - r.t_send, _tpot(r), r.t_last - r.t_send) for r in ended)
        mid = t_measure + (run.t - t_measure) / 2
        early = [r.t_first - r.t_send for r in ended if r.t_last <= mid]
        late = [r.t_first - r.t_send for r in ended if r.t_last > mid]
        trend = slope([(x, float(y)) for x, y in self.samples])
        dt = run.t - t_measure
        return StageFigures(
            elapsed_s=dt, ended=len(ended), good=good, ok_rps=len(ended) / dt if dt > 0 else None,
            in_flight=run.in_flight, in_flight_slope_rps=trend[0] if trend else None,
            in_flight_slope_low_rps=trend[1] if trend else None,
            ttft_p50_early_s=statistics.median(early) if early else None,
            ttft_p50_late_s=statistics.median(late) if late else None,
        )  # fmt: skip


def _tpot(r: Row) -> float | None:
    return (r.t_last - r.t_first) / (r.out - 1) if r.out > 1 else None


def search(
    profile: Profile, make_request, slo: Slo, seed: int, args: argparse.Namespace
) -> tuple[VirtualRun, SearchSchedule]:
    run = VirtualRun(profile, make_request, seed)
    sched = SearchSchedule(by=args.by, precision=args.precision, probe_s=args.probe_s,
                           warmup_s=args.probe_s * 0.25, duration_s=args.budget_s)  # fmt: skip
    sched.bind(VirtualProgress(run, slo))
    t, level = 0.0, None
    while (lv := sched.level_at(t)) is not None:
        if lv != level:
            run.set_level(lv, t + (0.25 if lv.rate_rps else 0.0))
            level = lv
        run.advance(t + 1.0)
        t += 1.0
    run.stages[-1]["t_end_unix"] = T0 + run.t
    run.level = None
    run.ended_s = run.t
    run.advance(run.t + 600.0)  # the engine finishes what it holds
    return run, sched


def write_folder(run: VirtualRun, sched: SearchSchedule, slo: Slo, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cols = ["worker", "user", "step", "target_users", "t_scheduled_unix", "t_start_unix", "ttft_s", "e2e_s",
            "tpot_s", "itl_s", "prompt_tokens", "output_tokens", "ok", "error"]  # fmt: skip
    with open(folder / "requests.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i, r in enumerate(run.rows):
            tp = _tpot(r)
            w.writerow(["v", i, r.step, r.users, "" if r.t_sched is None else f"{T0 + r.t_sched:.6f}",
                        f"{T0 + r.t_send:.6f}", f"{r.t_first - r.t_send:.6f}", f"{r.t_last - r.t_send:.6f}",
                        "" if tp is None else f"{tp:.6f}", "", r.prompt, r.out, "true", ""])  # fmt: skip
    meta = {"name": folder.name, "stages": run.stages, "slo": slo.to_dict(), "t_start_unix": T0,
            "shape": {"name": "SearchSchedule", "params": sched.describe()}}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(meta, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="latency")
    ap.add_argument("--set", action="append", default=[], help="profile override KEY=VALUE (simserver --set)")
    ap.add_argument("--slo", default="ttft=100ms")
    ap.add_argument("--input", default="40,80", help="prompt tokens: low,high (uniform)")
    ap.add_argument("--output", default="8,16", help="max_tokens: low,high (uniform)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--by", choices=["rate", "users"], default="rate")
    ap.add_argument("--probe-s", type=float, default=10.0)
    ap.add_argument("--precision", type=float, default=0.05)
    ap.add_argument("--budget-s", type=float, default=600.0)
    ap.add_argument("--keep", type=Path, help="keep the run folders here")
    args = ap.parse_args()
    profile, slo = apply_overrides(load_profile(args.profile), args.set), parse_slo(args.slo)
    lo_in, hi_in = (int(x) for x in args.input.split(","))
    lo_out, hi_out = (int(x) for x in args.output.split(","))

    def make(rng: random.Random) -> Request:
        return random_chat(rng, (lo_in, hi_in), (lo_out, hi_out))

    t = time.perf_counter()
    if args.by == "rate":
        truth, _ = open_loop_capacity(
            profile, slo, make, start_rps=4.0, duration_s=600.0, seeds=(101, 102, 103)
        )
    else:
        truth, _ = closed_loop_capacity(profile, slo, make, duration_s=600.0, seeds=(101, 102, 103))
    print(
        f"known capacity ({args.profile}, {slo.describe()}): {truth:.3f} {args.by} ({time.perf_counter() - t:.0f} s)"
    )
    root = args.keep or Path(tempfile.mkdtemp(prefix="goodput-search-"))
    hits, widths, spans, points = 0, [], [], []
    for i in range(args.runs):
        run, sched = search(profile, make, slo, 1000 + i, args)
        folder = root / f"search-{i}"
        write_folder(run, sched, slo, folder)
        cap = api.analyze(api.load_run(folder), slo).summary.capacity
        iv = cap.interval
        ok = iv is not None and iv.contains(truth)
        hits += ok
        if iv is not None and iv.low is not None and iv.high is not None and cap.value:
            widths.append((iv.high - iv.low) / 2 / cap.value)
        points.append(cap.value or 0.0)
        spans.append(run.ended_s)
        print(f"run {i}: capacity {cap.value} interval {iv.to_list() if iv else None} "
              f"{'holds' if ok else 'MISSES'} truth; {len(sched.probes)} probes, {run.ended_s:.0f} s; {sched.outcome}")  # fmt: skip
    print(f"coverage {hits}/{args.runs} = {hits / args.runs:.0%}; half-width median "
          f"{statistics.median(widths):.1%} max {max(widths):.1%}; point/truth median "
          f"{statistics.median(points) / truth:.3f}; run length median {statistics.median(spans):.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
