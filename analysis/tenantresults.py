"""The per-class results of a mixed run (`--mix`): each tenant class judged against its own SLO.

analysis/tenants.py computes them; `Summary.tenants` holds them (analysis/results.py, whose `Dist` and
`Verdict` they are made of); summary.json writes them under `tenants` (README.md § Mixed tenants).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from analysis.results import Dist, Verdict
from analysis.stepresults import Capacity


@dataclass(frozen=True)
class TenantLevel:
    """One class at one load level (the run's level: users or req/s of the whole mix)."""

    step: int
    load: float
    requests: int
    good: int
    slo_attainment: float | None  # None: every request of the class at this level was cancelled
    goodput_req_per_s: float | None  # good requests of the class / the level's window
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class TenantFigures:
    """One class of the mix: its rows' figures over the run's window, against the class's own SLO.

    Counts are the class's requests sent in the run's window; rates divide what completed (or arrived)
    inside that window by its length — the run's own window, so the classes' rates add up to the run's.
    `verdict` is the class's SLO verdict on its rows (`Verdict`, analysis/results.py), `capacity` the
    highest load level of the mix at which the class still met its attainment target.
    """

    name: str
    dataset: str
    share_pct: float | None  # None: rows of a class run.json does not name
    requests: int
    ok: int
    cancelled: int
    good: int
    req_per_s: float | None
    output_tok_per_s: float | None
    goodput_req_per_s: float | None
    slo_attainment: float | None
    ttft: Dist
    tpot: Dist
    e2e: Dist
    verdict: Verdict  # the class's SLO on its rows: attainment ≥ target and its percentile checks
    capacity: Capacity | None
    levels: list[TenantLevel]

    def to_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "name": self.name,
            "dataset": self.dataset,
            "share_pct": self.share_pct,
            "slo": v.slo,
            "slo_describe": v.describe,
            "requests": self.requests,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "good": self.good,
            "req_per_s": self.req_per_s,
            "output_tok_per_s": self.output_tok_per_s,
            "goodput_req_per_s": self.goodput_req_per_s,
            "slo_attainment": self.slo_attainment,
            "attain_target": v.attain_target,
            "pass": v.passed,
            "percentile_checks": [c.to_dict() for c in v.checks],
            "ttft_s": self.ttft.to_dict(),
            "tpot_s": self.tpot.to_dict(),
            "e2e_s": self.e2e.to_dict(),
            "capacity": None if self.capacity is None else self.capacity.to_dict(),
            "levels": [lv.to_dict() for lv in self.levels],
        }


@dataclass(frozen=True)
class Tenants:
    """Every class of a mixed run, and the mix as a whole: each request judged by its own class's SLO.

    `capacity` is the mix's: the lowest class capacity (the load at which the first class breaks its
    SLO), `limiting` that class."""

    spec: str
    label: str
    classes: list[TenantFigures]
    good: int
    goodput_req_per_s: float | None
    slo_attainment: float | None
    capacity: Capacity | None
    limiting: str | None

    def of(self, name: str) -> TenantFigures | None:
        return next((c for c in self.classes if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "label": self.label,
            "good": self.good,
            "goodput_req_per_s": self.goodput_req_per_s,
            "slo_attainment": self.slo_attainment,
            "capacity": None if self.capacity is None else self.capacity.to_dict(),
            "limiting_class": self.limiting,
            "classes": [c.to_dict() for c in self.classes],
        }
