"""The console's LLM table, printed beside Locust's own every 10 s (headless runs, or `--print-stats`).

It prints the newest sample of the run's live figures (loadgen/state/livefigures.py, the same
samples the web UI serves), over both windows: the last 10 s and the whole run. Nothing here
computes a rate: a figure means the same in the console, the web UI and /llm/stats.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust.runners import WorkerRunner

from loadgen import context
from loadgen.context import RunContext
from loadgen.state.livefigures import LATENCIES, LiveFigures
from loadgen.state.livestats import LiveStats

log = logging.getLogger("goodput")
PRINT_S = 10.0


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def console_table(live: LiveStats, point: dict, run: dict, slo_name: str) -> str:
    """Latency percentiles (whole run and last window, ms), then rates over both windows."""
    win = f"last {point['window_s']:.0f} s"
    lines: list[str] = []
    reasoned = live.entry("REASONING")
    for name in LATENCIES:
        e = live.entry(name)
        if not e.num_requests or (name == "TTFO" and not reasoned.num_requests):  # no reasoning: TTFO is TTFT
            continue
        pct = e.get_response_time_percentile
        key = name.lower()
        lines.append(
            f"{name:<10} {e.num_requests:>8} {pct(0.5):>9.0f} {pct(0.95):>9.0f} {pct(0.99):>9.0f}"
            f" {_num(point.get(f'{key}_p50'), '.0f'):>9} {_num(point.get(f'{key}_p95'), '.0f'):>9}"
        )
    if lines:
        head = f"{'LLM metric':<10} {'count':>8} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}"
        lines.insert(0, head + f" {win[5:] + ' p50':>9} {win[5:] + ' p95':>9}")
    rows = (
        ("completed req/s", _num(point["ok_rps"], ".2f"), _num(run["ok_rps"], ".2f")),
        ("goodput req/s", _num(point["goodput_rps"], ".2f"), _num(run["goodput_rps"], ".2f")),
        ("output tok/s", _num(point["out_tok_s"], ".0f"), _num(run["out_tok_s"], ".0f")),
        (f"SLO[{slo_name}] attainment", _pct(point["attainment"]), _pct(run["attainment"])),
        ("error ratio", _pct(point["error_ratio"]), _pct(run["error_ratio"])),
    )
    lines.append(f"{'':<24} {win:>12} {'run':>12}")
    lines += [f"{label:<24} {now:>12} {whole:>12}" for label, now, whole in rows]
    lines.append(
        f"sent {run['sent']}  ok {run['ok']}  failed {run['failed']}  in flight {point.get('in_flight', 0)}"
        f"  at {point['elapsed_s']:.1f} s of the run (sample {point['seq']})"
    )
    if reasoned.num_requests:
        n, pct = reasoned.num_requests, reasoned.get_response_time_percentile
        lines.append(
            f"reasoning: {n} requests, {reasoned.total_content_length / n:.0f} tokens per request, "
            f"reasoning time p50 {pct(0.5):.0f} ms p95 {pct(0.95):.0f} ms"
        )
    return "\n".join(lines)


def print_loop(ctx: RunContext, interval_s: float = PRINT_S) -> None:
    """Every `interval_s`: the newest sample, if the run has sent anything."""
    figures: LiveFigures = ctx.figures
    shown = (figures.series.epoch, 0)
    while True:
        gevent.sleep(interval_s)
        point = figures.latest()
        if point is None or (figures.series.epoch, point["seq"]) == shown or not figures.run["sent"]:
            continue
        shown = (figures.series.epoch, point["seq"])
        slo_name = "each class's own" if ctx.mix is not None else ctx.slo.name  # --mix: rows judged per class
        log.info("\n%s", console_table(ctx.live, point, figures.run, slo_name))


def install(events: Any) -> None:
    """Master/local runner, headless or `--print-stats` (as Locust's own table): print every 10 s."""

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        ctx = context.find(environment)
        opts = environment.parsed_options
        if ctx is None or isinstance(runner, WorkerRunner):
            return
        if not (getattr(opts, "headless", False) or getattr(opts, "print_stats", False)):
            return
        gevent.spawn(print_loop, ctx)
