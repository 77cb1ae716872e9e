"""Several runs side by side: the research's Table 4.2 (+ goodput, capacity), repeats, best-run selection.

The request distribution decides the ranking (DESIGN.md), so the best value per column is marked
*within each dataset*, never across datasets — and only where it separates: a figure with a 95 %
interval (analysis/intervals.py) is best when no other row is better beyond noise (intervals that do
not overlap), so two rows whose intervals overlap the top are "tied within noise", both marked. Runs of one configuration (same name, target,
model, dataset, user class, transport and shape) are repeats: by default they collapse into one
row of medians with their min–max spread and a merged interval (a two-stage bootstrap over the
repeats and each one's own replicates); `--repeats best` keeps each configuration's best run
(highest goodput, then lowest p95 latency — "ran 10 minutes and chose the best run"), `all`
lists every run.

Only computation lives here: `compare()` turns analyzed runs (`Summary`) into a `Comparison`
of typed rows; analysis/render/comparison.py lays them out, analysis/outputs.py writes them.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from analysis.intervals import Interval, merge_repeats, ranks
from analysis.results import RunInfo, Summary
from core.slo import Slo

# The compared figures, in table order, with their direction (+1: higher is better, -1: lower is better).
METRICS: dict[str, int] = {
    "latency_p95_s": -1,
    "tpot_p95_s": -1,
    "ttft_p50_s": -1,
    "ttft_p95_s": -1,
    "req_per_s": 1,
    "output_tok_per_s": 1,
    "goodput_req_per_s": 1,
    "slo_attainment": 1,
    "capacity_at_slo": 1,
    # reasoning runs only (None elsewhere; the tables show these columns where some row has them)
    "ttfo_p50_s": -1,
    "ttfo_p95_s": -1,
    "reasoning_tokens_mean": 0,  # 0: not ranked (more reasoning is neither better nor worse)
    # runs whose server speculated: the acceptance that bought their TPOT (not ranked: a means, not the end)
    "spec_acceptance_rate": 0,
    # runs against replicas (their pages, or a router's): how evenly the router spread the load, and what
    # it retried — a routing policy's means and cost, beside the latency they bought (not ranked)
    "replica_imbalance": 0,
    "router_retries": 0,
    # an endpoint picker's page (llm-d's EPP): the requests it answered with its own error, shed under load
    # (not ranked: a policy's admission, beside the goodput it kept)
    "router_refused": 0,
    # a gateway's own TTFT page: the part of the TTFT between it and the engine (not ranked: where the time
    # went, beside the TTFT it is part of)
    "gateway_minus_engine_ttft_s": 0,
    # runs that scraped their server: the prompt tokens its prefix cache served (a routing policy's or a
    # cache setting's means, beside the TTFT it bought; not ranked)
    "prefix_cache_hit_rate": 0,
    # runs whose requests carried pictures: the share the engine's multimodal cache found (not ranked)
    "image_cache_hit_rate": 0,
}
OPTIONAL = (
    "ttfo_p50_s", "ttfo_p95_s", "reasoning_tokens_mean", "spec_acceptance_rate", "replica_imbalance", "router_retries",
    "router_refused", "gateway_minus_engine_ttft_s", "prefix_cache_hit_rate", "image_cache_hit_rate",
)  # fmt: skip
REPEAT_MODES = ("median", "best", "all")
# Figures with a 95 % interval (analysis/intervals.py): ranked by what separates, ties within noise marked.
WITH_INTERVALS = (
    "latency_p95_s", "tpot_p95_s", "ttft_p50_s", "ttft_p95_s", "goodput_req_per_s", "slo_attainment", "capacity_at_slo",
)  # fmt: skip


@dataclass(frozen=True)
class Figures:
    """The compared figures of one run, or of a configuration's repeats (seconds, req/s; None: not measured)."""

    latency_p95_s: float | None
    tpot_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    req_per_s: float | None
    output_tok_per_s: float | None
    goodput_req_per_s: float | None
    slo_attainment: float | None
    capacity_at_slo: float | None
    ttfo_p50_s: float | None = None
    ttfo_p95_s: float | None = None
    reasoning_tokens_mean: float | None = None
    spec_acceptance_rate: float | None = None
    replica_imbalance: float | None = None
    router_retries: float | None = None
    router_refused: float | None = None
    gateway_minus_engine_ttft_s: float | None = None
    prefix_cache_hit_rate: float | None = None
    image_cache_hit_rate: float | None = None


@dataclass(frozen=True)
class ComparisonRow:
    """One row of the comparison: a run, or a configuration's repeats collapsed per the repeats mode."""

    label: str  # what the table shows; unique among the rows
    dir: str  # the run folder (of the best repeat, for a grouped row)
    name: str
    target: str | None
    model: str | None
    dataset: str
    shape: str | None
    config: str  # what makes runs repeats of one configuration
    runs: int
    figures: Figures
    capacity_unit: str
    requests: int
    errors: int
    best_run: str  # the repeat with the highest goodput
    run_dirs: list[str] | None = None  # every repeat's folder (None: a single run listed on its own)
    low: Figures | None = None  # min and max over the repeats (only when there are several)
    high: Figures | None = None
    best: frozenset[str] = field(
        default_factory=frozenset
    )  # METRICS keys where it is the best of its dataset
    capacity_lower_bound: bool = False  # the capacity is "≥": its highest complete level still met the SLO
    intervals: dict[str, Interval] = field(default_factory=dict)  # METRICS key → 95 % interval
    tied: frozenset[str] = field(default_factory=frozenset)  # METRICS keys where its ★ is shared within noise

    def value(self, key: str) -> float | None:
        """The figure named `key` (a METRICS key)."""
        return getattr(self.figures, key)

    def interval(self, key: str) -> Interval | None:
        """The figure's 95 % interval (None: not measured, or a figure without one)."""
        return self.intervals.get(key)

    def spread(self, key: str) -> tuple[float | None, float | None]:
        """(min, max) of `key` over the repeats; the value itself when there is no spread to show."""
        lo = None if self.low is None else getattr(self.low, key)
        hi = None if self.high is None else getattr(self.high, key)
        v = self.value(key)
        return (v if lo is None else lo, v if hi is None else hi)

    @property
    def folders(self) -> list[str]:
        """Every run folder behind the row."""
        return self.run_dirs if self.run_dirs is not None else [self.dir]


@dataclass
class Comparison:
    """Runs compared under one SLO: the table's `rows` (repeats grouped per `mode`) and one row per run."""

    slo: Slo
    mode: str  # one of REPEAT_MODES
    rows: list[ComparisonRow]
    runs: list[ComparisonRow]  # one per analyzed run, in the order given
    summaries: list[Summary]  # the same runs' summaries (their steps draw the load curves)
    # mixed runs' classes vs the same classes alone (analysis/interference.py); None: paired there
    # by target and model (the arena, whose servers change port per run, pairs its cells itself)
    interference: list | None = None


def compare(summaries: list[Summary], slo: Slo, mode: str = "median") -> Comparison:
    """The comparison of analyzed runs (each analyzed under `slo`)."""
    runs = [run_row(s) for s in summaries]
    return Comparison(slo, mode, group(runs, mode), runs, list(summaries))


def run_row(s: Summary) -> ComparisonRow:
    """The comparison figures of one analyzed run."""
    r, t = s.run, s.throughput
    figures = Figures(
        latency_p95_s=s.e2e.p95,
        tpot_p95_s=s.tpot.p95,
        ttft_p50_s=s.ttft.p50,
        ttft_p95_s=s.ttft.p95,
        req_per_s=t.req_per_s,
        output_tok_per_s=t.output_tok_per_s,
        goodput_req_per_s=t.goodput_req_per_s,
        slo_attainment=t.slo_attainment,
        capacity_at_slo=s.capacity.value,
        **_reasoning(s),
        spec_acceptance_rate=_acceptance(s),
        replica_imbalance=_imbalance(s),
        router_retries=s.router["retries"] if s.router else None,
        router_refused=sum(s.router["errors"].values()) if s.router and s.router.get("errors") else None,
        gateway_minus_engine_ttft_s=s.gateway_page["gateway_minus_engine_ttft_s"] if s.gateway_page else None,
        prefix_cache_hit_rate=s.server.get("prefix_cache_hit_rate") if s.server else None,
        image_cache_hit_rate=s.server.get("image_cache_hit_rate") if s.server else None,
    )
    iv = s.intervals
    intervals = {}
    if iv is not None:
        intervals = {
            "latency_p95_s": iv.e2e["p95"],
            "tpot_p95_s": iv.tpot["p95"],
            "ttft_p50_s": iv.ttft["p50"],
            "ttft_p95_s": iv.ttft["p95"],
            "goodput_req_per_s": iv.goodput_req_per_s,
            "slo_attainment": iv.slo_attainment,
        }
    if s.capacity.interval is not None:
        intervals["capacity_at_slo"] = s.capacity.interval
    return ComparisonRow(
        intervals=intervals,
        label=r.name,
        dir=r.dir,
        name=r.name,
        target=r.target,
        model=r.model,
        dataset=r.dataset or "",
        shape=r.shape,
        config=config_key(r),
        runs=1,
        figures=figures,
        capacity_unit=s.capacity.unit,
        requests=t.requests,
        errors=sum(s.errors.values()),
        best_run=r.dir,
        capacity_lower_bound=s.capacity.value is not None and not s.capacity.bounded,
    )


def _reasoning(s: Summary) -> dict[str, float | None]:
    r = s.reasoning
    if r is None:
        return {}
    return {
        "ttfo_p50_s": r.ttfo.p50,
        "ttfo_p95_s": r.ttfo.p95,
        "reasoning_tokens_mean": r.reasoning_tokens.mean,
    }


def _acceptance(s: Summary) -> float | None:
    """The run's speculative acceptance: as its requests stated it, else as its server counted it."""
    sp = s.speculative
    if sp is None:
        return None
    stated = sp.requests.acceptance_rate if sp.requests is not None else None
    return stated if stated is not None else sp.server_acceptance_rate


def _imbalance(s: Summary) -> float | None:
    """The busiest replica's share × the replica count over the run: from the replicas' own pages (their
    engines' finished requests), else from the router's (what it sent each backend)."""
    reps = s.server.get("replicas") if s.server else None
    if reps and reps["imbalance"] is not None:
        return reps["imbalance"]
    return s.router["imbalance"] if s.router else None


def shown(rows: list[ComparisonRow]) -> list[str]:
    """The METRICS keys a table shows: every one, but the OPTIONAL ones only where some row has a value."""
    return [k for k in METRICS if k not in OPTIONAL or any(r.value(k) is not None for r in rows)]


def config_key(r: RunInfo) -> str:
    """What makes two runs repeats of one configuration (run.json facts, not the folder name)."""
    keys = (
        "name",
        "target",
        "model",
        "models",
        "dataset",
        "user_class",
        "transport",
        "api",
        "shape",
        "shape_params",
    )
    return json.dumps([getattr(r, k) for k in keys], sort_keys=True, default=str)


def _better(a: ComparisonRow, b: ComparisonRow) -> bool:
    """Best-run order: higher goodput, then lower p95 latency."""
    ga, gb = a.figures.goodput_req_per_s or 0.0, b.figures.goodput_req_per_s or 0.0
    if ga != gb:
        return ga > gb
    return (a.figures.latency_p95_s or float("inf")) < (b.figures.latency_p95_s or float("inf"))


def group(rows: list[ComparisonRow], mode: str = "median") -> list[ComparisonRow]:
    """Collapse repeats per `mode` (see module doc), order of first appearance kept; best cells marked."""
    if mode == "all":
        return mark_best(unique_labels(rows, by_dir=True))
    groups: dict[str, list[ComparisonRow]] = {}
    for r in rows:
        groups.setdefault(r.config, []).append(r)
    return mark_best(unique_labels([_collapse(runs, mode) for runs in groups.values()], by_dir=False))


def _collapse(runs: list[ComparisonRow], mode: str) -> ComparisonRow:
    """One configuration's repeats → one row: the best run's facts, medians (or its own figures), min–max."""
    best = runs[0]
    for r in runs[1:]:
        if _better(r, best):
            best = r
    values, lows, highs = {}, {}, {}
    for key in METRICS:
        vals = [r.value(key) for r in runs if r.value(key) is not None]
        values[key] = (statistics.median(vals) if vals else None) if mode == "median" else best.value(key)
        several = len(runs) > 1 and vals
        lows[key], highs[key] = (min(vals), max(vals)) if several else (None, None)
    spread = len(runs) > 1
    caps = [r for r in runs if r.value("capacity_at_slo") is not None]
    # the median of lower bounds is a lower bound; the best run's capacity keeps its own mark
    lower = (
        best.capacity_lower_bound
        if mode == "best"
        else bool(caps) and all(r.capacity_lower_bound for r in caps)
    )
    merged = {}
    for key in WITH_INTERVALS:
        have = [r for r in runs if r.value(key) is not None]
        parts = [r.interval(key) for r in have]
        if mode == "median" and len(have) > 1:
            iv = merge_repeats(parts, [r.value(key) for r in have])  # type: ignore[arg-type,misc]
        else:
            iv = best.interval(key)
        if iv is not None:
            merged[key] = iv
    return dataclasses.replace(
        best,
        intervals=merged,
        capacity_lower_bound=lower,
        runs=len(runs),
        best_run=best.dir,
        run_dirs=[r.dir for r in runs],
        figures=Figures(**values),
        low=Figures(**lows) if spread else None,
        high=Figures(**highs) if spread else None,
    )


def unique_labels(rows: list[ComparisonRow], by_dir: bool) -> list[ComparisonRow]:
    """Run names may collide (the default name is `run`): add what tells the rows apart."""
    names = [r.label for r in rows]
    out = []
    for r in rows:
        label = r.label
        if names.count(r.label) > 1:
            if by_dir:
                label = f"{r.label} ({Path(r.dir).name})"
            else:
                same = [o for o in rows if o.name == r.name]
                extra = [
                    k
                    for k in ("target", "model", "dataset", "shape")
                    if len({str(getattr(o, k)) for o in same}) > 1
                ]
                label = f"{r.name} [" + ", ".join(str(getattr(r, k)) for k in extra or ["dir"]) + "]"
        out.append(dataclasses.replace(r, label=label))
    return out


def mark_best(rows: list[ComparisonRow]) -> list[ComparisonRow]:
    """Mark, per dataset, the rows holding each metric's best value: ranked by what separates — a row
    is best when no other is better beyond noise (their 95 % intervals do not overlap); several best
    rows are a tie within noise (`tied`). Figures without an interval rank by their values (exact
    ties all marked). Capacities are ranked only among rows of one load unit: users and req/s are
    not on one axis."""
    best: list[set[str]] = [set() for _ in rows]
    tied: list[set[str]] = [set() for _ in rows]
    for ds in {r.dataset for r in rows}:
        idx = [i for i, r in enumerate(rows) if r.dataset == ds]
        groups = [
            (key, idx) for key, d in METRICS.items() if d and key != "capacity_at_slo"
        ]  # 0: shown, not ranked
        units = {rows[i].capacity_unit for i in idx}
        groups += [("capacity_at_slo", [i for i in idx if rows[i].capacity_unit == u]) for u in units]
        for key, members in groups:
            top = _best_of(rows, members, key, METRICS[key])
            for i in top:
                best[i].add(key)
                if len(top) > 1:
                    tied[i].add(key)
    return [
        dataclasses.replace(r, best=frozenset(b), tied=frozenset(t))
        for r, b, t in zip(rows, best, tied, strict=True)
    ]


def _best_of(rows: list[ComparisonRow], idx: list[int], key: str, direction: int) -> list[int]:
    """The rows among `idx` that no other beats beyond noise (none when fewer than two have a value)."""
    have = [i for i in idx if rows[i].value(key) is not None]
    if len(idx) < 2 or not have:
        return []
    ivs = [rows[i].interval(key) or Interval(rows[i].value(key), rows[i].value(key)) for i in have]
    return [i for i, rank in zip(have, ranks(ivs, direction), strict=True) if rank == 1]


def curve_labels(runs: list[ComparisonRow]) -> list[str]:
    """One label per run for the load-curve plot: the run's label, its folder added where labels collide."""
    return [r.label for r in unique_labels(runs, by_dir=True)]
