"""The live LLM view inside Locust's web UI: an "LLM" tab, a charts page at /llm, a JSON feed.

Locust's own charts plot only its Aggregated row, which knows nothing of tokens. This module keeps
a time series of the token-level live stats (loadgen/state/livestats.py, already merged from workers on
the master) and shows it through Locust's extension points: extended tabs/tables in the main UI
and routes on `environment.web_ui.app`. It runs on the process that has the web UI (local runner
or master); workers only add their requests-in-flight count to their reports.

A plugin of locustfile.py (`install(events)`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from loadgen import context, messages
from loadgen.live.webui.series import LATENCIES, METHOD, Counters, Series

log = logging.getLogger("goodput")
SAMPLE_S = 2.0
WINDOW_S = 10.0
TAIL_SAMPLES = 3  # keep sampling briefly after a stop: the workers' last reports are still coming


class LiveView:
    """Samples the live stats every SAMPLE_S seconds into a bounded ring while a run is active."""

    def __init__(self, environment: Any, sample_s: float = SAMPLE_S, window_s: float = WINDOW_S) -> None:
        self.env = environment
        self.ctx = context.of(environment)
        self.series = Series(sample_s=sample_s, window_s=window_s)
        self.worker_in_flight: dict[str, int] = {}
        self.active_until = 0.0
        self.t_stop: float | None = None
        self.greenlet: gevent.Greenlet | None = None

    # -- inputs -------------------------------------------------------------------------
    def in_flight(self) -> int:
        runner = self.env.runner
        if isinstance(runner, MasterRunner):
            alive = {cid for cid, node in runner.clients.items() if node.state != STATE_MISSING}
            return sum(n for cid, n in self.worker_in_flight.items() if cid in alive)
        return self.ctx.in_flight

    def counters(self) -> Counters:
        live = self.ctx.live
        return Counters.take(live.stats.entries, list(self.env.runner.stats.errors.values()), time.time())

    def gauges(self) -> dict:
        runner, stage = self.env.runner, self.ctx.stage
        return {
            "users": runner.user_count,
            "target_users": stage.target_users,
            "step": stage.step,
            "in_flight": self.in_flight(),
            "state": runner.state,
        }

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self.greenlet = gevent.spawn(self._loop)

    def on_test_start(self) -> None:
        now = time.time()
        self.series.restart(now, self.counters())
        self.active_until = float("inf")
        self.t_stop = None

    def on_test_stop(self) -> None:
        self.t_stop = time.time()
        self.active_until = self.t_stop + TAIL_SAMPLES * self.series.sample_s

    def sample(self) -> dict:
        return self.series.add(self.counters(), self.gauges())

    def _loop(self) -> None:
        """On an absolute timeline, so points stay SAMPLE_S apart whatever a sample costs."""
        next_t = time.monotonic()
        while True:
            next_t += self.series.sample_s
            gevent.sleep(max(0.0, next_t - time.monotonic()))
            running = self.env.runner.state in (STATE_SPAWNING, STATE_RUNNING)
            if running or time.time() < self.active_until:
                try:
                    self.sample()
                except Exception:  # a view must never take the run down
                    log.exception("goodput: LLM view sample failed")

    # -- outputs --------------------------------------------------------------------------
    def elapsed_s(self) -> float:
        end = self.t_stop if self.t_stop is not None else time.time()
        return max(0.0, end - self.series.t0)

    def latency_rows(self) -> list[dict]:
        """Whole-run percentiles (ms) from the merged histograms, plus the last window's."""
        entries = self.ctx.live.stats.entries
        last = self.series.points[-1] if self.series.points else {}
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
        """Whole-run rates and attainment, with the same definitions as the analysis."""
        entries = self.ctx.live.stats.entries
        e2e, good = entries.get(("E2E", METHOD)), entries.get(("GOOD", METHOD))
        ok = e2e.num_requests if e2e else 0
        failed = e2e.num_failures if e2e else 0
        n_good = good.num_requests if good else 0
        tokens = e2e.total_content_length if e2e else 0
        dt = self.elapsed_s()
        rate = (lambda x: x / dt) if dt > 0 else (lambda x: None)
        return {
            "ok": ok,
            "failed": failed,
            "good": n_good,
            "output_tokens": tokens,
            "elapsed_s": round(dt, 1),
            "ok_rps": rate(ok),
            "out_tok_s": rate(tokens),
            "goodput_rps": rate(n_good),
            "attainment": n_good / (ok + failed) if ok + failed else None,
            "error_ratio": failed / (ok + failed) if ok + failed else None,
            **_reasoning(entries.get(("REASONING", METHOD))),
        }


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
        if ctx is None:
            return
        if isinstance(runner, WorkerRunner):
            environment.events.report_to_master.add_listener(
                lambda client_id, data, **_: data.__setitem__(messages.IN_FLIGHT, ctx.in_flight)
            )
            return
        if web_ui is None:
            return  # headless: the console table and the run folder are the live view
        view = ctx.web_view = LiveView(environment)
        environment.events.worker_report.add_listener(
            lambda client_id, data, **_: _receive_in_flight(view, client_id, data)
        )
        environment.events.test_start.add_listener(lambda **_: view.on_test_start())
        environment.events.test_stop.add_listener(lambda **_: view.on_test_stop())
        # Locust's "Reset stats" button: the LLM figures restart with its table (workers send deltas).
        environment.events.reset_stats.add_listener(lambda **_: ctx.live.reset())
        from loadgen.live.webui.routes import mount

        mount(environment, web_ui, view)
        view.start()


def _receive_in_flight(view: LiveView, client_id: str, data: dict) -> None:
    if messages.IN_FLIGHT in data:
        view.worker_in_flight[client_id] = int(data[messages.IN_FLIGHT])
