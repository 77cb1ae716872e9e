"""The per-model results of a run that sent its requests to several models (`--models a,b`, a mix
class's `model=NAME`: LoRA adapters served beside a base model, say), all judged by the run's primary SLO.

analysis/models.py computes them (the figures of each model are analysis/groups.py's, the tenants'
own); `Summary.models` holds them; summary.json writes them under `models` (README.md § Per-model
figures), a key present only when the rows name two models or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.stepresults import Capacity
from analysis.tenantresults import GroupFigures


@dataclass(frozen=True)
class ModelFigures(GroupFigures):
    """One model's requests (`GroupFigures` against the run's primary SLO), with the engine's queue
    time where the rows state it (vLLM's per-request metrics, SGLang's): how long the server held
    that model's requests before it scheduled them — a model waiting for an adapter slot waits here."""

    engine_queue_p50_s: float | None = None
    engine_queue_p95_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        stated = self.engine_queue_p50_s is not None
        queue = {"p50": self.engine_queue_p50_s, "p95": self.engine_queue_p95_s} if stated else None
        return {"name": self.name, **self.figures_dict(), "engine_queue_s": queue}


@dataclass(frozen=True)
class Worst:
    """Which model's requests fared worst and how, for the sentence above the table.

    `metric` ("ttft", "tpot", "e2e") is where the model is furthest behind the best other model
    (p95 over p95: `value_s` vs `best_s` of `best`); None when it is behind on none (it then fared worst
    on attainment alone, `best` being the model with the highest). `completed` False: none of its
    requests completed. `alike`: every model had the same attainment and p95s — no worst to name."""

    model: str
    metric: str | None
    value_s: float | None
    best: str | None
    best_s: float | None
    completed: bool
    alike: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "metric": self.metric,
            "p95_s": self.value_s,
            "vs_model": self.best,
            "vs_p95_s": self.best_s,
            "completed": self.completed,
            "alike": self.alike,
        }


UNNAMED = "(none)"  # the group of rows without a model in a run whose other rows name one


@dataclass(frozen=True)
class Models:
    """Every model of a run, judged by the run's primary SLO; `capacity` is the lowest model capacity
    (the run's load at which the first model's requests break the SLO), `limiting` that model."""

    slo: str
    describe: str
    attain_target: float
    models: list[ModelFigures]
    capacity: Capacity | None
    limiting: str | None
    worst: Worst | None  # None: no model had a request judged (all cancelled)
    by: str = "model"  # the column the rows were grouped by: model (asked for) or served_model (answered)

    def of(self, name: str) -> ModelFigures | None:
        return next((m for m in self.models if m.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "slo_describe": self.describe,
            "attain_target": self.attain_target,
            "capacity": None if self.capacity is None else self.capacity.to_dict(),
            "limiting_model": self.limiting,
            "worst": None if self.worst is None else self.worst.to_dict(),
            "by": self.by,
            "by_model": [m.to_dict() for m in self.models],
        }
