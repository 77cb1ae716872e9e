"""A run's figures per model: several models, or LoRA adapters served beside a base model, in one run.

A request's model is requests.csv's `model` column (the name it asked for: `--models a,b` draws one per
conversation, a mix class's `model=NAME` sets its own). The breakdown exists only when the headline's
rows name two models or more: a run of one model, or one from before the column, has none (and
summary.json no `models` key). Where every request named one model but the answers name two or more
(`served_model`: a router that picks a model per request — vLLM's semantic router, OpenRouter's auto —
or a gateway's fallback), the rows are grouped by the model that answered instead (`by` says which
column): the figures of each model a router chose. A failed request that no answer named is in the
group of rows without a name.

Each model's figures are analysis/groups.py's — the tenants' own computation — on the rows that named
it, all judged by the run's primary SLO (the one the headline uses), so a model's attainment answers
"did this model's requests meet the SLO the run is judged by". Rows of such a run without a model
(none are written; hand-made files) form a group of their own, so the models partition the rows and
their requests, completions, req/s and output tok/s add up to the run's exactly. Per level, each
model's capacity is the run's load at which its requests still met the target; the lowest is where
the first model breaks.

`worst` says which model's requests fared worst and how, for the sentence above the table: the lowest
attainment (ties: the largest latency gap), and the latency — TTFT, TPOT or E2E p95 — on which it is
furthest behind the best other model.
"""

from __future__ import annotations

import math

import numpy as np

from analysis.groups import RunRows, column, group_figures, lowest_capacity
from analysis.metrics import dist, latency_values
from analysis.modelresults import UNNAMED, ModelFigures, Models, Worst
from core.slo import Slo

METRICS = ("ttft", "tpot", "e2e")  # the latencies the sentence compares, in the order ties go


def model_figures(run: RunRows, slo: Slo, meta: dict | None = None) -> Models | None:
    """Each model's figures (module doc); None unless the headline's rows name two models or more.
    The models in `--models` order (run.json `models.models`; one that got no request shows with none),
    then any other the rows name, by name."""
    by = "model"
    names = column(run.df, by)
    seen = {str(v) for v in names[run.in_run] if v}
    if len(seen) < 2:  # one model asked for: the models that answered, where they were several
        by = "served_model"
        names = column(run.df, by)
        seen = {str(v) for v in names[run.in_run] if v}
        if len(seen) < 2:
            return None
    given = (meta or {}).get("models") if by == "model" else None
    listed = given.get("models") if isinstance(given, dict) else None
    first = [str(m) for m in listed if str(m)] if isinstance(listed, dict | list) else []
    named = list(dict.fromkeys(first)) + sorted(seen - set(first))
    if (run.in_run & (names == "")).any():
        named.append(UNNAMED)
    figures = []
    for name in named:
        mine = names == ("" if name == UNNAMED else name)
        queue = dist(latency_values(run.df[run.in_run & mine], "engine_queue_s"))
        g = group_figures(run, name, mine, slo)
        figures.append(ModelFigures(**g.shared(), engine_queue_p50_s=queue.p50, engine_queue_p95_s=queue.p95))
    capacity, limiting = lowest_capacity(figures)
    if capacity is not None and capacity.value is not None and not capacity.bounded:
        limiting = None  # every model held the SLO at every complete level: none broke first
    return Models(
        by=by,
        slo=slo.name,
        describe=slo.describe(),
        attain_target=slo.attain_target,
        models=figures,
        capacity=capacity,
        limiting=limiting,
        worst=worst(figures),
    )


def _p95(f: ModelFigures, metric: str) -> float | None:
    return getattr(f, metric).p95


def _gap(f: ModelFigures, figures: list[ModelFigures]) -> tuple[float, str | None, str | None, float | None]:
    """(ratio, metric, best other model, its p95): the latency on which `f` is furthest behind the best
    other model (p95 over p95; ties: METRICS order, then the models' order). A model none of whose
    requests completed is behind on everything (ratio inf)."""
    if f.ttft.n == 0 and f.e2e.n == 0:
        return math.inf, None, None, None
    found: tuple[float, str | None, str | None, float | None] = (0.0, None, None, None)
    for m in METRICS:
        mine = _p95(f, m)
        others = [(v, o.name) for o in figures if o is not f and (v := _p95(o, m)) is not None and v > 0]
        if mine is None or not others:
            continue
        best_v, best = min(others, key=lambda vn: vn[0])
        if mine / best_v > found[0]:
            found = (mine / best_v, m, best, best_v)
    return found


def _alike(judged: list[ModelFigures]) -> bool:
    """Every judged model had the same attainment and the same p95 of every latency."""
    first = judged[0]
    return all(
        f.slo_attainment == first.slo_attainment
        and all(
            (a := _p95(f, m)) == (b := _p95(first, m))
            or (a is not None and b is not None and np.isclose(a, b))
            for m in METRICS
        )
        for f in judged[1:]
    )


def worst(figures: list[ModelFigures]) -> Worst | None:
    """Which model's requests fared worst and how (module doc); None when no model had a request judged."""
    judged = [f for f in figures if f.slo_attainment is not None]
    if not judged:
        return None
    if len(judged) > 1 and _alike(judged):
        return Worst(judged[0].name, None, None, None, None, completed=judged[0].ok > 0, alike=True)
    gaps = {f.name: _gap(f, figures) for f in judged}
    order = {f.name: i for i, f in enumerate(figures)}
    w = min(judged, key=lambda f: (f.slo_attainment, -gaps[f.name][0], order[f.name]))
    ratio, metric, best, best_v = gaps[w.name]
    if w.ok == 0:
        return Worst(w.name, None, None, None, None, completed=False)
    if metric is None or ratio <= 1.0:  # behind on no latency: it fared worst on attainment alone
        top = max((f for f in judged if f is not w), key=lambda f: f.slo_attainment or 0.0, default=None)
        return Worst(w.name, None, None, None if top is None else top.name, None, completed=True)
    return Worst(w.name, metric, _p95(w, metric), best, best_v, completed=True)
