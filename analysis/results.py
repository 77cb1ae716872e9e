"""What an analysis finds, as typed objects: one run's `Summary` and its parts, and `summary.json`.

These classes only hold results; every figure in them is computed once, in analysis/metrics.py
(distributions, throughput, verdicts, open loop), analysis/steps.py (steps, capacity) and
analysis/server.py (server figures). Renderers read their fields, never a string key.

`Summary.to_json()` is summary.json, key for key and in the same order as it has always been
written (the machine-readable twin of summary.md; README.md § summary.json): the JSON names stay
as they are (`ttft_s`, `pass`, `check`), the attribute names follow Python (`ttft`, `passed`,
`label`), and `to_dict()` maps one onto the other in one place per class.

The server figures are `TypedDict`s (analysis/serverfigures.py, re-exported here) rather than
dataclasses: a pass-through of the engine's series that summary.json writes as they are.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from analysis.dist import Dist
from analysis.images import ImageFigures
from analysis.intervals import Headline as Headline  # re-exported: every result type here
from analysis.intervals import Interval as Interval
from analysis.reasoning import Reasoning, ToolCalls
from analysis.serverfigures import GatewayFigures as GatewayFigures
from analysis.serverfigures import GatewayLevel as GatewayLevel
from analysis.serverfigures import ReplicaFigures as ReplicaFigures
from analysis.serverfigures import ReplicaSet as ReplicaSet
from analysis.serverfigures import RouterBackend as RouterBackend
from analysis.serverfigures import RouterFigures as RouterFigures
from analysis.serverfigures import ServerFigures as ServerFigures
from analysis.serverfigures import ServerSummary as ServerSummary
from analysis.serverfigures import StepServer as StepServer
from analysis.serverfigures import TtftCompare as TtftCompare
from analysis.specdecode import Speculative
from analysis.stepresults import Capacity as Capacity  # re-exported: every result type here
from analysis.stepresults import Level as Level
from analysis.stepresults import Step as Step
from analysis.stepresults import StepPercentiles as StepPercentiles
from analysis.timing import ServerTiming
from core.slo import Slo

__all__ = ["Dist", "Reasoning", "ToolCalls"]  # defined in their own modules, part of the results all the same


@dataclass(frozen=True)
class Throughput:
    """The run's counts (requests sent in its window) and rates (what completed or arrived inside it).

    The window is first send → last completion of the requests it holds (the start-up and the first
    warm-up left out); rates count completions and token arrivals inside it (analysis/metrics.py).
    """

    requests: int
    cancelled: int
    ok: int
    good: int
    t_start_unix: float
    t_end_unix: float
    duration_s: float
    req_per_s: float | None
    output_tok_per_s: float | None
    input_tok_per_s: float | None
    total_tok_per_s: float | None
    goodput_req_per_s: float | None
    slo_attainment: float | None


@dataclass(frozen=True)
class Check:
    """A run-level percentile check such as `p99 TPOT ≤ 250 ms`."""

    label: str
    metric: str
    p: float
    limit_s: float
    value_s: float | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.label,
            "metric": self.metric,
            "p": self.p,
            "limit_s": self.limit_s,
            "value_s": self.value_s,
            "pass": self.passed,
        }


@dataclass(frozen=True)
class Verdict:
    """Does the run meet one SLO: attainment ≥ target and every percentile check."""

    slo: str
    describe: str
    slo_attainment: float | None
    attain_target: float
    goodput_req_per_s: float | None
    checks: list[Check]
    passed: bool
    capacity: Capacity | None = None  # where this SLO breaks along the load levels (None: no levels)
    attainment_interval: Interval | None = None  # 95 % (analysis/intervals.py), as the headline's
    goodput_interval: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "slo": self.slo,
            "describe": self.describe,
            "slo_attainment": self.slo_attainment,
            "attain_target": self.attain_target,
            "goodput_req_per_s": self.goodput_req_per_s,
            "checks": [c.to_dict() for c in self.checks],
            "pass": self.passed,
            "capacity": None if self.capacity is None else self.capacity.to_dict(),
        }
        if self.attainment_interval is not None:
            out["slo_attainment_interval"] = self.attainment_interval.to_list()
        if self.goodput_interval is not None:
            out["goodput_interval"] = self.goodput_interval.to_list()
        return out


@dataclass(frozen=True)
class OpenLoop:
    """Open-loop runs: latency from the intended send time, and how far sending lagged behind."""

    requests: int
    scheduled_rate_rps: float | None
    achieved_rate_rps: float | None
    send_lag_s: Dist
    ttft_from_scheduled_s: Dist
    e2e_from_scheduled_s: Dist
    goodput_from_scheduled_req_per_s: float | None
    slo_attainment_from_scheduled: float | None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v.to_dict() if isinstance(v, Dist) else v for k, v in out.items()}


@dataclass(frozen=True)
class StartupFigures:
    """The start-up (analysis/windows.py): every user spawned and its first request sent. Reported
    apart; `included` says whether the headline holds its requests (`--include-startup`)."""

    t_start_unix: float
    t_end_unix: float
    duration_s: float
    users: int
    requests: int
    ok: int
    included: bool
    ttft: Dist
    e2e: Dist

    def to_dict(self) -> dict[str, Any]:
        out = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("ttft", "e2e")
        }
        return {**out, "ttft_s": self.ttft.to_dict(), "e2e_s": self.e2e.to_dict()}


@dataclass(frozen=True)
class RunInfo:
    """The run.json facts a reader needs beside the numbers, as run.json holds them (not validated)."""

    dir: str
    name: str
    run_id: Any
    target: Any
    model: Any
    dataset: Any
    user_class: Any
    transport: Any
    shape: Any
    shape_params: Any
    seed: Any
    workers: Any
    git_commit: Any
    locust_version: Any
    api: Any = None  # the server API the requests used (`--api`; older runs: None, i.e. chat or completions)
    models: Any = None  # the models the conversations named (`--models` as written; None: one model)


@dataclass
class Summary:
    """Every figure of one run under one primary SLO (`slo`), with verdicts for more SLOs.

    `itl` is None only while the ITL gaps are still being parsed (analysis/summary.py
    `Analysis.finish()` fills it in).
    """

    run: RunInfo
    slo: Slo
    throughput: Throughput
    errors: dict[str, int]  # failed requests by category, most frequent first
    ttft: Dist
    tpot: Dist
    itl: Dist | None
    e2e: Dist
    verdicts: list[Verdict]  # the primary SLO first, then the others asked for, then every profile
    load_unit: str  # "users" or "req/s"
    steps: list[Step]
    capacity: Capacity
    open_loop: OpenLoop | None
    excluded_warmup_rows: int
    saturated_windows: list[tuple[float, float]]  # when the load generator could not keep up
    server: ServerSummary | None
    warnings: list[str]
    startup: StartupFigures | None = None
    excluded_startup_rows: int = 0
    server_timing: ServerTiming | None = None  # the engine's spans joined per request (analysis/spans.py)
    reasoning: Reasoning | None = None  # only when some request reasoned
    tool_calls: ToolCalls | None = None  # only when some request was answered with a tool call
    # only when the server speculated and said so, per request or in its counters (analysis/specdecode.py)
    speculative: Speculative | None = None
    # a mixed run (`--mix`): an analysis.tenantresults.Tenants, each class against its own SLO (that
    # module builds on this one's types, so it is not named here); None for a run without classes
    tenants: Any = None
    # several models in one run (`model` column: LoRA adapters beside a base model, say): an
    # analysis.modelresults.Models, each model under the primary SLO; None for a run of one model
    models: Any = None
    intervals: Headline | None = None  # 95 % intervals of the headline figures (analysis/intervals.py)
    # when a load process read late (its tokens' times off by up to a token gap; analysis/health.py)
    late_windows: list[tuple[float, float]] = field(default_factory=list)
    router: RouterFigures | None = None  # a router's own page was scraped (analysis/router.py)
    gateway_page: GatewayFigures | None = (
        None  # a gateway's own TTFT page was scraped (analysis/gatewaypage.py)
    )
    images: ImageFigures | None = None  # only when some measured request carried images (analysis/images.py)

    @property
    def is_ramp(self) -> bool:
        """Several complete load levels: capacity, not the whole run's verdict, answers the question."""
        return len({s.load for s in self.steps if not s.truncated}) >= 2

    @property
    def verdict(self) -> Verdict:
        """The primary SLO's verdict."""
        return self.verdicts[0]

    @property
    def percentile_checks(self) -> list[Check]:
        """The primary SLO's percentile checks."""
        return self.verdicts[0].checks

    def to_dict(self) -> dict[str, Any]:
        """summary.json as a dict, keys in their written order."""
        t = self.throughput
        out = {
            "run": dataclasses.asdict(self.run),
            "requests": t.requests,
            "ok": t.ok,
            "cancelled": t.cancelled,
            "errors": dict(self.errors),
            "duration_s": t.duration_s,
            "req_per_s": t.req_per_s,
            "output_tok_per_s": t.output_tok_per_s,
            "input_tok_per_s": t.input_tok_per_s,
            "total_tok_per_s": t.total_tok_per_s,
            "goodput_req_per_s": t.goodput_req_per_s,
            "slo_attainment": t.slo_attainment,
            "good": t.good,
            "slo": {**self.slo.to_dict(), "describe": self.slo.describe()},
            "ttft_s": self.ttft.to_dict(),
            "tpot_s": self.tpot.to_dict(),
            "itl_s": None if self.itl is None else self.itl.to_dict(),
            "e2e_s": self.e2e.to_dict(),
            "samples": {
                "ttft_s": self.ttft.n,
                "tpot_s": self.tpot.n,
                "itl_s": None if self.itl is None else self.itl.n,
                "e2e_s": self.e2e.n,
            },
            "percentile_checks": [c.to_dict() for c in self.percentile_checks],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "window": {"t_start_unix": t.t_start_unix, "t_end_unix": t.t_end_unix},
            "load_unit": self.load_unit,
            "steps": [s.to_dict() for s in self.steps],
            "capacity_at_slo": self.capacity.value,
            "capacity": self.capacity.to_dict(),
            "open_loop": None if self.open_loop is None else self.open_loop.to_dict(),
            "excluded_warmup_rows": self.excluded_warmup_rows,
            "excluded_startup_rows": self.excluded_startup_rows,
            "startup": None if self.startup is None else self.startup.to_dict(),
            "loadgen_saturated_windows": [list(w) for w in self.saturated_windows],
            "loadgen_late_windows": [list(w) for w in self.late_windows],
            "server": self.server,
            "server_timing": None if self.server_timing is None else self.server_timing.to_dict(),
            "warnings": list(self.warnings),
            "reasoning": None if self.reasoning is None else self.reasoning.to_dict(),
            "tool_calls": None if self.tool_calls is None else self.tool_calls.to_dict(),
            "speculative_decoding": None if self.speculative is None else self.speculative.to_dict(),
            "intervals": None if self.intervals is None else self.intervals.to_dict(),
        }
        if self.tenants is not None:  # only a mixed run has the key (every other summary.json is as it was)
            out["tenants"] = self.tenants.to_dict()
        if self.models is not None:  # only a run whose rows name two models or more has the key
            out["models"] = self.models.to_dict()
        if self.router is not None:  # only a run that scraped a router's own page has the key
            out["router"] = self.router
        if self.gateway_page is not None:  # only a run that scraped a gateway's own TTFT page
            out["gateway_page"] = self.gateway_page
        if self.images is not None:  # only a run whose requests carried images
            out["images"] = self.images
        return out

    def to_json(self) -> str:
        """The text of summary.json (NaN is refused: every missing figure is null)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=_json_default) + "\n"


def _json_default(o: object) -> object:
    """numpy numbers (a pandas aggregate passed through) as plain numbers; numpy loads only if one comes."""
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
