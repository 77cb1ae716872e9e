"""The Pareto view of a comparison: which configuration gives the best trade-off at each load, per SLO.

"There is no single best framework" (DESIGN.md) shows as a frontier that several configurations own
parts of. As the comparison marks its best cells, the view is drawn per dataset (the request
distribution decides the ranking). Each point is one complete load level of one configuration (its
best run, as the comparison table's row; truncated levels left out, as from capacity):
- **throughput**: the level's output tokens/s (all requests, analysis/windows.py);
- **interactivity** (per-user output tokens/s): 1 / the level's median TPOT — the pace one user reads
  at while its answer streams (InferenceMAX's tok/s/user); a level without a TPOT has none;
- **the frontier, per SLO**: among the levels that met the SLO (attainment ≥ its target), those no
  other such level beats on both axes (≥ on both and > on one): the best trade-offs within the SLO.
  Equal points are all on it. A level that missed the SLO is drawn but never on the frontier.
- **goodput against load**: the levels' goodput; at each load value, the configuration(s) with the
  highest goodput there are marked (ties all marked): the upper envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.compare import Comparison
from analysis.results import Summary
from core.slo import Slo


@dataclass(frozen=True)
class ParetoPoint:
    """One complete load level of one configuration."""

    label: str  # the configuration (the comparison row's label)
    step: int
    load: float
    unit: str  # users or req/s
    output_tok_per_s: float | None
    per_user_tok_per_s: float | None  # 1 / median TPOT
    goodput_req_per_s: float | None
    slo_attainment: float | None
    meets_slo: bool
    frontier: bool  # on the throughput–interactivity frontier of the levels that met the SLO
    best_goodput: bool  # the highest goodput at its load (among levels in the same unit)


@dataclass(frozen=True)
class Pareto:
    """One dataset's points under one SLO."""

    slo: Slo
    points: list[ParetoPoint]
    dataset: str = ""

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(p.label for p in self.points))

    def of(self, label: str) -> list[ParetoPoint]:
        """One configuration's points by load."""
        return sorted((p for p in self.points if p.label == label), key=lambda p: p.load)

    @property
    def owners(self) -> list[str]:
        """The configurations with a level on the frontier (several: no single best)."""
        return list(dict.fromkeys(p.label for p in self.points if p.frontier))


def non_dominated(points: list[tuple[float, float]]) -> list[bool]:
    """For each (x, y): no other point has ≥ on both and > on one (both maximized; equal points all stay)."""
    return [
        not any(qx >= x and qy >= y and (qx > x or qy > y) for qx, qy in points) for x, y in points
    ]  # fmt: skip


def best_at_load(points: list[tuple[str, float, float | None]]) -> list[bool]:
    """For each (unit, load, goodput): the highest goodput among the points at the same unit and load."""
    top: dict[tuple[str, float], float] = {}
    for unit, load, g in points:
        if g is not None:
            top[(unit, load)] = max(g, top.get((unit, load), g))
    return [g is not None and g == top[(unit, load)] for unit, load, g in points]


def pareto(series: list[tuple[str, Summary]], slo: Slo, dataset: str = "") -> Pareto:
    """The points of each (label, summary analyzed under `slo`) of one dataset, frontier and envelope marked."""
    raw = []
    for label, s in series:
        for st in s.steps:
            if st.truncated:
                continue
            tpot = st.tpot.p50
            per_user = 1.0 / tpot if tpot else None
            met = st.slo_attainment is not None and st.slo_attainment >= slo.attain_target
            raw.append((label, st, per_user, met))
    candidates = [
        i for i, (_, st, per_user, met) in enumerate(raw) if met and per_user and st.output_tok_per_s is not None
    ]  # fmt: skip
    xy = [(raw[i][1].output_tok_per_s or 0.0, raw[i][2] or 0.0) for i in candidates]
    on = {i for i, keep in zip(candidates, non_dominated(xy), strict=True) if keep}
    best = best_at_load([(st.unit, st.load, st.goodput_req_per_s) for _, st, _, _ in raw])
    points = [
        ParetoPoint(label, st.step, st.load, st.unit, st.output_tok_per_s, per_user, st.goodput_req_per_s,
                    st.slo_attainment, met, i in on, best[i])
        for i, (label, st, per_user, met) in enumerate(raw)
    ]  # fmt: skip
    return Pareto(slo, points, dataset)


def of_comparison(c: Comparison) -> list[Pareto]:
    """Per dataset, one line per comparison row: its best run's levels, under the comparison's SLO."""
    by_dir = {s.run.dir: s for s in c.summaries}
    out = []
    for ds in dict.fromkeys(r.dataset for r in c.rows):
        series = [(r.label, by_dir[r.best_run]) for r in c.rows if r.dataset == ds and r.best_run in by_dir]
        out.append(pareto(series, c.slo, ds))
    return out
