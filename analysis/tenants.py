"""A mixed run's figures per tenant class (`--mix`), each class judged against its own SLO.

The classes and their SLOs come from run.json's `mix` (written by the load path; a row's class is its
`tenant` column). Every figure uses the one definition the whole run uses (analysis/metrics.py,
analysis/windows.py) on the class's rows:
- counts: the class's requests sent in the run's window; rates: what of the class completed (or, for
  tokens, arrived) inside **the run's window** / its length. The classes partition the rows and share
  the window, so their requests, completions, req/s and output tok/s add up to the run's exactly.
- good: completed and within the class's own SLO; goodput and attainment as for the run. The mix's
  good, goodput and attainment are the classes' summed: each request judged by its own class's SLO.
- per level: the class's requests sent in each of the run's load levels (same windows, same load axis:
  the whole mix's users or req/s), its attainment and goodput there; the class's capacity is where its
  attainment crosses its own target along the mix's load (analysis/steps.py `capacity_at_slo`, truncated
  levels left out); the mix's capacity is the lowest class capacity: where the first class breaks.
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
from analysis.tenantresults import TenantFigures, TenantLevel, Tenants
from core.slo import Slo, SloError

UNNAMED = "(none)"  # rows of a mixed run without a class (none are written; older or hand-made files)


@dataclasses.dataclass(frozen=True)
class _Class:
    name: str
    dataset: str
    share_pct: float | None
    slo: Slo


def classes(meta: dict, df: pd.DataFrame, primary: Slo) -> list[_Class]:
    """run.json's classes, then any class the rows carry that run.json does not name (judged by `primary`)."""
    mix = meta.get("mix") if isinstance(meta.get("mix"), dict) else {}
    out: list[_Class] = []
    for c in mix.get("classes") or []:
        if not isinstance(c, dict) or not c.get("name"):
            continue
        try:
            slo = Slo.from_dict(c["slo"]) if isinstance(c.get("slo"), dict) else primary
        except (SloError, KeyError, TypeError, ValueError):
            slo = primary
        share = c.get("share_pct")
        out.append(_Class(str(c["name"]), str(c.get("dataset") or ""), _num(share), slo))
    if "tenant" in df:
        seen = {c.name for c in out}
        values = pd.unique(df["tenant"].astype(object).fillna("").to_numpy())
        if out or any(v for v in values):
            for v in sorted(str(x) for x in values if str(x) not in seen):
                out.append(_Class(v or UNNAMED, "", None, primary))
    return out


def class_values(meta: dict, df: pd.DataFrame, primary: Slo) -> list[tuple[str, str]]:
    """Each class's name and the `tenant` value its rows carry (`UNNAMED`'s carry none), in `classes` order."""
    return [(c.name, _value(c.name)) for c in classes(meta, df, primary)]


def _value(name: str) -> str:
    """The `tenant` value of a class's rows: its name, none for `UNNAMED`."""
    return "" if name == UNNAMED else name


def tenant_figures(
    df: pd.DataFrame,
    itl: pa.ChunkedArray,
    meta: dict,
    primary: Slo,
    rows: tuple[np.ndarray, np.ndarray],
    tp: Throughput,
    steps: list[Step],
    unit: str,
) -> Tenants | None:
    """Each class's figures (module doc); None for a run without classes. `rows`: (in the run's
    headline, counted in their level) masks, as analysis/summary.py selects them."""
    found = classes(meta, df, primary)
    if not found:
        return None
    in_run, in_step = rows
    tenant = df["tenant"].astype(object).fillna("").to_numpy() if "tenant" in df else np.full(len(df), "")
    figures = []
    for c in found:
        mine = tenant == _value(c.name)
        figures.append(_one(df, itl, c, mine, in_run, in_step, tp, steps, unit))
    mix = meta.get("mix") if isinstance(meta.get("mix"), dict) else {}
    good = sum(f.good for f in figures)
    judged_n = sum(f.requests - f.cancelled for f in figures)
    goodputs = [f.goodput_req_per_s for f in figures if f.goodput_req_per_s is not None]
    capacity, limiting = _mix_capacity(figures)
    return Tenants(
        spec=str(mix.get("spec") or ""),
        label=str(mix.get("label") or " + ".join(f.name for f in figures)),
        classes=figures,
        good=good,
        goodput_req_per_s=sum(goodputs) if goodputs else None,
        slo_attainment=good / judged_n if judged_n else None,
        capacity=capacity,
        limiting=limiting,
    )


def _one(df: pd.DataFrame, itl: pa.ChunkedArray, c: _Class, mine: np.ndarray, in_run: np.ndarray,
         in_step: np.ndarray, tp: Throughput, steps: list[Step], unit: str) -> TenantFigures:  # fmt: skip
    rows = in_run & mine
    sel = df[rows]
    ok = df["ok"].to_numpy(dtype=bool)
    good = good_mask(df, c.slo) & mine
    t0, t1, dur = tp.t_start_unix, tp.t_end_unix, tp.duration_s
    done = win.completed_in(df, ok & mine, t0, t1)
    window = [(t0, float(np.nextafter(t1, np.inf)))]
    tokens = float(win.tokens_in_windows(df, itl, win.generated(df) & mine, window)[0])
    n_judged = int(judged(sel).sum())
    goodput = rate(int((done & good).sum()), dur)
    levels, capacity = _levels(df, in_step & mine, good, steps, c.slo, unit)
    return TenantFigures(
        name=c.name,
        dataset=c.dataset,
        share_pct=c.share_pct,
        requests=len(sel),
        ok=int(ok[rows].sum()),
        cancelled=len(sel) - n_judged,
        good=int(good[rows].sum()),
        req_per_s=rate(int(done.sum()), dur),
        output_tok_per_s=rate(tokens, dur),
        goodput_req_per_s=goodput,
        slo_attainment=int(good[rows].sum()) / n_judged if n_judged else None,
        ttft=dist(latency_values(sel, "ttft_s")),
        tpot=dist(latency_values(sel, "tpot_s")),
        e2e=dist(latency_values(sel, "e2e_s")),
        verdict=_verdict(df, itl, rows, ok, c.slo, goodput),
        capacity=capacity,
        levels=levels,
    )


def _verdict(df: pd.DataFrame, itl: pa.ChunkedArray, rows: np.ndarray, ok: np.ndarray, slo: Slo,
             goodput: float | None) -> Verdict:  # fmt: skip
    """The class's SLO on its rows; its goodput over the run's window (as the class figures)."""
    if not rows.any():
        return Verdict(slo.name, slo.describe(), None, slo.attain_target, goodput, [], False)
    # a class's ITL percentiles need its own gaps: parsed only when its SLO checks ITL
    gaps = itl_distribution(itl, rows & ok) if any(p.metric == "itl" for p in slo.percentiles) else None
    return dataclasses.replace(verdict(df, rows, gaps, slo), goodput_req_per_s=goodput)  # type: ignore[arg-type]


def _levels(df: pd.DataFrame, rows: np.ndarray, good: np.ndarray, steps: list[Step], slo: Slo,
            unit: str) -> tuple[list[TenantLevel], Capacity | None]:  # fmt: skip
    """The class at each of the run's levels, and its capacity along them (None without levels)."""
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
        levels.append(TenantLevel(s.step, s.load, n, g, g / j if j else None, rate(g, s.duration_s),
                                  s.truncated is not None))  # fmt: skip
        mine.append(dataclasses.replace(s, requests=n, cancelled=n - j, good=g))
    return levels, capacity_at_slo(mine, slo.attain_target, unit)


def _mix_capacity(figures: list[TenantFigures]) -> tuple[Capacity | None, str | None]:
    """The lowest class capacity and its class: the mix holds every SLO up to there. A class that met
    its target at no level gives the mix none (its Capacity says so)."""
    caps = [(f.capacity, f.name) for f in figures if f.capacity is not None and f.requests]
    if not caps:
        return None, None
    broken = [(c, n) for c, n in caps if c.value is None]
    if broken:
        return broken[0]
    return min(caps, key=lambda cn: (cn[0].value, cn[0].bounded is False))


def _num(v: object) -> float | None:
    return float(v) if win.is_num(v) else None  # type: ignore[arg-type]
