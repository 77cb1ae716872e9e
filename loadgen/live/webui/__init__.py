"""The live LLM view inside Locust's web UI: an "LLM" tab, a charts page at /llm, a JSON feed.

Locust's own charts plot only its Aggregated row, which knows nothing of tokens. This module shows
the live figures (loadgen/state/livefigures.py: the one definition of each, sampled every 2 s by
loadgen/live/sampler.py, the same samples the console prints) through Locust's extension points:
extended tabs/tables in the main UI and routes on `environment.web_ui.app`. It runs on the process
that has the web UI (local runner or master).

A plugin of locustfile.py (`install(events)`).
"""

from __future__ import annotations

from typing import Any

from locust.runners import WorkerRunner

from loadgen import context
from loadgen.live.sampler import counters_now, in_flight
from loadgen.state.livefigures import LATENCIES, Series
from loadgen.state.livestats import METHOD


class LiveView:
    """What the web UI shows, read from the run's live figures (`ctx.figures`) and merged stats."""

    def __init__(self, environment: Any) -> None:
        self.env = environment
        self.ctx = context.of(environment)

    @property
    def series(self) -> Series:
        return self.ctx.figures.series

    def in_flight(self) -> int:
        return in_flight(self.env, self.ctx)

    def latency_rows(self) -> list[dict]:
        """Whole-run percentiles (ms) from the merged histograms, plus the last window's."""
        entries = self.ctx.live.stats.entries
        last = self.ctx.figures.latest() or {}
        limits = self.ctx.slo.limits()
        rows = []
        reasoned = entries.get(("REASONING", METHOD))
        for name in LATENCIES:
            if name == "TTFO" and not (reasoned and reasoned.num_requests):
                continue  # without reasoning TTFO is TTFT
            e = entries.get((name, METHOD))
            n = e.num_requests if e else 0
            key = name.lower()
            row = {"metric": name, "count": n, "slo": limits.get(key) and limits[key] * 1000.0}
            for q in (0.5, 0.9, 0.95, 0.99):
                row[f"p{round(q * 100)}"] = float(e.get_response_time_percentile(q)) if n else None
            row["mean"] = e.avg_response_time if n else None
            row["max"] = float(e.max_response_time) if n else None
            row["now_p50"] = last.get(f"{key}_p50")
            row["now_p95"] = last.get(f"{key}_p95")
            rows.append(row)
        return rows

    def run_figures(self) -> dict:
        """Whole-run counts and rates now (loadgen/state/livefigures.py `run_figures`: the console's
        definition, read at this request rather than at the last sample, so they are the freshest),
        with the reasoning figures when requests reasoned."""
        figures = self.ctx.figures.run_at(counters_now(self.env, self.ctx))
        return {**figures, **_reasoning(self.ctx.live.stats.entries.get(("REASONING", METHOD)))}


def _reasoning(e: Any) -> dict:
    """Requests that reasoned, their mean reasoning tokens and reasoning time (TTFO − TTFT, ms p50)."""
    n = e.num_requests if e else 0
    return {
        "reasoned": n,
        "reasoning_tokens_mean": e.total_content_length / n if n else None,
        "reasoning_p50_ms": float(e.get_response_time_percentile(0.5)) if n else None,
    }


def install(events: Any) -> None:
    @events.init.add_listener
    def _init(environment: Any, runner: Any, web_ui: Any = None, **_: Any) -> None:
        ctx = context.find(environment)
        if ctx is None or isinstance(runner, WorkerRunner) or web_ui is None:
            return  # headless: the console table and the run folder are the live view
        view = ctx.web_view = LiveView(environment)
        # Locust's "Reset stats" button: the LLM figures restart with its table (workers send deltas).
        environment.events.reset_stats.add_listener(lambda **_: ctx.live.reset())
        from loadgen.live.webui.routes import mount

        mount(environment, web_ui, view)
