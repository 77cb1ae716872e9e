"""A `Comparison` as comparison.md, comparison.csv, the comparison's report.html and the console table.

The pieces are public so that another page can compose its own document from them (the arena
puts one table per SLO under its own headings): `intro`, `table_md`, `repeats_md`, `csv_records`.
Columns follow analysis/compare.py `METRICS`; ★ (markdown) and highlighting (HTML) mark the
best value of a column within a dataset, as `ComparisonRow.best` says.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from analysis import fmt
from analysis import pareto as pareto_view
from analysis.compare import METRICS, WITH_INTERVALS, Comparison, ComparisonRow, shown
from analysis.intervals import Interval
from analysis.render import models, page, tenants
from analysis.render import pareto as pareto_render

# Per compared figure: its column header and how its numbers read ("ms", "pct" or "num").
COLUMNS: dict[str, tuple[str, str]] = {
    "latency_p95_s": ("Latency p95 (ms)", "ms"),
    "tpot_p95_s": ("TPOT p95 (ms)", "ms"),
    "ttft_p50_s": ("TTFT p50 (ms)", "ms"),
    "ttft_p95_s": ("TTFT p95 (ms)", "ms"),
    "req_per_s": ("req/s", "num"),
    "output_tok_per_s": ("output tok/s", "num"),
    "goodput_req_per_s": ("goodput req/s", "num"),
    "slo_attainment": ("SLO attainment", "pct"),
    "capacity_at_slo": ("capacity at SLO", "num"),
    "ttfo_p50_s": ("TTFO p50 (ms)", "ms"),
    "ttfo_p95_s": ("TTFO p95 (ms)", "ms"),
    "reasoning_tokens_mean": ("reasoning tokens", "num"),
    "spec_acceptance_rate": ("spec. acceptance", "pct"),
    "replica_imbalance": ("replica imbalance (×)", "num"),
    "router_retries": ("router retries", "num"),
    "router_refused": ("router's own errors", "num"),
    "gateway_minus_engine_ttft_s": ("gateway − engine TTFT (ms)", "ms"),
    "prefix_cache_hit_rate": ("prefix cache hit", "pct"),
    "image_cache_hit_rate": ("image cache hit", "pct"),
}
FIRST = ["configuration", "dataset", "runs"]  # the columns before the figures
REPEATS_HEADERS = ["configuration", "runs", "best run (highest goodput)"]
FOOTER = "Definitions: README.md § Analysis. Every figure is recomputed from each run's requests.csv."


def _number(v: float | None, kind: str) -> str:
    return fmt.ms(v) if kind == "ms" else fmt.pct(v) if kind == "pct" else fmt.num(v)


def interval_text(iv: Interval | None, kind: str) -> str:
    """`[790–840]`: a 95 % interval (`…` for an open end); "" without one."""
    if iv is None or (iv.low is None and iv.high is None):
        return ""
    lo = "…" if iv.low is None else _number(iv.low, kind)
    hi = "…" if iv.high is None else _number(iv.high, kind)
    return f"[{lo}–{hi}]"


def cell(row: ComparisonRow, key: str) -> str:
    """One figure's text: the value (capacity with its unit), its 95 % interval in square brackets,
    then the repeats' min–max in round ones."""
    kind = COLUMNS[key][1]
    v = row.value(key)
    if key == "capacity_at_slo" and v is not None:
        text = f"{'≥ ' if row.capacity_lower_bound else ''}{v:.3g} {row.capacity_unit}"
    else:
        text = _number(v, kind)
    if v is not None and (
        iv := interval_text(row.interval(key), "num" if key == "capacity_at_slo" else kind)
    ):
        text += f" {iv}"
    lo = None if row.low is None else getattr(row.low, key)
    if lo is not None and row.runs > 1:
        text += f" ({_number(lo, kind)}–{_number(getattr(row.high, key), kind)})"
    return text


def mark(row: ComparisonRow, key: str) -> str:
    """The best-mark of a figure: `★` best beyond noise, `★ tied` best within noise of another, ""."""
    if key not in row.best:
        return ""
    return "★ tied" if key in row.tied else "★"


def table(rows: list[ComparisonRow]) -> tuple[list[str], list[list[str]]]:
    """Headers and text cells of the comparison table (no best-marks); reasoning columns only where present."""
    keys = shown(rows)
    headers = [*FIRST, *(COLUMNS[k][0] for k in keys)]
    body = [[r.label, r.dataset, str(r.runs), *(cell(r, k) for k in keys)] for r in rows]
    return headers, body


def intro(c: Comparison) -> list[str]:
    """The bullet lines under a comparison's title: SLO, how many runs and rows, what ★ means."""
    return [
        f"- **SLO**: {c.slo.name}: {c.slo.describe()}",
        f"- **runs**: {len(c.runs)} in {len(c.rows)} rows (repeats: {c.mode}; ranges are min–max over repeats)",
        "- ★ best in its dataset (lowest latency; highest throughput, goodput, attainment, capacity — "
        "capacities only against those in the same unit); ≥: every complete level tested met the SLO",
        "- [low–high]: 95 % interval (README.md § Intervals); a figure is best only beyond noise — "
        "★ tied: its interval overlaps the best one's, so neither wins (tied within noise)",
    ]


def table_md(rows: list[ComparisonRow]) -> str:
    """The comparison table in markdown, best cells bold with ★."""
    headers, body = table(rows)
    marked = []
    for r, cells in zip(rows, body, strict=True):
        figures = [
            f"**{text}** {mark(r, key)}" if key in r.best else text
            for key, text in zip(shown(rows), cells[3:], strict=True)
        ]
        marked.append([*cells[:3], *figures])
    return fmt.md_table(headers, marked, right=set(range(2, len(headers))))


def repeats_md(rows: list[ComparisonRow], heading: str = "## Repeats") -> list[str]:
    """Which run was the best of each repeated configuration (no lines when nothing was repeated)."""
    multi = [r for r in rows if r.runs > 1]
    if not multi:
        return []
    body = [[r.label, str(r.runs), r.best_run] for r in multi]
    return [heading, "", fmt.md_table(REPEATS_HEADERS, body), ""]


def markdown(c: Comparison) -> str:
    """comparison.md."""
    lines = ["# Comparison", "", *intro(c), "", table_md(c.rows), "", *repeats_md(c.rows)]
    lines += [
        *pareto_render.markdown(pareto_view.of_comparison(c)),
        *tenants.comparison_markdown(c),
        *models.comparison_markdown(c),
        FOOTER,
        "",
    ]
    return "\n".join(lines)


def text(c: Comparison) -> str:
    """The console's aligned table."""
    return fmt.text_table(*table(c.rows))


def csv_records(rows: list[ComparisonRow]) -> tuple[list[str], list[dict[str, Any]]]:
    """comparison.csv's columns and rows: SI units (seconds, req/s, fractions), `best_in` the ★ columns."""
    keys = list(METRICS)
    fields = ["configuration", "dataset", "target", "model", "runs", *keys]
    fields += [f"{k}_{e}" for k in keys for e in ("min", "max")]
    fields += ["capacity_unit", "capacity_lower_bound", "best_run", "best_in"]
    fields += [f"{k}_{e}" for k in WITH_INTERVALS for e in ("ci_low", "ci_high")] + ["tied_in"]
    records = []
    for r in rows:
        rec: dict[str, Any] = {
            "configuration": r.label,
            "dataset": r.dataset,
            "target": r.target,
            "model": r.model,
        }
        rec["runs"] = r.runs
        rec.update({k: r.value(k) for k in keys})
        for k in keys:
            rec[f"{k}_min"] = None if r.low is None else getattr(r.low, k)
            rec[f"{k}_max"] = None if r.high is None else getattr(r.high, k)
        rec.update(
            capacity_unit=r.capacity_unit,
            capacity_lower_bound=r.capacity_lower_bound,
            best_run=r.best_run,
            best_in=";".join(k for k in keys if k in r.best),
        )
        for k in WITH_INTERVALS:
            iv = r.interval(k)
            rec[f"{k}_ci_low"], rec[f"{k}_ci_high"] = (None, None) if iv is None else (iv.low, iv.high)
        rec["tied_in"] = ";".join(k for k in keys if k in r.tied)
        records.append(rec)
    return fields, records


def write_csv(rows: list[ComparisonRow], path: Path) -> None:
    """comparison.csv."""
    fields, records = csv_records(rows)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(records)


def html(c: Comparison, figs: list[tuple[Path, str]]) -> str:
    """The comparison page: Table 4.2 + goodput/capacity with the best per dataset highlighted, then plots."""
    headers, body = table(c.rows)
    keys = shown(c.rows)
    body = [
        [
            *cells[: len(FIRST)],
            *(f"{t} ★ tied" if k in r.tied else t for k, t in zip(keys, cells[len(FIRST) :], strict=True)),
        ]
        for r, cells in zip(c.rows, body, strict=True)
    ]
    best = {(i, len(FIRST) + j) for i, r in enumerate(c.rows) for j, key in enumerate(keys) if key in r.best}
    slo_text = f"{c.slo.name}: {c.slo.describe()}"
    parts = [
        "<h1>Goodput comparison</h1>",
        f'<div class="sub">SLO {page.esc(slo_text)}<br>{len(c.runs)} runs in {len(c.rows)} rows; repeats: {page.esc(c.mode)} '
        "(ranges: min–max over repeats; [low–high]: 95 % interval). Highlighted: best in its dataset beyond noise; "
        "★ tied: best within noise of another (their intervals overlap).</div>",
        "<h2>Results</h2>",
        f'<div class="scroll">{page.table(headers, body, best=best)}</div>',
    ]
    for p, caption in figs:
        parts.append(page.figure(p, caption))
    parts += [
        pareto_render.html(pareto_view.of_comparison(c)),
        tenants.comparison_html(c),
        models.comparison_html(c),
    ]
    multi = [r for r in c.rows if r.runs > 1]
    if multi:
        parts.append("<h2>Repeats</h2>")
        parts.append(page.table(REPEATS_HEADERS, [[r.label, str(r.runs), r.best_run] for r in multi]))
    parts.append("<h2>Runs</h2>")
    runs = [[r.label, d] for r in c.rows for d in r.folders]
    parts.append(page.table(["configuration", "run folder"], runs, cls="meta"))
    return page.page("Goodput comparison", "\n".join(parts))
