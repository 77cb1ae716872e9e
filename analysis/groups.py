"""One group of a run's rows — a mix class (`tenant`), a model (`model`) — judged against one SLO.

The tenant classes (analysis/tenants.py, each against its own SLO) and the per-model breakdown
(analysis/models.py, against the run's primary SLO) are the same computation on a different column:
it lives here once. Every figure uses the one definition the whole run uses (analysis/metrics.py,
analysis/windows.py) on the group's rows:
- counts: the group's requests sent in the run's window; rates: what of the group completed (or, for
  tokens, arrived) inside **the run's window** / its length. Groups that partition the rows share the
  window, so their requests, completions, req/s and output tok/s add up to the run's exactly.
- good: completed and within the SLO; goodput and attainment as for the run.
- per level: the group's requests sent in each of the run's load levels (same windows, same load axis:
  the whole run's users or req/s), its attainment and goodput there; the group's capacity is where its
  attainment crosses the SLO's target along the run's load (analysis/steps.py `capacity_at_slo`,
  truncated levels left out).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import windows as win
from analysis.itl import itl_distribution
from analysis.metrics import dist, good_mask, judged, latency_values, rate, verdict
from analysis.results import Capacity, Step, Throughput, Verdict
from analysis.steps import capacity_at_slo
from analysis.tenantresults import GroupFigures, GroupLevel
from core.slo import Slo


@dataclasses.dataclass(frozen=True)
class RunRows:
    """What every group of one run shares: the rows, their ITL strings, the headline's selection
    (`in_run`: in the run's headline; `in_step`: counted in their level, as analysis/summary.py
    selects them), the run's window (`tp`) and its levels on their load axis."""

    df: pd.DataFrame
    itl: pa.ChunkedArray
    in_run: np.ndarray
    in_step: np.ndarray
    tp: Throughput
    steps: list[Step]
    unit: str


def column(df: pd.DataFrame, name: str) -> np.ndarray:
    """A text column's values as strings ("" where empty or where the run has no such column)."""
    if name not in df:
        return np.full(len(df), "", dtype=object)
    return df[name].astype(object).fillna("").astype(str).to_numpy()


def group_figures(r: RunRows, name: str, mine: np.ndarray, slo: Slo) -> GroupFigures:
    """The figures of the rows `mine` (module doc) against `slo`."""
    df = r.df
    rows = r.in_run & mine
    sel = df[rows]
    ok = df["ok"].to_numpy(dtype=bool)
    good = good_mask(df, slo) & mine
    t0, t1, dur = r.tp.t_start_unix, r.tp.t_end_unix, r.tp.duration_s
    done = win.completed_in(df, ok & mine, t0, t1)
    window = [(t0, float(np.nextafter(t1, np.inf)))]
    tokens = float(win.tokens_in_windows(df, r.itl, win.generated(df) & mine, window)[0])
    n_judged = int(judged(sel).sum())
    n_good = int(good[rows].sum())
    goodput = rate(int((done & good).sum()), dur)
    levels, capacity = _levels(df, r.in_step & mine, good, r.steps, slo, r.unit)
    return GroupFigures(
        name=name,
        requests=len(sel),
        ok=int(ok[rows].sum()),
        cancelled=len(sel) - n_judged,
        good=n_good,
        req_per_s=rate(int(done.sum()), dur),
        output_tok_per_s=rate(tokens, dur),
        goodput_req_per_s=goodput,
        slo_attainment=n_good / n_judged if n_judged else None,
        ttft=dist(latency_values(sel, "ttft_s")),
        tpot=dist(latency_values(sel, "tpot_s")),
        e2e=dist(latency_values(sel, "e2e_s")),
        verdict=_verdict(df, r.itl, rows, ok, slo, goodput),
        capacity=capacity,
        levels=levels,
    )


def _verdict(df: pd.DataFrame, itl: pa.ChunkedArray, rows: np.ndarray, ok: np.ndarray, slo: Slo,
             goodput: float | None) -> Verdict:  # fmt: skip
    """The SLO on the group's rows; its goodput over the run's window (as the group's figures)."""
    if not rows.any():
        return Verdict(slo.name, slo.describe(), None, slo.attain_target, goodput, [], False)
    # a group's ITL percentiles need its own gaps: parsed only when the SLO checks ITL
    gaps = itl_distribution(itl, rows & ok) if any(p.metric == "itl" for p in slo.percentiles) else None
    return dataclasses.replace(verdict(df, rows, gaps, slo), goodput_req_per_s=goodput)  # type: ignore[arg-type]


def _levels(df: pd.DataFrame, rows: np.ndarray, good: np.ndarray, steps: list[Step], slo: Slo,
            unit: str) -> tuple[list[GroupLevel], Capacity | None]:  # fmt: skip
    """The group at each of the run's levels, and its capacity along them (None without levels)."""
    if not steps:
        return [], None
    step_of = df["step"].to_numpy()[rows]
    counts = pd.DataFrame({"step": step_of, "judged": judged(df[rows]), "good": good[rows]})
    agg = counts.groupby("step").agg(
        requests=("judged", "size"), judged=("judged", "sum"), good=("good", "sum")
    )
    levels, mine = [], []
    for s in steps:
        n, j, g = (
            int(agg.at[s.step, k]) if s.step in agg.index else 0 for k in ("requests", "judged", "good")
        )
        levels.append(GroupLevel(s.step, s.load, n, g, g / j if j else None, rate(g, s.duration_s),
                                 s.truncated is not None))  # fmt: skip
        mine.append(dataclasses.replace(s, requests=n, cancelled=n - j, good=g))
    return levels, capacity_at_slo(mine, slo.attain_target, unit)


def lowest_capacity(figures: list[GroupFigures]) -> tuple[Capacity | None, str | None]:
    """The lowest group capacity and its group: every group holds its SLO up to there. A group that
    met its target at no level gives none (its Capacity says so); one with no request judged (none
    sent, or every one cancelled by the load generator) has nothing to say and is left out."""
    caps = [(f.capacity, f.name) for f in figures if f.capacity is not None and f.requests > f.cancelled]
    if not caps:
        return None, None
    broken = [(c, n) for c, n in caps if c.value is None]
    if broken:
        return broken[0]
    return min(caps, key=lambda cn: (cn[0].value, cn[0].bounded is False))
