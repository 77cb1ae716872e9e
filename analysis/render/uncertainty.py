"""How sure the answer is: the 95 % intervals of the headline figures, the capacity search's probes,
and the plot of attainment against load with the capacity's interval.

summary.md, the console and report.html read their cells from here (the intervals themselves are
computed in analysis/intervals.py). A `--shape search` run also gets its search section: every probe
(one load level) with the search's live verdict beside the analysis' own figures for that level.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from analysis import fmt
from analysis.intervals import Interval
from analysis.render.page import esc, table
from analysis.results import Capacity, Summary
from analysis.windows import shape_name
from core.slo import Slo

INTERVAL_HEADERS = ["figure", "value", "95 % interval"]
SEARCH_HEADERS = [
    "probe (step)", "load", "ran", "search's verdict (live)", "attainment (live)", "attainment (analysis)", "why",
]  # fmt: skip
FIGURE = "capacity_interval.png"


def span(iv: Interval | None, number: Callable[[float], str]) -> str:
    """`[790–840]` (`…` for an open end); "–" without an interval."""
    if iv is None or (iv.low is None and iv.high is None):
        return fmt.DASH
    lo = "…" if iv.low is None else number(iv.low)
    hi = "…" if iv.high is None else number(iv.high)
    return f"[{lo}–{hi}]"


def capacity_interval(c: Capacity) -> str:
    """`95 % interval [6.9–7.6] users` for a capacity ("" without one)."""
    if c.interval is None or c.value is None:
        return ""
    return f"95 % interval {span(c.interval, lambda x: f'{x:.3g}')} {c.unit}"


def interval_rows(s: Summary) -> list[list[str]]:
    """figure | value | 95 % interval: latency percentiles (ms), goodput, attainment, capacity."""
    hl = s.intervals
    if hl is None:
        return []
    rows = []
    for name, dist, ivs in (("TTFT", s.ttft, hl.ttft), ("TPOT", s.tpot, hl.tpot), ("E2E", s.e2e, hl.e2e)):
        for q in ("p50", "p95", "p99"):
            rows.append([f"{name} {q} (ms)", fmt.ms(getattr(dist, q)), span(ivs[q], fmt.ms)])
    t = s.throughput
    rows.append(
        [f"goodput req/s [{s.slo.name}]", fmt.num(t.goodput_req_per_s), span(hl.goodput_req_per_s, fmt.num)]
    )
    rows.append(["SLO attainment", fmt.pct(t.slo_attainment), span(hl.slo_attainment, fmt.pct)])
    c = s.capacity
    if c.value is not None or c.levels:
        value = "none" if c.value is None else f"{'≥ ' if not c.bounded else ''}{c.value:.3g} {c.unit}"
        rows.append(["capacity at SLO", value, span(c.interval, lambda x: f"{x:.3g}")])
    return rows


def method_text(s: Summary) -> str:
    """What the intervals are (README.md § Intervals)."""
    hl = s.intervals
    if hl is None:
        return ""
    unit = (
        "sessions (multi-turn: a conversation's turns are resampled together)"
        if hl.resampled == "sessions"
        else "requests"
    )
    return (
        f"95 % intervals: seeded percentile bootstrap over the run's {hl.units:,} {unit}, "
        f"{hl.replicates:,} replicates, seed {hl.seed}; capacity: each level's window resampled in spans of "
        "consecutive sends, the capacity rule applied to every replicate. A figure's interval is how far it "
        "could move if the run were repeated; two configurations whose intervals overlap are tied within noise."
    )


def search_params(s: Summary) -> dict | None:
    """run.json's search parameters and probes (None: not a `--shape search` run)."""
    if shape_name(s.run.shape) != "search" or not isinstance(s.run.shape_params, dict):
        return None
    return s.run.shape_params


def search_text(p: dict) -> str:
    unit = p.get("unit") or ""
    probe = p.get("probe_duration_s")
    return (
        f"Capacity search by {p.get('search_by')}: {len(p.get('probes') or [])} probes of {probe:g} s "
        f"(warm-up {p.get('warmup_s', 0):g} s excluded), bisected to {float(p.get('precision') or 0):.0%}; "
        f"{p.get('outcome') or 'ended by the run'}. Synchronous rate "
        f"{fmt.num(p.get('synchronous_rps'))} req/s; each probe is a load level in {unit} below."
        if isinstance(probe, int | float)
        else ""
    )


def search_rows(s: Summary, p: dict) -> list[list[str]]:
    steps = {st.step: st for st in s.steps}
    rows = []
    for pr in p.get("probes") or []:
        if not isinstance(pr, dict):
            continue
        st = steps.get(pr.get("step"))
        ran = pr.get("ran_s")
        rows.append(
            [
                f"{len(rows)} ({pr.get('step')})",
                str(pr.get("label") or ""),
                f"{ran:.0f} s" if isinstance(ran, int | float) else fmt.DASH,
                str(pr.get("verdict") or fmt.DASH) + (" (stopped early)" if pr.get("stopped_early") else ""),
                fmt.pct(pr.get("live_attainment")),
                fmt.pct(st.slo_attainment) if st is not None else fmt.DASH,
                str(pr.get("reason") or ""),
            ]
        )
    return rows


def markdown(s: Summary) -> list[str]:
    """summary.md's sections: the intervals, then (a search run) the probes."""
    out = []
    if rows := interval_rows(s):
        out += [
            "## Intervals (95 %)",
            "",
            method_text(s),
            "",
            fmt.md_table(INTERVAL_HEADERS, rows, right={1, 2}),
            "",
        ]
    if (p := search_params(s)) is not None:
        out += [
            "## Capacity search",
            "",
            search_text(p),
            "",
            fmt.md_table(SEARCH_HEADERS, search_rows(s, p)),
            "",
        ]
    return out


def html(s: Summary) -> str:
    parts = []
    if rows := interval_rows(s):
        parts += ["<h2>Intervals (95 %)</h2>", f"<p>{esc(method_text(s))}</p>", table(INTERVAL_HEADERS, rows)]
    if (p := search_params(s)) is not None:
        parts += [
            "<h2>Capacity search</h2>",
            f"<p>{esc(search_text(p))}</p>",
            table(SEARCH_HEADERS, search_rows(s, p)),
        ]
    return "\n".join(parts)


def plot(c: Capacity, slo: Slo, path: Path) -> Path | None:
    """SLO attainment per load level with its 95 % interval, the target, and the capacity with its interval."""
    levels = c.levels or []
    if len(levels) < 2:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    fig.subplots_adjust(left=0.09, right=0.97, top=0.9, bottom=0.13)
    xs = [lv.load for lv in levels]
    ys = [lv.slo_attainment * 100 for lv in levels]
    lo = [
        max(0.0, y - (lv.interval.low or 0) * 100) if lv.interval else 0.0
        for y, lv in zip(ys, levels, strict=True)
    ]
    hi = [
        max(0.0, (lv.interval.high if lv.interval and lv.interval.high is not None else 1.0) * 100 - y)
        if lv.interval
        else 0.0
        for y, lv in zip(ys, levels, strict=True)
    ]
    ax.errorbar(
        xs, ys, yerr=[lo, hi], fmt="o-", color="#1f77b4", capsize=3, label="attainment per level (95 %)"
    )
    ax.axhline(c.target * 100, color="black", linestyle="--", linewidth=1, label=f"target {c.target:.0%}")
    if c.value is not None:
        ax.axvline(c.value, color="#2ca02c", linewidth=1.5, label=f"capacity {c.value:.3g} {c.unit}")
        iv = c.interval
        if iv is not None and iv.low is not None:
            right = iv.high if iv.high is not None else max(xs)
            ax.axvspan(iv.low, right, color="#2ca02c", alpha=0.15, label="capacity 95 % interval")
    ax.set_xlabel(f"load ({c.unit})")
    ax.set_ylabel(f"SLO attainment (%) [{slo.name}]")
    ax.set_ylim(-2, 102)
    ax.set_title("SLO attainment vs load: where it crosses the target, and how surely")
    ax.legend(fontsize=8, loc="lower left")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
