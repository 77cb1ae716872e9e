"""From completed cells to the comparison (Table 4.2 extended) and the leaderboard's entries.

Each run is analyzed once per SLO of the matrix with analysis/ (the same code as
`python -m analysis compare`), so one run answers every SLO: a cell is a load run, the SLO is a
judgement made afterwards. Repeats of a configuration collapse into medians with their min–max
(analysis.compare.group). Configurations are identified by the arena's label, not by the URL
(each cell's server listens on a fresh port).
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import compare
from analysis.load import AnalysisError, load_run
from analysis.summary import Analysis, analyze
from arena.matrix import Cell, Matrix
from core.slo import Slo, parse_slo, with_target


@dataclass
class Section:
    """One comparison table: every configuration × dataset of one shape, judged under one SLO."""

    slo: Slo
    slo_spec: str
    shape: str
    rows: list[dict]
    per_run: list[dict]
    analyses: list[Analysis]
    lower_bound: dict[str, bool]  # grouped row config → capacity is only "≥" in every run
    ended: dict[str, float]  # run folder → when its load run ended (unix time)
    caps: dict[str, list]  # grouped row config → capacity of each repeat (None: no level met the SLO)

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
            runs.append((cell, load_run(path)))
        except AnalysisError as e:
            warn(f"arena: warning: {path}: left out of the comparison ({e})")
    sections = []
    order = {
        (t.label, d): i for i, (d, t) in enumerate((d, t) for d in matrix.datasets for t in matrix.targets)
    }
    for spec in matrix.slos:
        slo = with_target(parse_slo(spec), matrix.attain_target)
        for shape in matrix.shapes:
            per_run, analyses, bounds, ended, caps = [], [], {}, {}, {}
            for cell, run in runs:
                if cell.shape.label != shape.label:
                    continue
                try:
                    a = analyze(run, slo)
                except AnalysisError as e:
                    warn(f"arena: warning: {run.path}: left out of the comparison ({e})")
                    continue
                row = compare.run_row(a)
                key = _config_key(cell)
                row.update(label=cell.target.label, name=cell.target.label, config=key)
                row.update(target=cell.target.describe(), shape=shape.label, dataset=cell.dataset)
                cap = a.summary["capacity"]
                lower = cap.get("value") is not None and cap.get("bounded") is False
                bounds[key] = bounds.get(key, True) and lower
                caps.setdefault(key, []).append(cap.get("value"))
                per_run.append(row)
                analyses.append(a)
                t_end = run.meta.get("t_end_unix")
                ended[row["dir"]] = float(t_end) if isinstance(t_end, int | float) else time.time()
            if not per_run:
                continue
            rows = compare.group(per_run, "median")
            rows.sort(key=lambda r: order.get((r["name"], r["dataset"]), 0))
            sections.append(Section(slo, spec, shape.label, rows, per_run, analyses, bounds, ended, caps))
    return sections


def _section_md(sec: Section, n_shapes: int) -> str:
    md = compare.render_markdown(
        sec.rows, f"{sec.slo.name}: {sec.slo.describe()}", "median", len(sec.per_run)
    )
    head = f"## SLO {sec.slo.name}" + (f" · shape {sec.shape}" if n_shapes > 1 else "")
    md = md.replace("# Comparison", head, 1).replace("\n## Repeats", "\n### Repeats")
    return md.replace(
        "Definitions: README.md § Analysis. Every figure is recomputed from each run's requests.csv.\n", ""
    )


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
        out = root / "compare" / sec.slug
        compare.write_outputs(
            out, sec.rows, sec.per_run, sec.analyses, sec.slo, "median", with_plots=matrix.plots
        )
        buf = io.StringIO((out / "comparison.csv").read_text())
        reader = csv.DictReader(buf)
        fields = ["slo", "shape", *(reader.fieldnames or [])]
        merged += [{"slo": sec.slo.name, "shape": sec.shape, **r} for r in reader]
    lines.append(
        "Definitions: README.md § Analysis. Every figure is recomputed from each run's requests.csv.\n"
    )
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
        for r in sec.rows:
            t = by_label[r["name"]]
            dirs = r.get("run_dirs") or [r["dir"]]
            date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(max(sec.ended[d] for d in dirs)))
            out.append(
                {
                    "matrix": matrix.name,
                    "config": t.label,
                    "dataset": r["dataset"],
                    "shape": sec.shape,
                    "slo": sec.slo.name,
                    "shape_args": shape_args[sec.shape],
                    "slo_text": sec.slo.describe(),
                    "date": date,
                    "engine": t.engine,
                    "params": dict(t.params),
                    "target": t.describe(),
                    "model": r["model"] or "",
                    **hw,
                    "runs": r["runs"],
                    "capacity": r["capacity_at_slo"],
                    "capacity_unit": r["capacity_unit"],
                    "capacity_lower_bound": int(sec.lower_bound.get(r["config"], False)),
                    "capacity_runs": sec.caps.get(r["config"], []),
                    "goodput": r["goodput_req_per_s"],
                    "attainment": r["slo_attainment"],
                    "req_per_s": r["req_per_s"],
                    "output_tok_per_s": r["output_tok_per_s"],
                    "latency_p95_s": r["latency_p95_s"],
                    "ttft_p95_s": r["ttft_p95_s"],
                    "tpot_p95_s": r["tpot_p95_s"],
                    "run_dirs": dirs,
                }
            )
    return out
