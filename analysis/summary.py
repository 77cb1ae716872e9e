"""One run → every figure under one primary SLO: `analyze()` returns an `Analysis` whose `summary` is the typed result.

The figures come from requests.csv through analysis/metrics.py (distributions, throughput,
verdicts, open loop), analysis/steps.py (per-level table, capacity) and analysis/server.py (the
engine's own series), over the windows analysis/windows.py defines; this module only selects the
rows (the start-up and the first warm-up out of the headline), picks the SLOs to judge and
assembles the `Summary` (analysis/results.py), whose `to_json()` is summary.json. Writing it,
summary.md, the plots and report.html is analysis/outputs.py's job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import enginetiming, intervals, server, serverside, spans
from analysis import windows as win
from analysis.connections import reconnect_warnings
from analysis.delivery import burst_warnings, chunking_warnings, uncounted_warnings
from analysis.errors import AnalysisError
from analysis.gateway import gateway_warnings
from analysis.groups import RunRows
from analysis.health import late_reads, saturation_warnings
from analysis.images import image_figures
from analysis.itl import Distribution, PendingDistribution
from analysis.load import Run
from analysis.metrics import (
    dist,
    dist_itl,
    errors_by_category,
    good_mask,
    judged,
    latency_values,
    open_loop,
    reasoning,
    throughput,
    tool_calls,
    verdict,
)
from analysis.models import model_figures
from analysis.results import (
    Dist,
    RunInfo,
    StartupFigures,
    Step,
    Summary,
    Throughput,
    Verdict,
)
from analysis.specdecode import speculative
from analysis.steps import Levels, LevelSpans, capacity_at_slo, good_by_step, step_table
from analysis.tenants import class_values, tenant_figures
from core.slo import PROFILES, Slo


@dataclass
class Analysis:
    """A run and everything computed from it under one primary SLO: the `summary`, plus the rows'
    good/not-good mask, the ITL distribution and the server series the plots are drawn from."""

    run: Run
    slo: Slo
    summary: Summary
    good: np.ndarray
    itl: Distribution | PendingDistribution
    server_series: server.ServerData | None = None
    in_run: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # rows in the headline

    def finish(self) -> Analysis:
        """Wait for the ITL figures (parsed in the background) and put them in the summary."""
        if isinstance(self.itl, PendingDistribution):
            self.itl = self.itl.result()
            self.summary.itl = dist_itl(self.itl)
            self.summary.warnings += burst_warnings(self.itl)
        return self


def judged_slos(slo: Slo, extra: list[Slo] | None) -> list[Slo]:
    """The SLOs that get a verdict: the primary one, the others asked for, then every profile not yet in."""
    slos = [slo] + [s for s in (extra or []) if s.name != slo.name]
    return slos + [p for name, p in PROFILES.items() if name not in {s.name for s in slos}]


def analyze(
    run: Run, slo: Slo, extra: list[Slo] | None = None, wait: bool = True, include_startup: bool = False
) -> Analysis:
    """All figures of `run` under `slo` (goodput, attainment, capacity) + verdicts for `extra` and every profile.

    With `wait=False` the ITL figures may still be parsing: call `Analysis.finish()` before
    reading `summary.itl` (the CLI draws the other plots meanwhile). `include_startup` keeps the
    start-up's requests in the headline and the first level (they are reported apart either way).
    """
    df = run.df
    up = win.startup(df, run.meta)
    cut = up.rows if up is not None and not include_startup else np.zeros(len(df), dtype=bool)
    in_run, in_step = (df[c].to_numpy() & ~cut for c in ("in_run_stats", "in_step_stats"))
    ok = df["ok"].to_numpy(dtype=bool)
    good = good_mask(df, slo)
    sel = df[in_run]
    if sel.empty:
        raise AnalysisError(f"{run.path}: every request fell in the warm-up or start-up; nothing to analyze")
    itl = PendingDistribution(run.itl, in_run & ok, where=str(run.path / "requests.csv"))
    tp = throughput(df, in_run, good, run.itl)
    up_end = up.t_end_unix if up is not None and not include_startup else None
    steps, unit = step_table(df, good, Levels(run.meta, run.itl, in_step, up_end))
    windows, sat_warnings = saturation_warnings(run.meta)
    late_windows, late_warnings = late_reads(run.meta)
    side = serverside.read(run, tp, steps)
    series, server_summary, steps, server_warnings = side.series, side.summary, side.steps, side.warnings
    slos = judged_slos(slo, extra)
    level_spans = LevelSpans(df, in_step, steps)
    verdicts = with_capacity(
        [verdict(df, in_run, itl, s) for s in slos], slos, steps, unit,
        lambda s: good_by_step(df, in_step, good_mask(df, s)),
        lambda s: level_spans.counts(good_mask(df, s)),
    )  # fmt: skip
    ttft, tpot, e2e = (dist(latency_values(sel, f"{m}_s")) for m in ("ttft", "tpot", "e2e"))
    rs = intervals.resampler(_sessions(sel), len(sel))
    head, verdicts = headline_intervals(df, in_run, good, tp, (ttft, tpot, e2e), rs, verdicts, slos)
    spec = speculative(df, in_run, in_step, steps, server_summary, class_values(run.meta, df, slo))
    summary = Summary(
        run=run_info(run),
        slo=slo,
        throughput=tp,
        errors=errors_by_category(sel),
        ttft=ttft,
        tpot=tpot,
        itl=None,  # filled by Analysis.finish()
        e2e=e2e,
        verdicts=verdicts,
        load_unit=unit,
        steps=steps,
        capacity=capacity_at_slo(steps, slo.attain_target, unit, blocks=level_spans.counts(good)),
        open_loop=open_loop(sel, slo),
        excluded_warmup_rows=int((~df["in_run_stats"].to_numpy()).sum()),
        saturated_windows=windows,
        late_windows=late_windows,
        server=server_summary,
        warnings=sat_warnings
        + late_warnings
        + list(run.warnings)
        + server_warnings
        + chunking_warnings(sel, spec is not None)
        + uncounted_warnings(sel)
        + enginetiming.model_load_warnings(sel)
        + reconnect_warnings(df, in_run)
        + gateway_warnings(df, in_run),
        startup=startup_figures(df, up, include_startup),
        excluded_startup_rows=int((cut & df["in_run_stats"].to_numpy()).sum()),
        server_timing=spans.server_timing(run, slo, steps, in_run, in_step),
        reasoning=reasoning(sel),
        tool_calls=tool_calls(sel),
        speculative=spec,
        tenants=tenant_figures(df, run.itl, run.meta, slo, (in_run, in_step), tp, steps, unit),
        models=model_figures(RunRows(df, run.itl, in_run, in_step, tp, steps, unit), slo, run.meta),
        router=side.router,
        gateway_page=side.gateway_page,
        intervals=head,
        images=image_figures(sel),
    )
    a = Analysis(run, slo, summary, good, itl, series, in_run)
    return a.finish() if wait else a


def _sessions(sel: pd.DataFrame) -> np.ndarray | None:
    return sel["session"].astype(object).fillna("").to_numpy() if "session" in sel else None


def headline_intervals(
    df: pd.DataFrame,
    in_run: np.ndarray,
    good: np.ndarray,
    tp: Throughput,
    dists: tuple[Dist, Dist, Dist],
    rs: intervals.Resampler,
    verdicts: list[Verdict],
    slos: list[Slo],
) -> tuple[intervals.Headline, list[Verdict]]:
    """95 % intervals of the headline figures, and of each SLO's attainment and goodput (analysis/intervals.py)."""
    ok = df["ok"].to_numpy(dtype=bool)
    rows_ok = ok[in_run]
    lat = {m: np.where(rows_ok, df[f"{m}_s"].to_numpy()[in_run], np.nan) for m in ("ttft", "tpot", "e2e")}
    points = {m: {"p50": d.p50, "p95": d.p95, "p99": d.p99} for m, d in zip(lat, dists, strict=True)}
    judged_rows = judged(df[in_run])
    done = win.completed_in(df, ok, tp.t_start_unix, tp.t_end_unix)[in_run]
    head = intervals.headline(
        rs,
        lat,
        points,
        good[in_run],
        judged_rows,
        tp.slo_attainment,
        done & good[in_run],
        tp.goodput_req_per_s,
    )
    out = []
    for v, s in zip(verdicts, slos, strict=True):
        g = good_mask(df, s)[in_run]
        k = int((done & g).sum())
        gp = (
            rs.counts(done & g) * (v.goodput_req_per_s / k) if v.goodput_req_per_s is not None and k else None
        )
        out.append(
            dataclasses.replace(
                v,
                attainment_interval=intervals.from_draws(
                    rs.ratio(g & judged_rows, judged_rows), v.slo_attainment
                ),
                goodput_interval=None if gp is None else intervals.from_draws(gp, v.goodput_req_per_s),
            )
        )
    return head, out


def with_capacity(
    verdicts: list[Verdict], slos: list[Slo], steps: list[Step], unit: str, good_of, blocks_of=None
) -> list[Verdict]:
    """Each SLO's verdict with where that SLO breaks along the load levels (no levels: unchanged)."""
    if not steps:
        return verdicts
    return [
        dataclasses.replace(
            v,
            capacity=capacity_at_slo(
                steps, s.attain_target, unit, good_of(s), None if blocks_of is None else blocks_of(s)
            ),
        )
        for v, s in zip(verdicts, slos, strict=True)
    ]


def startup_figures(df: pd.DataFrame, up: win.Startup | None, included: bool) -> StartupFigures | None:
    """The start-up's own figures: its span, requests, and the TTFT / E2E of those that completed."""
    if up is None:
        return None
    rows = df[up.rows]
    return StartupFigures(
        t_start_unix=up.t_start_unix,
        t_end_unix=up.t_end_unix,
        duration_s=up.duration_s,
        users=up.users,
        requests=len(rows),
        ok=int(rows["ok"].sum()),
        included=included,
        ttft=dist(latency_values(rows, "ttft_s")),
        e2e=dist(latency_values(rows, "e2e_s")),
    )


def run_info(run: Run) -> RunInfo:
    """The run.json facts a reader needs beside the numbers (never a key: run.json holds none)."""
    m = run.meta
    shape = m.get("shape") if isinstance(m.get("shape"), dict) else {}
    return RunInfo(
        dir=str(run.path),
        name=run.name,
        run_id=m.get("run_id"),
        target=m.get("target"),
        model=m.get("model"),
        dataset=m.get("dataset") or _first(run.df, "dataset"),
        user_class=m.get("user_class"),
        transport=m.get("transport"),
        shape=shape.get("name"),
        shape_params=shape.get("params"),
        seed=m.get("seed"),
        workers=m.get("workers"),
        git_commit=m.get("git_commit"),
        locust_version=m.get("locust_version"),
        api=m.get("api"),
        models=(m.get("models") or {}).get("spec") if isinstance(m.get("models"), dict) else None,
    )


def _first(df: pd.DataFrame, col: str) -> str | None:
    if col not in df or df[col].dropna().empty:
        return None
    return str(df[col].dropna().iloc[0])
