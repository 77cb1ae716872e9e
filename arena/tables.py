"""From completed cells to the comparison (Table 4.2 extended) and the leaderboard's entries.

Each run is analyzed once per SLO of the matrix through analysis.api (the same code as
`python -m analysis compare`), so one run answers every SLO: a cell is a load run, the SLO is a
judgement made afterwards. Repeats of a configuration collapse into medians with their min–max
(`api.group`). Configurations are identified by the arena's label, not by the URL (each cell's
server listens on a fresh port). comparison.md is composed here, one section per SLO (and
shape) under the arena's own headings, from the analysis' comparison pieces.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import api
from arena import mixview
from arena.matrix import Cell, Matrix
from core.slo import Slo, parse_slo, with_target

FOOTER = "Definitions: README.md § Analysis. Every figure is recomputed from each run's requests.csv."


@dataclass
class Section:
    """One comparison table: every configuration × dataset of one shape, judged under one SLO."""

    slo_spec: str
    shape: str
    comparison: api.Comparison
    lower_bound: dict[str, bool]  # grouped row config → capacity is only "≥" in every run
    ended: dict[str, float]  # run folder → when its load run ended (unix time)
    caps: dict[str, list]  # grouped row config → capacity of each repeat (None: no level met the SLO)
    interference: dict[str, list] = dataclasses.field(
        default_factory=dict
    )  # config → its mix's classes vs alone

    @property
    def slo(self) -> Slo:
        return self.comparison.slo

    @property
    def rows(self) -> list[api.ComparisonRow]:
        return self.comparison.rows

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{self.slo.name}__{self.shape}").strip("-")


def _config_key(cell: Cell) -> str:
    return json.dumps([cell.target.label, cell.dataset, cell.shape.label])


def evaluate(matrix: Matrix, done: list[tuple[Cell, Path]], warn: Any = print) -> list[Section]:
    """Analyze every completed run under every SLO; one Section per (SLO, shape)."""
    runs = []
    for cell, path in done:
        try:
            runs.append((cell, api.load_run(path)))
        except api.AnalysisError as e:
            warn(f"arena: warning: {path}: left out of the comparison ({e})")
    sections = []
    for spec in matrix.slos:
        slo = with_target(parse_slo(spec), matrix.attain_target)
        for shape in matrix.shapes:
            mine = [(cell, run) for cell, run in runs if cell.shape.label == shape.label]
            section = _section(matrix, spec, slo, shape.label, mine, warn)
            if section is not None:
                sections.append(section)
    return sections


def _section(matrix: Matrix, spec: str, slo: Slo, shape: str, runs: list, warn: Any) -> Section | None:
    """The runs of one shape under one SLO, rows named after the matrix' configurations, in its order."""
    per_run, summaries, bounds, ended, caps = [], [], {}, {}, {}
    for cell, run in runs:
        if cell.alone:  # a mix's class alone: the interference view's reference, not a row of its own
            continue
        try:
            s = api.analyze(run, slo).summary
        except api.AnalysisError as e:
            warn(f"arena: warning: {run.path}: left out of the comparison ({e})")
            continue
        key = _config_key(cell)
        label = cell.target.label
        row = dataclasses.replace(
            api.run_row(s), label=label, name=label, config=key, target=cell.target.describe(), shape=shape,
            dataset=cell.dataset,
        )  # fmt: skip
        lower = s.capacity.value is not None and not s.capacity.bounded
        bounds[key] = bounds.get(key, True) and lower
        caps.setdefault(key, []).append(s.capacity.value)
        per_run.append(row)
        summaries.append(s)
        t_end = run.meta.get("t_end_unix")
        ended[row.dir] = float(t_end) if isinstance(t_end, int | float) else time.time()
    if not per_run:
        return None
    order = {
        (t.label, d): i for i, (d, t) in enumerate((d, t) for d in matrix.datasets for t in matrix.targets)
    }
    rows = api.group(per_run, "median")
    rows.sort(key=lambda r: order.get((r.name, r.dataset), 0))
    pairs = mixview.interference(runs, slo, _config_key)
    found = [x for xs in pairs.values() for x in xs]
    comparison = api.Comparison(slo, "median", rows, per_run, summaries, interference=found)
    return Section(spec, shape, comparison, bounds, ended, caps, pairs)


def _section_md(sec: Section, n_shapes: int) -> str:
    """One SLO's part of comparison.md: its heading, the comparison's bullets, table and repeats."""
    head = f"## SLO {sec.slo.name}" + (f" · shape {sec.shape}" if n_shapes > 1 else "")
    c = sec.comparison
    lines = [head, "", *api.comparison_intro(c), "", api.comparison_table_md(c.rows), ""]
    lines += [*api.comparison_repeats_md(c.rows, heading="### Repeats"), ""]
    return "\n".join(lines)


def write_comparison(root: Path, matrix: Matrix, sections: list[Section]) -> None:
    """`comparison.md` (a table per SLO), `comparison.csv` (slo and shape columns added) and,
    per SLO, analysis' own comparison folder `compare/<slo>__<shape>/` with its report.html."""
    lines = [
        f"# Comparison — matrix {matrix.name}",
        "",
        *([matrix.description, ""] if matrix.description else []),
        "The research's Table 4.2 (latency p95, TPOT p95, TTFT p50/p95) plus throughput, goodput, "
        "SLO attainment and capacity at SLO, one table per SLO profile. Medians over repeats "
        "(min–max in brackets); ★ marks the best value of a column within a dataset.",
        "",
    ]
    merged: list[dict] = []
    fields: list[str] = []
    for sec in sections:
        lines.append(_section_md(sec, len(matrix.shapes)))
        api.write_comparison(root / "compare" / sec.slug, sec.comparison, with_plots=matrix.plots)
        names, records = api.comparison_csv_records(sec.rows)
        fields = ["slo", "shape", *names]
        merged += [{"slo": sec.slo.name, "shape": sec.shape, **r} for r in records]
    lines.append(FOOTER + "\n")
    (root / "comparison.md").write_text("\n".join(lines))
    with open(root / "comparison.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(merged)


def entries(matrix: Matrix, sections: list[Section], hw: dict[str, Any]) -> list[dict[str, Any]]:
    """Leaderboard entries (arena/store.py COLUMNS), one per grouped comparison row."""
    by_label = {t.label: t for t in matrix.targets}
    shape_args = {s.label: " ".join(s.args) for s in matrix.shapes}
    out = []
    for sec in sections:
        points = mixview.pareto_points(sec.comparison)
        for r in sec.rows:
            t = by_label[r.name]
            dirs = r.folders
            date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(sec.ended[d] for d in dirs)))
            out.append(
                {
                    "matrix": matrix.name,
                    "config": t.label,
                    "dataset": r.dataset,
                    "shape": sec.shape,
                    "slo": sec.slo.name,
                    "shape_args": shape_args[sec.shape],
                    "slo_text": sec.slo.describe(),
                    "date": date,
                    "engine": t.engine,
                    "params": dict(t.params),
                    "target": t.describe(),
                    "model": r.model or "",
                    **hw,
                    "runs": r.runs,
                    "capacity": r.figures.capacity_at_slo,
                    "capacity_unit": r.capacity_unit,
                    "capacity_lower_bound": int(sec.lower_bound.get(r.config, False)),
                    "capacity_runs": sec.caps.get(r.config, []),
                    "goodput": r.figures.goodput_req_per_s,
                    "attainment": r.figures.slo_attainment,
                    "req_per_s": r.figures.req_per_s,
                    "output_tok_per_s": r.figures.output_tok_per_s,
                    "latency_p95_s": r.figures.latency_p95_s,
                    "ttft_p95_s": r.figures.ttft_p95_s,
                    "tpot_p95_s": r.figures.tpot_p95_s,
                    "ttfo_p50_s": r.figures.ttfo_p50_s,
                    "ttfo_p95_s": r.figures.ttfo_p95_s,
                    "reasoning_tokens": r.figures.reasoning_tokens_mean,
                    "run_dirs": dirs,
                    "pareto": points.get((r.label, r.dataset), []),
                    "interference": "; ".join(x.phrase() for x in sec.interference.get(r.config, [])) or None,
                    **_interval_columns(r),
                }
            )
    return out


def _interval_columns(r: api.ComparisonRow) -> dict[str, float | None]:
    """capacity/goodput/attainment 95 % intervals (repeats merged) as store columns; None: open or absent."""
    out: dict[str, float | None] = {}
    for key, name in (
        ("capacity_at_slo", "capacity"),
        ("goodput_req_per_s", "goodput"),
        ("slo_attainment", "attainment"),
    ):
        iv = r.interval(key)
        out[f"{name}_low"], out[f"{name}_high"] = (None, None) if iv is None else (iv.low, iv.high)
    return out
