"""Every file the analysis writes: a run's summary.json, summary.md, plots and report.html; a comparison's files.

A run's outputs are made in a staging folder inside the run folder and moved into place at the
end: a run that fails half-way (e.g. a bad ITL value found while plotting) leaves the run folder
untouched. The plots are drawn while the ITL gaps are still parsing in the background (the CDF
plot, which needs them, comes last), which hides most of the parse on a big run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from analysis import pareto
from analysis.compare import Comparison, curve_labels
from analysis.metrics import latency_values
from analysis.render import comparison, html, markdown, plots, uncertainty
from analysis.render import pareto as pareto_render
from analysis.render import server as server_render
from analysis.render import spans as spans_render
from analysis.summary import Analysis

Lap = Callable[[str], None]  # called with a phase name when the phase ends (`--timings`)


def run_plots(a: Analysis, out_dir: Path) -> list[tuple[Path, str]]:
    """Write the run's PNGs under `out_dir` and return (path, caption) in report order."""
    s, df = a.summary, a.run.df
    in_run = a.in_run if len(a.in_run) == len(df) else df["in_run_stats"].to_numpy()
    sel = df[in_run]
    t0 = s.throughput.t_start_unix
    out: dict[str, tuple[Path, str]] = {}
    if s.steps:
        out["load"] = (
            plots.latency_vs_load(s.steps, s.load_unit, a.slo, s.capacity, out_dir / "latency_vs_load.png"),
            "Latency percentiles, throughput, goodput and SLO attainment per load level.",
        )
        out["goodput"] = (
            plots.goodput_vs_throughput(s.steps, s.load_unit, a.slo, out_dir / "goodput_vs_throughput.png"),
            "Goodput vs throughput per step: distance below the diagonal = requests that missed the SLO.",
        )
        if p := uncertainty.plot(s.capacity, a.slo, out_dir / uncertainty.FIGURE):
            out["capacity"] = (
                p,
                "SLO attainment per load level with its 95 % interval, and the capacity at SLO with its 95 % "
                "interval (shaded): where attainment crosses the target, and how surely.",
            )
    level = {st.step: st.load for st in s.steps}
    saturated = [list(w) for w in s.saturated_windows]
    late = [list(w) for w in s.late_windows]
    out["time"] = (
        plots.timeseries(
            sel, a.good[in_run], t0, saturated, out_dir / "timeseries.png", level, s.load_unit, late
        ),
        "Throughput, goodput, errors and latency over the run, with the load level (users or arrival rate).",
    )
    if a.server_series is not None:
        out["server"] = (
            server_render.plot(a.server_series, sel, t0, out_dir / "server_metrics.png", level),
            "Server beside client on one time axis: client throughput and TTFT vs the engine's TTFT; the engine's "
            "running/waiting requests; KV-cache usage and prefix-cache hit rate (server_metrics.csv).",
        )
    if s.server_timing is not None and (
        p := spans_render.plot(s.server_timing, out_dir / spans_render.FIGURE)
    ):
        out["timing"] = (
            p,
            "Mean TTFT and E2E per load step, split by the engine's spans (server_spans.csv).",
        )
    out["cdf"] = (  # last: the only plot that waits for the ITL parse
        plots.cdfs(
            latency_values(sel, "ttft_s"), latency_values(sel, "tpot_s"), a.itl, latency_values(sel, "e2e_s"),
            a.slo, out_dir / "cdf.png",
        ),
        "Distributions of TTFT, TPOT, ITL and E2E latency with the SLO limits.",
    )  # fmt: skip
    order = ("load", "capacity", "goodput", "cdf", "time", "server", "timing")
    return [out[k] for k in order if k in out]


def write_run(
    a: Analysis, with_plots: bool = True, with_html: bool = True, lap: Lap | None = None
) -> Path | None:
    """summary.json, summary.md, plots/ and report.html into the run folder; the report's path (None without it).

    Raises OSError when the folder cannot be written, AnalysisError when the ITL gaps turn out bad.
    """
    lap = lap or (lambda _what: None)
    out = a.run.path
    staging = Path(tempfile.mkdtemp(prefix=".analysis-", dir=out))
    try:
        figs = run_plots(a, staging / "plots") if with_plots else []
        a.finish()
        lap("plots + ITL")
        s = a.summary
        (staging / "summary.json").write_text(s.to_json())
        (staging / "summary.md").write_text(markdown.summary_md(s))
        if with_html:
            (staging / "report.html").write_text(html.render(s, a.run.meta, figs), encoding="utf-8")
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    lap("write")
    return out / "report.html" if with_html else None


def publish(staging: Path, out: Path) -> None:
    """Move the finished outputs from `staging` into the run folder, replacing an earlier analysis."""
    for item in sorted(staging.iterdir()):
        dest = out / item.name
        if item.is_dir() and dest.is_dir():
            shutil.rmtree(dest)
        os.replace(item, dest)


def comparison_plots(c: Comparison, out_dir: Path) -> list[tuple[Path, str]]:
    """The comparison's bar chart and load curves (path, caption)."""
    bars = plots.compare_bars(c.rows, out_dir / "compare_bars.png", f"Comparison under SLO {c.slo.name}")
    curves = [
        (label, s.steps, s.load_unit) for label, s in zip(curve_labels(c.runs), c.summaries, strict=True)
    ]
    load = plots.compare_load_curves(curves, c.slo, out_dir / "compare_load.png")
    figs = [
        (bars, "Headline metrics per configuration (whiskers: min–max over repeats)."),
        (load, "SLO attainment, goodput and p95 latency per load level, one line per run."),
    ]
    views = pareto.of_comparison(c)  # one per dataset
    for i, view in enumerate(views):
        if view.points:
            path = pareto_render.plot(view, out_dir / pareto_render.figure_name(i, len(views)))
            figs.append((path, pareto_render.CAPTION.format(slo=c.slo.name, dataset=view.dataset)))
    return figs


def write_comparison(out: Path, c: Comparison, with_plots: bool = True) -> None:
    """comparison.md, comparison.csv, report.html and plots/compare_*.png under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    figs = comparison_plots(c, out / "plots") if with_plots else []
    (out / "comparison.md").write_text(comparison.markdown(c))
    comparison.write_csv(c.rows, out / "comparison.csv")
    (out / "report.html").write_text(comparison.html(c, figs), encoding="utf-8")
