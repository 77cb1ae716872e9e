"""The per-class results of a mixed run (`--mix`): each tenant class judged against its own SLO; and
the figures any group of a run's rows shares (`GroupFigures`, `GroupLevel`), which the per-model
breakdown (analysis/modelresults.py) is made of too.

analysis/groups.py computes a group's figures, analysis/tenants.py the classes; `Summary.tenants`
holds them (analysis/results.py, whose `Dist` and `Verdict` they are made of); summary.json writes
them under `tenants` (README.md § Mixed tenants).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from analysis.results import Dist, Verdict
from analysis.stepresults import Capacity


@dataclass(frozen=True)
class GroupLevel:
    """One group (a class, a model) at one load level (the run's level: users or req/s of the whole run)."""

    step: int
    load: float
    requests: int
    good: int
    slo_attainment: float | None  # None: every request of the group at this level was cancelled
    goodput_req_per_s: float | None  # good requests of the group / the level's window
    truncated: bool

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


TenantLevel = GroupLevel  # a class at a level: the name the tenants' callers know


@dataclass(frozen=True)
class GroupFigures:
    """One group of the run's rows (a mix class, a model): its figures over the run's window, against one SLO.

    Counts are the group's requests sent in the run's window; rates divide what completed (or arrived)
    inside that window by its length — the run's own window, so groups that partition the rows add up
    to the run. `verdict` is the SLO's verdict on the group's rows (`Verdict`, analysis/results.py),
    `capacity` the highest load level of the run at which the group still met its attainment target.
    """

    name: str
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
    verdict: Verdict  # the SLO on the group's rows: attainment ≥ target and its percentile checks
    capacity: Capacity | None
    levels: list[GroupLevel]

    def shared(self) -> dict[str, Any]:
        """The group's own fields, shallow (`dataclasses.asdict` would turn its `Dist`s into dicts):
        what a `TenantFigures` or a `ModelFigures` is built from."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(GroupFigures)}

    def figures_dict(self) -> dict[str, Any]:
        """summary.json's keys of a group after its name (and a class's dataset and SLO)."""
        v = self.verdict
        return {
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
class TenantFigures(GroupFigures):
    """One class of the mix (`GroupFigures` against the class's own SLO), with its dataset and share."""

    dataset: str = ""
    share_pct: float | None = None  # None: rows of a class run.json does not name

    def to_dict(self) -> dict[str, Any]:
        v = self.verdict
        return {
            "name": self.name,
            "dataset": self.dataset,
            "share_pct": self.share_pct,
            "slo": v.slo,
            "slo_describe": v.describe,
            **self.figures_dict(),
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
