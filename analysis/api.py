"""The analysis' public API: load a run, analyze it under SLOs, compare runs, write and render the results.

Everything outside analysis/ (the arena, benches, notebooks) uses this module and nothing else of
the package. A run from folder to report::

    from analysis import api
    from core.slo import parse_slo

    run = api.load_run("results/my-run")  # requests.csv + run.json; api.AnalysisError if unusable
    a = api.analyze(run, parse_slo("chat"))  # every figure under the chat SLO
    s = a.summary  # an api.Summary: typed fields, e.g. s.throughput.goodput_req_per_s
    print(s.capacity.value, s.capacity.unit, s.verdict.passed)
    api.write_run(a)  # summary.json, summary.md, plots/, report.html into the run folder

Several runs side by side::

    c = api.compare([api.analyze(api.load_run(d), slo).summary for d in dirs], slo, mode="median")
    for row in c.rows:  # api.ComparisonRow: one per configuration (repeats grouped)
        print(row.label, row.figures.goodput_req_per_s, row.best)
    api.write_comparison(Path("out"), c)  # comparison.md/.csv, report.html, plots/

Loading and analyzing:
- `load_run(path) -> Run`: the run folder's rows and run.json (`Run.meta`); one-line
  `AnalysisError` for a missing folder, a corrupt CSV, a missing column.
- `analyze(run, slo, extra=None, wait=True, include_startup=False) -> Analysis`: `Analysis.summary`
  is the `Summary`; `extra` SLOs get a verdict too (as does every built-in profile), each with the
  capacity where it breaks. With `wait=False` the ITL gaps parse in the background until
  `Analysis.finish()` (what `write_run` does while it plots). The start-up (every user spawned and
  its first request sent) is left out of the headline unless `include_startup`.

The result types (analysis/results.py; fields in their docstrings):
- `Summary`: `run` (`RunInfo`), `slo`, `throughput` (`Throughput`), `errors`, `ttft`/`tpot`/`itl`/`e2e`
  (`Dist`: mean, p50, p90, p95, p99, max, n), `verdicts` (`Verdict` with `Check`s and its
  `Capacity`; `verdict` is the primary one), `load_unit`, `steps` (`Step`, with `StepPercentiles`
  ttft/tpot/e2e and `truncated`), `capacity` (`Capacity` with `Level`s; `bounded` False means "≥"),
  `open_loop` (`OpenLoop` or None), `server` (`ServerSummary` or None), `startup`
  (`StartupFigures` or None), `warnings`, `server_timing` (`ServerTiming` or None: the engine's
  spans joined per request — or, without spans, the server's own timing its stream stated, `source`
  "stream" — with `Decomposition`s, `Shares`, `Misses` and a `TimingStep` per step;
  analysis/timing.py). `Summary.to_json()` is the text of summary.json.
- `Comparison` (analysis/compare.py): `slo`, `mode`, `rows` and `runs` (`ComparisonRow`: label,
  dataset, runs, `figures`/`low`/`high` (`Figures`), `capacity_unit`, `capacity_lower_bound` (the
  capacity is "≥"), `best`, `best_run`, `folders`), `summaries`.

Per request: `request_timing(run)`, the engine's spans (server_spans.csv) joined with the rows: a
pandas DataFrame (server queue/prefill/decode/TTFT/E2E and the client remainders, README.md § Where
the time went); without spans, the rows' own server timing (load/prefill/decode and the waiting);
None with neither.

Comparing: `compare(summaries, slo, mode)`; or step by step, to relabel runs before grouping
(the arena names runs after its configurations): `run_row(summary)`, `dataclasses.replace` the
row, `group(rows, mode)`, then `Comparison(slo, mode, rows, runs, summaries)`. `REPEAT_MODES`
lists the modes, `METRICS` the compared figures with their direction.

Mixed tenants (`--mix`): `Summary.tenants` is a `Tenants` (`TenantFigures` per class, each with its
`TenantLevel`s; analysis/tenants.py), None for a run without classes. `interference(label, mixed,
alone)` compares a mixed run's classes with one-class runs of them (`ClassInterference`, each with
its `Delta`s and `phrase()`); `Comparison(..., interference=[...])` makes a comparison show given
pairs instead of pairing its runs by target and model. The Pareto view of a comparison:
`pareto_of(comparison)` → a `Pareto` per dataset (`ParetoPoint`s, frontier and best-at-load marked;
analysis/pareto.py), `pareto(series, slo)` for any (label, summary) list.

Several models in one run (`--models`, LoRA adapters): `Summary.models` is a `Models` (`ModelFigures`
per model, each under the primary SLO with its `GroupLevel`s, and the `Worst` the report names;
analysis/models.py), None unless the rows name two models or more.

The load generator's own health, from run.json `loadgen` (`Run.meta`): `saturation_warnings(meta)`
(the saturated windows and their report lines) and `late_read_warnings(meta)` (a line per window
in which a worker's reads waited in the kernel past the lag threshold), the lines the report's
warnings use (the windows' rules: loadgen/monitors/selfjudge.py).

Writing: `write_run(analysis, with_plots, with_html, lap)` (staged, then moved into the run
folder; OSError when it cannot write), `write_comparison(out, comparison, with_plots)`.

Rendering to text, for pages composed elsewhere: `summary_markdown(summary)`, `console_text(summary,
report_path)`, `comparison_markdown(c)`, `comparison_text(c)` (the console table), and the
comparison's pieces `comparison_intro(c)`, `comparison_table_md(rows)`,
`comparison_repeats_md(rows, heading)`, `comparison_csv_records(rows)`; `fmt` formats numbers
the way every output does (`fmt.ms`, `fmt.num`, `fmt.pct`, `fmt.md_table`).

Importing this module is cheap (no pandas, numpy or matplotlib): those load on the first call
that needs them, so a leaderboard that only formats numbers does not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from analysis import fmt
from analysis.compare import (
    METRICS,
    REPEAT_MODES,
    Comparison,
    ComparisonRow,
    Figures,
    compare,
    group,
    run_row,
)
from analysis.errors import AnalysisError
from analysis.health import late_read_warnings, saturation_warnings
from analysis.interference import ClassInterference, Delta, interference
from analysis.modelresults import ModelFigures, Models, Worst
from analysis.pareto import Pareto, ParetoPoint, pareto
from analysis.pareto import of_comparison as pareto_of
from analysis.render.comparison import csv_records as comparison_csv_records
from analysis.render.comparison import intro as comparison_intro
from analysis.render.comparison import markdown as comparison_markdown
from analysis.render.comparison import repeats_md as comparison_repeats_md
from analysis.render.comparison import table_md as comparison_table_md
from analysis.render.comparison import text as comparison_text
from analysis.results import (
    Capacity,
    Check,
    Dist,
    Level,
    OpenLoop,
    RunInfo,
    ServerFigures,
    ServerSummary,
    StartupFigures,
    Step,
    StepPercentiles,
    StepServer,
    Summary,
    Throughput,
    Verdict,
)
from analysis.tenantresults import GroupLevel, TenantFigures, TenantLevel, Tenants
from analysis.timing import Decomposition, Misses, ServerTiming, Shares, TimingStep
from core.slo import Slo

if TYPE_CHECKING:
    import pandas as pd

    from analysis.load import Run
    from analysis.outputs import Lap
    from analysis.summary import Analysis

__all__ = [
    "METRICS",
    "REPEAT_MODES",
    "AnalysisError",
    "Capacity",
    "Check",
    "ClassInterference",
    "Comparison",
    "ComparisonRow",
    "Decomposition",
    "Delta",
    "Dist",
    "Figures",
    "GroupLevel",
    "Level",
    "Misses",
    "ModelFigures",
    "Models",
    "OpenLoop",
    "Pareto",
    "ParetoPoint",
    "RunInfo",
    "ServerFigures",
    "ServerSummary",
    "ServerTiming",
    "Shares",
    "StartupFigures",
    "Step",
    "StepPercentiles",
    "StepServer",
    "Summary",
    "TenantFigures",
    "TenantLevel",
    "Tenants",
    "Throughput",
    "TimingStep",
    "Verdict",
    "Worst",
    "analyze",
    "compare",
    "comparison_csv_records",
    "comparison_intro",
    "comparison_markdown",
    "comparison_repeats_md",
    "comparison_table_md",
    "comparison_text",
    "console_text",
    "fmt",
    "group",
    "interference",
    "late_read_warnings",
    "load_run",
    "pareto",
    "pareto_of",
    "request_timing",
    "run_row",
    "saturation_warnings",
    "summary_markdown",
    "write_comparison",
    "write_run",
]  # fmt: skip


def load_run(path: str | Path) -> Run:
    """Run folder → `Run` (requests.csv rows + run.json), or `AnalysisError` naming what is wrong."""
    from analysis.load import load_run as load

    return load(path)


def analyze(
    run: Run, slo: Slo, extra: list[Slo] | None = None, wait: bool = True, include_startup: bool = False
) -> Analysis:
    """Every figure of `run` under `slo`; `Analysis.summary` is the `Summary`. `include_startup` keeps
    the start-up's requests in the headline (reported apart either way)."""
    from analysis.summary import analyze as analyze_run

    return analyze_run(run, slo, extra, wait, include_startup)


def request_timing(run: Run) -> pd.DataFrame | None:
    """One row per request of `run`: the engine's timing of it where its span joined, or where its
    stream stated it (analysis/spans.py, analysis/enginetiming.py)."""
    from analysis.spans import per_request

    return per_request(run)


def write_run(
    analysis: Analysis, with_plots: bool = True, with_html: bool = True, lap: Lap | None = None
) -> Path | None:
    """summary.json, summary.md, plots/ and report.html into the run folder; the report's path."""
    from analysis.outputs import write_run as write

    return write(analysis, with_plots, with_html, lap)


def write_comparison(out: Path, comparison: Comparison, with_plots: bool = True) -> None:
    """comparison.md, comparison.csv, report.html and plots/ under `out`."""
    from analysis.outputs import write_comparison as write

    write(out, comparison, with_plots)


def summary_markdown(summary: Summary) -> str:
    """summary.md's text."""
    from analysis.render.markdown import summary_md

    return summary_md(summary)


def console_text(summary: Summary, report: Path | None = None) -> str:
    """What `python -m analysis RUN` prints for a run."""
    from analysis.render.markdown import console_text as text

    return text(summary, report)
