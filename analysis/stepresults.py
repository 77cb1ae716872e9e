"""The per-level results: one `Step` per load level (its window, figures, percentiles, truncation)
and the `Capacity` they decide. analysis/steps.py computes them; analysis/results.py re-exports them
with every other result type."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from analysis.intervals import Interval
from analysis.serverfigures import StepServer


@dataclass(frozen=True)
class StepPercentiles:
    """p50 / p95 / p99 of one latency within a step (seconds; None: no samples)."""

    p50: float | None
    p95: float | None
    p99: float | None


_STEP_FIGURES = (
    "step", "label", "load", "target_users", "rate_rps", "requests", "ok", "errors", "good", "cancelled",
    "t_start_unix", "t_end_unix", "duration_s", "req_per_s", "output_tok_per_s", "goodput_req_per_s",
    "slo_attainment",
)  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One load level's row of the step table: its requests (sent in it; warm-up, cool-down and the
    start-up excluded) over its window (`t_start_unix` → `t_end_unix`: the stage's own span,
    analysis/windows.py). `truncated` says why its figures do not describe the whole level (None: they do).

    summary.json keeps the keys; their values changed where the old one was the bug: the window was
    the requests' first send → last completion (every rate biased low by the requests' length), and a
    level whose requests were all cancelled had attainment 0 (now None)."""

    step: int
    label: str
    load: float  # in `unit`: users, or req/s when any level ran open loop (Summary.load_unit)
    target_users: int
    rate_rps: float | None
    requests: int
    ok: int
    errors: int
    good: int
    cancelled: int
    t_start_unix: float
    t_end_unix: float
    duration_s: float
    req_per_s: float | None
    output_tok_per_s: float | None
    goodput_req_per_s: float | None
    slo_attainment: float | None  # None: every request of the level was cancelled
    ttft: StepPercentiles
    tpot: StepPercentiles
    e2e: StepPercentiles
    server: StepServer | None = None
    unit: str = "users"
    load_basis: str = (
        "target_users"  # or "rate_rps" (open loop), "achieved_rps" (closed loop on a req/s axis)
    )
    truncated: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _STEP_FIGURES}
        for name in ("ttft", "tpot", "e2e"):
            p = getattr(self, name)
            out.update({f"{name}_p50_s": p.p50, f"{name}_p95_s": p.p95, f"{name}_p99_s": p.p99})
        out.update(
            load_unit=self.unit,
            load_basis=self.load_basis,
            truncated=self.truncated is not None,
            truncated_reason=self.truncated,
        )
        if self.server is not None:
            out["server"] = self.server
        return out


@dataclass(frozen=True)
class Level:
    """One load level's pooled SLO attainment (the capacity curve)."""

    load: float
    slo_attainment: float
    interval: Interval | None = None  # its attainment's 95 % interval (the capacity's block bootstrap)


CAPACITY_METHOD = "bootstrap over each level's requests, the capacity rule applied to every replicate"


@dataclass(frozen=True)
class Capacity:
    """Capacity at SLO: the highest load level whose attainment ≥ target, interpolated (analysis/steps.py).

    `bounded` is False when every complete level up to the highest met the target (`value` is then a
    lower bound, "≥"); `between` the two levels interpolated between (the second is where it breaks);
    `levels` None when there was no complete level; `excluded` the truncated steps left out;
    `interval` its 95 % interval (analysis/intervals.py: each level's requests resampled, the same
    rule applied to every replicate; no upper end when the levels held up to the highest too often).
    """

    value: float | None
    unit: str
    target: float
    bounded: bool
    between: tuple[float, float] | None
    note: str
    levels: list[Level] | None
    excluded: list[int] = dataclasses.field(default_factory=list)
    interval: Interval | None = None

    @property
    def breaks_at(self) -> float | None:
        """The first level below the target after the capacity (None: no level broke it)."""
        return self.between[1] if self.between else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "bounded": self.bounded,
            "between": None if self.between is None else list(self.between),
            "note": self.note,
        }
        if self.levels is not None:
            out["levels"] = [
                {"load": x.load, "slo_attainment": x.slo_attainment}
                | ({} if x.interval is None else {"slo_attainment_interval": x.interval.to_list()})
                for x in self.levels
            ]
        out["excluded_steps"] = list(self.excluded)
        if self.interval is not None:
            out["interval"] = self.interval.to_list()
            out["interval_method"] = CAPACITY_METHOD
        return out
