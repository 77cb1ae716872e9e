"""Per step / stage: load level vs percentiles, throughput, goodput; capacity at SLO between load levels.

The load level of a step is its `target_users` (closed loop), or the stage's `rate_rps` from
run.json when it has one (open-loop stages, sweeps): that is the x axis of every load curve, so
one run answers "at what load does the server stop meeting the SLO?".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.load import stages_by_step
from analysis.metrics import judged, rate
from analysis.results import Capacity, Level, Step, StepPercentiles

STEP_PCTS = (0.5, 0.95, 0.99)


def load_unit(meta: dict, steps_present: list[int]) -> str:
    """`req/s` when every step present ran at an arrival rate, else `users`."""
    stages = stages_by_step(meta)
    rated = [s for s in steps_present if stages.get(s, {}).get("rate_rps") is not None]
    return "req/s" if steps_present and len(rated) == len(steps_present) else "users"


def step_table(df: pd.DataFrame, good: np.ndarray, meta: dict) -> tuple[list[Step], str]:
    """One row per step (warm-up/cool-down excluded), sorted by step; and the load unit."""
    keep = df["in_step_stats"].to_numpy()
    sel = df.loc[
        keep, ["step", "target_users", "t_start_unix", "e2e_s", "ok", "output_tokens", "ttft_s", "tpot_s"]
    ]
    if sel.empty:
        return [], "users"
    sel = sel.assign(
        good=good[keep],
        judged=judged(df.loc[keep]),
        t_end=sel["t_start_unix"].to_numpy() + np.nan_to_num(sel["e2e_s"].to_numpy(), nan=0.0),
        out_ok=np.where(sel["ok"].to_numpy(dtype=bool), np.nan_to_num(sel["output_tokens"].to_numpy()), 0.0),
    )
    agg = sel.groupby("step", sort=True).agg(
        requests=("ok", "size"),
        ok=("ok", "sum"),
        good=("good", "sum"),
        judged=("judged", "sum"),
        t0=("t_start_unix", "min"),
        t1=("t_end", "max"),
        out_tok=("out_ok", "sum"),
        target_users=("target_users", "max"),
    )
    ok_rows = sel[sel["ok"].to_numpy(dtype=bool)]
    pct = ok_rows.groupby("step", sort=True)[["ttft_s", "tpot_s", "e2e_s"]].quantile(list(STEP_PCTS))
    stages = stages_by_step(meta)
    unit = load_unit(meta, [int(s) for s in agg.index])
    rows = []
    for step, a in agg.iterrows():
        st = stages.get(int(step), {})
        dur = float(a["t1"] - a["t0"])
        users = int(a["target_users"])
        level = float(st["rate_rps"]) if unit == "req/s" else float(users)
        rows.append(
            Step(
                step=int(step),
                label=str(st.get("label") or (f"{level:g} req/s" if unit == "req/s" else f"{users} users")),
                load=level,
                target_users=users,
                rate_rps=st.get("rate_rps"),
                requests=int(a["requests"]),
                ok=int(a["ok"]),
                errors=int(a["requests"] - a["ok"]),
                good=int(a["good"]),
                cancelled=int(a["requests"] - a["judged"]),
                t_start_unix=float(a["t0"]),
                t_end_unix=float(a["t1"]),
                duration_s=dur,
                req_per_s=rate(a["ok"], dur),
                output_tok_per_s=rate(a["out_tok"], dur),
                goodput_req_per_s=rate(a["good"], dur),
                slo_attainment=float(a["good"]) / float(a["judged"]) if a["judged"] else 0.0,
                ttft=_percentiles(pct, step, "ttft"),
                tpot=_percentiles(pct, step, "tpot"),
                e2e=_percentiles(pct, step, "e2e"),
            )
        )
    return rows, unit


def _percentiles(pct: pd.DataFrame, step: object, metric: str) -> StepPercentiles:
    """The step's p50/p95/p99 of `metric` from the grouped quantile table (None: no completed request)."""
    v = [pct[f"{metric}_s"].get((step, q), np.nan) if len(pct) else np.nan for q in STEP_PCTS]
    return StepPercentiles(*(None if pd.isna(x) else float(x) for x in v))


def capacity_at_slo(steps: list[Step], target: float, unit: str) -> Capacity:
    """Highest load level whose attainment ≥ target, interpolated linearly towards the next level.

    Steps at the same load level are pooled. If the highest passing level is also the highest
    tested, capacity is only a lower bound (`bounded` False). If attainment dips below the target
    at a lower level and recovers, the note says so: the curve is noisy there.
    """
    if not steps:
        return Capacity(None, unit, target, True, None, "no steps to evaluate", None)
    pooled: dict[float, list[int]] = {}
    for s in steps:
        acc = pooled.setdefault(s.load, [0, 0])
        acc[0] += s.requests - s.cancelled
        acc[1] += s.good
    xs = sorted(pooled)
    att = [pooled[x][1] / pooled[x][0] if pooled[x][0] else 0.0 for x in xs]
    levels = [Level(x, a) for x, a in zip(xs, att, strict=True)]
    passing = [i for i, a in enumerate(att) if a >= target]
    if not passing:
        note = f"no load level met {target:.0%} attainment (lowest, {xs[0]:g} {unit}: {att[0]:.1%})"
        return Capacity(None, unit, target, True, None, note, levels)
    i = passing[-1]
    dips = [xs[j] for j in range(i) if att[j] < target]
    note = (
        f"attainment fell below target at {', '.join(f'{x:g}' for x in dips)} {unit} and recovered"
        if dips
        else ""
    )
    if i == len(xs) - 1:
        note = (note + "; " if note else "") + (
            f"every level up to the highest tested ({xs[i]:g} {unit}) met the target: capacity ≥ {xs[i]:g}"
        )
        return Capacity(xs[i], unit, target, False, None, note, levels)
    x0, x1, a0, a1 = xs[i], xs[i + 1], att[i], att[i + 1]
    return Capacity(x0 + (a0 - target) / (a0 - a1) * (x1 - x0), unit, target, True, (x0, x1), note, levels)
