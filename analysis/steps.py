"""Per load level: percentiles, throughput, goodput over the level's window; capacity at SLO between levels.

A level is a stage of run.json (`stages[]`), its rows those *sent* in it (warm-up/cool-down and the
start-up excluded); every rate divides by the level's window (analysis/windows.py, the one
definition). The load of a level is in one unit per run, never mixed on one axis:
- a run whose stages all run closed loop: users (`target_users`);
- a run with any open-loop stage (rates, sweeps): requests per second — an open-loop stage at its
  `rate_rps`, a closed-loop stage (a sweep's synchronous and throughput stages) at the rate it
  achieved (requests sent in its window / the window), as GuideLLM places them on its sweep curve.
Truncated levels (analysis/windows.py `truncation`) are marked and left out of capacity. Capacity
carries its 95 % interval (analysis/intervals.py `capacity_draws`: the same rule on resampled levels).
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import windows as win
from analysis.intervals import BLOCKS, LEVEL, capacity_draws, from_draws
from analysis.load import stages_by_step
from analysis.metrics import end_times, judged, rate
from analysis.results import Capacity, Level, Step, StepPercentiles
from core.stage import users_label

STEP_PCTS = (0.5, 0.95, 0.99)
USERS, RPS = "users", "req/s"


@dataclass(frozen=True)
class Levels:
    """What the level table needs besides the rows: run.json, the ITL strings, which rows count."""

    meta: dict
    itl: pa.ChunkedArray
    rows: np.ndarray  # rows counted in their level (warm-up, cool-down and start-up left out)
    not_before: float | None = None  # the start-up's end: the first level's window starts there


def load_unit(meta: dict, steps_present: list[int]) -> str:
    """`req/s` when any level present ran open loop (its load is a rate), else `users`."""
    stages = stages_by_step(meta)
    return RPS if any(stages.get(s, {}).get("rate_rps") is not None for s in steps_present) else USERS


def step_table(df: pd.DataFrame, good: np.ndarray, lv: Levels) -> tuple[list[Step], str]:
    """One row per level, sorted by step; and the load unit."""
    keep = lv.rows
    sel = df.loc[keep, ["step", "target_users", "t_start_unix", "e2e_s", "ok", "ttft_s", "tpot_s"]]
    if sel.empty:
        return [], USERS
    sel = sel.assign(good=good[keep], judged=judged(df.loc[keep]))
    agg = sel.groupby("step", sort=True).agg(
        requests=("ok", "size"),
        ok=("ok", "sum"),
        good=("good", "sum"),
        judged=("judged", "sum"),
        first_send=("t_start_unix", "min"),
        target_users=("target_users", "max"),
    )
    ok_rows = sel[sel["ok"].to_numpy(dtype=bool)]
    pct = ok_rows.groupby("step", sort=True)[["ttft_s", "tpot_s", "e2e_s"]].quantile(list(STEP_PCTS))
    steps = [int(s) for s in agg.index]
    spans = level_windows(df, agg["first_send"], lv)
    tokens = tokens_per_window(df, lv.itl, [spans[s] for s in steps])
    unit = load_unit(lv.meta, steps)
    stages = stages_by_step(lv.meta)
    rows = []
    for (step, a), out_tok in zip(agg.iterrows(), tokens, strict=True):
        st = stages.get(int(step))
        t0, t1 = spans[int(step)]
        dur = t1 - t0
        n, cancelled = int(a["requests"]), int(a["requests"] - a["judged"])
        load, basis = _load(st, unit, int(a["target_users"]), n, dur)
        rows.append(
            Step(
                step=int(step),
                label=str(
                    (st or {}).get("label") or (f"{load:.3g} req/s" if unit == RPS else users_label(load))
                ),
                load=load,
                target_users=int(a["target_users"]),
                rate_rps=(st or {}).get("rate_rps"),
                requests=n,
                ok=int(a["ok"]),
                errors=int(a["requests"] - a["ok"]),
                good=int(a["good"]),
                cancelled=cancelled,
                t_start_unix=t0,
                t_end_unix=t1,
                duration_s=dur,
                req_per_s=rate(a["ok"], dur),
                output_tok_per_s=rate(out_tok, dur),
                goodput_req_per_s=rate(a["good"], dur),
                slo_attainment=float(a["good"]) / float(a["judged"]) if a["judged"] else None,
                ttft=_percentiles(pct, step, "ttft"),
                tpot=_percentiles(pct, step, "tpot"),
                e2e=_percentiles(pct, step, "e2e"),
                unit=unit,
                load_basis=basis,
                truncated=win.truncation(st, win.planned_s(lv.meta, st) if st else None, n, cancelled),
            )
        )
    return rows, unit


def level_windows(df: pd.DataFrame, first_sends: pd.Series, lv: Levels) -> dict[int, tuple[float, float]]:
    """Each level's window: its stage's span (analysis/windows.py), or its sends' span without run.json."""
    stages = stages_by_step(lv.meta)
    first = win.first_stage(lv.meta)
    run_end = float(end_times(df).max())
    fallback = win.fallback_windows({int(s): float(t) for s, t in first_sends.items()}, run_end)
    out = {}
    for step in fallback:
        st = stages.get(step)
        if st is not None and win.is_num(st.get("t_start_unix")):
            out[step] = win.level_window(st, lv.not_before if st is first else None, run_end)
        else:
            out[step] = fallback[step]
    return out


def tokens_per_window(df: pd.DataFrame, itl: pa.ChunkedArray, spans: list[tuple[float, float]]) -> np.ndarray:
    """Output tokens that arrived in each level's window (any level's requests; `windows.generated`)."""
    ok = win.generated(df)
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])
    disjoint = all(spans[i][1] <= spans[j][0] for i, j in itertools.pairwise(order))
    if disjoint:
        return win.tokens_in_windows(df, itl, ok, spans)
    return np.array([win.tokens_in_windows(df, itl, ok, [w])[0] for w in spans])


def _load(st: dict | None, unit: str, users: int, sent: int, dur: float) -> tuple[float, str]:
    """(load level, what it is): users; an open-loop stage's rate; a closed-loop stage's achieved rate."""
    if unit == USERS:
        return float(users), "target_users"
    if st is not None and st.get("rate_rps") is not None:
        return float(st["rate_rps"]), "rate_rps"
    return (sent / dur if dur > 0 else 0.0), "achieved_rps"


def _percentiles(pct: pd.DataFrame, step: object, metric: str) -> StepPercentiles:
    """The step's p50/p95/p99 of `metric` from the grouped quantile table (None: no completed request)."""
    v = [pct[f"{metric}_s"].get((step, q), np.nan) if len(pct) else np.nan for q in STEP_PCTS]
    return StepPercentiles(*(None if pd.isna(x) else float(x) for x in v))


class LevelSpans:
    """Which span of its level's window each counted row was sent in (`BLOCKS` equal spans), worked out
    once per run: `counts(good)` gives, per level, the judged and good requests of each span — what
    the capacity interval resamples (analysis/intervals.py) — for any SLO's good mask."""

    def __init__(self, df: pd.DataFrame, rows: np.ndarray, steps: list[Step]) -> None:
        self.steps = [s.step for s in steps]
        ids = np.array(self.steps, dtype=np.int64)
        order = np.argsort(ids)
        step_of = df["step"].to_numpy()
        pos = np.clip(np.searchsorted(ids[order], step_of), 0, max(len(ids) - 1, 0))
        level = order[pos] if len(ids) else np.zeros(len(df), dtype=np.int64)
        self.keep = rows & judged(df) & (ids[level] == step_of if len(ids) else False)
        t0 = np.array([s.t_start_unix for s in steps])[level]
        span = np.maximum(np.array([s.t_end_unix - s.t_start_unix for s in steps])[level], 1e-9)
        t = df["t_start_unix"].to_numpy()
        block = np.clip(((t - t0) / span * BLOCKS).astype(np.int64), 0, BLOCKS - 1)
        self.key = (level * BLOCKS + block)[self.keep]
        n = len(ids) * BLOCKS
        self.judged = np.bincount(self.key, minlength=n).astype(np.float64).reshape(-1, BLOCKS)

    def counts(self, good: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        g = np.bincount(self.key[good[self.keep]], minlength=self.judged.size).astype(np.float64)
        g = g.reshape(-1, BLOCKS)
        return {step: (self.judged[i], g[i]) for i, step in enumerate(self.steps)}


def good_by_step(df: pd.DataFrame, rows: np.ndarray, good: np.ndarray) -> dict[int, int]:
    """Good requests per level under one SLO's mask (rows counted in their level only)."""
    steps = df["step"].to_numpy()[rows]
    counts = pd.Series(good[rows].astype(np.int64)).groupby(steps).sum()
    return {int(k): int(v) for k, v in counts.items()}


def capacity_at_slo(
    steps: list[Step],
    target: float,
    unit: str,
    good: dict[int, int] | None = None,
    blocks: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> Capacity:
    """Highest load level whose attainment ≥ target, interpolated linearly towards the next level.

    Truncated steps are left out; steps at the same load level are pooled. If the highest passing
    level is also the highest complete one, capacity is only a lower bound (`bounded` False). If
    attainment dips below the target at a lower level and recovers, the note says so. `good`
    gives another SLO's good count per step (default: the steps' own), `blocks` the judged and good
    counts per span of each level's window that its interval resamples (`LevelSpans`; without
    them, single requests). Levels in different units are refused: they do not lie on one axis.
    """
    mixed = {s.unit for s in steps} - {unit}
    if mixed:
        raise ValueError(
            f"capacity: load levels in {unit} and {', '.join(sorted(mixed))} do not lie on one axis"
        )
    if not steps:
        return Capacity(None, unit, target, True, None, "no steps to evaluate", None)
    excluded = [s.step for s in steps if s.truncated]
    usable = [s for s in steps if not s.truncated]
    if not usable:
        note = "no complete load level to judge: every level was truncated"
        return Capacity(None, unit, target, True, None, note, None, excluded)
    pooled: dict[float, list[int]] = {}
    spans: dict[float, list[tuple[np.ndarray, np.ndarray]]] = {}
    for s in usable:
        acc = pooled.setdefault(s.load, [0, 0])
        n, g = s.requests - s.cancelled, s.good if good is None else good.get(s.step, 0)
        acc[0] += n
        acc[1] += g
        spans.setdefault(s.load, []).append(
            blocks[s.step] if blocks and s.step in blocks else (np.ones(n), np.repeat([1.0, 0.0], [g, n - g]))
        )
    xs = sorted(x for x in pooled if pooled[x][0])
    att = [pooled[x][1] / pooled[x][0] for x in xs]
    cap = _interpolate(xs, att, target, unit, excluded)
    if not xs:
        return cap
    draws, held, att_draws = capacity_draws(np.array(xs), [spans[x] for x in xs], target)
    point = cap.value if cap.value is not None else 0.0
    # no upper end: the point itself is "≥", or too many replicates held up to the highest level
    open_high = (not cap.bounded and cap.value is not None) or held > (1 - LEVEL) / 2
    levels = [
        dataclasses.replace(lv, interval=from_draws(att_draws[:, k], lv.slo_attainment))
        for k, lv in enumerate(cap.levels or [])
    ]
    return dataclasses.replace(cap, interval=from_draws(draws, point, open_high), levels=levels)


def _interpolate(
    xs: list[float], att: list[float], target: float, unit: str, excluded: list[int]
) -> Capacity:
    levels = [Level(x, a) for x, a in zip(xs, att, strict=True)]
    if not xs:
        return Capacity(None, unit, target, True, None, "no judged request in any level", levels, excluded)
    passing = [i for i, a in enumerate(att) if a >= target]
    if not passing:
        note = f"no load level met {target:.0%} attainment (lowest, {xs[0]:.3g} {unit}: {att[0]:.1%})"
        return Capacity(None, unit, target, True, None, note, levels, excluded)
    i = passing[-1]
    dips = [xs[j] for j in range(i) if att[j] < target]
    notes = (
        [f"attainment fell below target at {', '.join(f'{x:.3g}' for x in dips)} {unit} and recovered"]
        if dips
        else []
    )
    if i == len(xs) - 1:
        notes.append(
            f"every complete level up to the highest ({xs[i]:.3g} {unit}) met the target: capacity ≥ {xs[i]:.3g}"
        )
        return Capacity(xs[i], unit, target, False, None, "; ".join(notes), levels, excluded)
    x0, x1, a0, a1 = xs[i], xs[i + 1], att[i], att[i + 1]
    value = x0 + (a0 - target) / (a0 - a1) * (x1 - x0)
    return Capacity(value, unit, target, True, (x0, x1), "; ".join(notes), levels, excluded)
