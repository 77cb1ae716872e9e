"""A mixed run's figures per tenant class (`--mix`), each class judged against its own SLO.

The classes and their SLOs come from run.json's `mix` (written by the load path; a row's class is its
`tenant` column). A class's figures are analysis/groups.py's, shared with the per-model breakdown
(analysis/models.py); every figure uses the one definition the whole run uses (analysis/metrics.py,
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
from analysis.groups import RunRows, column, group_figures, lowest_capacity
from analysis.results import Step, Throughput
from analysis.tenantresults import TenantFigures, Tenants
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
    run = RunRows(df, itl, rows[0], rows[1], tp, steps, unit)
    tenant = column(df, "tenant")
    figures = [
        TenantFigures(
            **group_figures(run, c.name, tenant == _value(c.name), c.slo).shared(),
            dataset=c.dataset,
            share_pct=c.share_pct,
        )
        for c in found
    ]
    mix = meta.get("mix") if isinstance(meta.get("mix"), dict) else {}
    good = sum(f.good for f in figures)
    judged_n = sum(f.requests - f.cancelled for f in figures)
    goodputs = [f.goodput_req_per_s for f in figures if f.goodput_req_per_s is not None]
    capacity, limiting = lowest_capacity(figures)
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


def _num(v: object) -> float | None:
    return float(v) if win.is_num(v) else None  # type: ignore[arg-type]
