"""The live figures' clock: one sample of the merged live stats every 2 s on the master or local runner.

Both live views read these samples (`RunContext.figures`, loadgen/state/livefigures.py): the
console prints the newest, the web UI serves them all — so a figure is computed once, over the
same window, whichever view shows it. Sampling runs while a run is active and for a few samples
after it stopped (the workers' last reports are still arriving). Workers only add their
requests-in-flight count to each report; the master sums the live workers' counts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from loadgen import context, messages
from loadgen.context import RunContext
from loadgen.state.livefigures import Counters

log = logging.getLogger("goodput")
TAIL_SAMPLES = 3  # keep sampling briefly after a stop: the workers' last reports are still coming


def in_flight(environment: Any, ctx: RunContext) -> int:
    """Requests sent and not ended yet, across the live workers (or in this process)."""
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        alive = {cid for cid, node in runner.clients.items() if node.state != STATE_MISSING}
        return sum(n for cid, n in ctx.worker_in_flight.items() if cid in alive)
    return ctx.in_flight


def counters_now(environment: Any, ctx: RunContext) -> Counters:
    """The merged live counters at this instant (errors by category from Locust's own table)."""
    errors = list(environment.runner.stats.errors.values())
    return Counters.take(ctx.live.stats.entries, errors, time.time())


class Sampler:
    """Samples `ctx.live` into `ctx.figures` every `sample_s` seconds while a run is active."""

    def __init__(self, environment: Any, ctx: RunContext) -> None:
        self.env = environment
        self.ctx = ctx
        self.active_until = 0.0
        self.greenlet: gevent.Greenlet | None = None

    def counters(self) -> Counters:
        return counters_now(self.env, self.ctx)

    def gauges(self) -> dict:
        runner, stage = self.env.runner, self.ctx.stage
        return {
            "users": runner.user_count,
            "target_users": stage.target_users,
            "step": stage.step,
            "in_flight": in_flight(self.env, self.ctx),
            "state": runner.state,
        }

    def on_test_start(self) -> None:
        """After the lifecycle reset the live stats (its listener runs first): the run's baseline."""
        self.ctx.figures.restart(self.counters())
        self.active_until = float("inf")

    def on_test_stopping(self) -> None:
        """The run's end for its whole-run rates: when Locust starts stopping the users."""
        self.ctx.figures.stopped(time.time())

    def on_test_stop(self) -> None:
        figures = self.ctx.figures
        if figures.t_stop is None:
            figures.stopped(time.time())
        self.active_until = time.time() + TAIL_SAMPLES * figures.series.sample_s

    def sample(self) -> dict:
        return self.ctx.figures.add(self.counters(), self.gauges())

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        """On an absolute timeline, so samples stay `sample_s` apart whatever one costs."""
        next_t = time.monotonic()
        while True:
            next_t += self.ctx.figures.series.sample_s
            gevent.sleep(max(0.0, next_t - time.monotonic()))
            running = self.env.runner.state in (STATE_SPAWNING, STATE_RUNNING)
            if running or time.time() < self.active_until:
                try:
                    self.sample()
                except Exception:  # a view must never take the run down
                    log.exception("goodput: live figures sample failed")


def install(events: Any) -> None:
    """Every process: workers report their in-flight count; the master/local runner samples."""

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        ctx = context.find(environment)
        if ctx is None:
            return
        if isinstance(runner, WorkerRunner):
            environment.events.report_to_master.add_listener(
                lambda client_id, data, **_: data.__setitem__(messages.IN_FLIGHT, ctx.in_flight)
            )
            return
        sampler = Sampler(environment, ctx)
        environment.events.worker_report.add_listener(
            lambda client_id, data, **_: _receive_in_flight(ctx, client_id, data)
        )
        environment.events.test_start.add_listener(lambda **_: sampler.on_test_start())
        environment.events.test_stopping.add_listener(lambda **_: sampler.on_test_stopping())
        environment.events.test_stop.add_listener(lambda **_: sampler.on_test_stop())
        sampler.start()


def _receive_in_flight(ctx: RunContext, client_id: str, data: dict) -> None:
    if messages.IN_FLIGHT in data:
        ctx.worker_in_flight[client_id] = int(data[messages.IN_FLIGHT])
