"""Stages on every load process: the shape's levels become the current stage here and on each worker.

The shape (shapes/) fires its hooks on the master or local runner; this module makes the level the
current stage (`RunContext.set_stage`), broadcasts it to the workers (`messages.STAGE`), records the
schedule in run.json, ends the last stage when the schedule ends, and binds adaptive schedules
(sweep, trace, search) to the run's progress (`LiveProgress`: the live figures, the requests in
flight, the current stage's figures since its warm-up).

It also records the start-up, the stage before the first one is steady: run.json `startup` =
`{t_start_unix, t_spawned_unix, users}`, from the run's start to Locust's first `spawning_complete`
(every user of the first level spawned, on every worker). The start-up ends when the last of those
users has also sent its first request; that send is in requests.csv (the first row of each
`worker`/`user`), so the analysis completes the end from there (analysis/windows.py `startup`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from locust.runners import MasterRunner, WorkerRunner

from core.stage import Stage
from loadgen import context, messages
from loadgen.context import RunContext
from loadgen.live.sampler import counters_now, in_flight
from loadgen.run import scaleout
from loadgen.state.livefigures import StageWindow
from shapes import hooks
from shapes.base import Level, Schedule, StageFigures

log = logging.getLogger("goodput")


class LiveProgress:
    """The run's progress as a schedule reads it (shapes.base.Progress), from the live figures."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.window: StageWindow | None = None

    def ok(self) -> int:
        return self.ctx.live.entry("E2E").num_requests

    def finished(self) -> int:
        e2e = self.ctx.live.entry("E2E")
        return e2e.num_requests + e2e.num_failures

    def in_flight(self) -> int:
        return in_flight(self.ctx.environment, self.ctx)

    def attain_target(self) -> float:
        return self.ctx.slo.attain_target

    def stage_figures(self) -> StageFigures | None:
        """The current stage since its warm-up ended (loadgen/state/livefigures.py `StageWindow`):
        one sample of the merged live counters per call (the shape calls once a tick)."""
        stage = self.ctx.stage
        if not stage.t_start_unix or time.time() < stage.t_start_unix + stage.warmup_s:
            return None
        key = (stage.step, stage.t_start_unix)
        if self.window is None or self.window.key != key:
            self.window = StageWindow(key)
        self.window.add(counters_now(self.ctx.environment, self.ctx), self.in_flight())
        return self.window.figures()


def on_level(environment: Any, level: Level, first: bool, **_: Any) -> None:
    """Master/local: make `level` the current stage here and on every worker.

    The first level comes before the run starts (Locust spawns after the shape's tick): the master
    waits here until every connected worker can take Goodput's messages (scaleout.wait_for_workers)."""
    ctx = context.of(environment)
    runner = environment.runner
    late = (
        scaleout.wait_for_workers(runner, ctx.ready_workers)
        if first and isinstance(runner, MasterRunner)
        else []
    )
    if late:
        log.warning(
            "goodput: workers %s did not confirm they are ready; the run starts anyway", ", ".join(late)
        )
    stage = level.stage(first=first)
    ctx.set_stage(stage)
    if isinstance(runner, MasterRunner):
        runner.send_message(messages.STAGE, stage.to_dict())


def on_stage_message(environment: Any, msg: Any, **_: Any) -> None:
    """Worker side of `on_level`."""
    context.of(environment).set_stage(Stage(**msg.data))


def on_schedule_built(environment: Any, schedule: Schedule, **_: Any) -> None:
    schedule.bind(LiveProgress(context.of(environment)))


def on_described(environment: Any, description: dict, **_: Any) -> None:
    context.of(environment).meta["shape"] = description


def end_last_stage(environment: Any, **_: Any) -> None:
    """The last stage ends when the schedule ends (or Locust starts stopping the users), not once
    they are all stopped."""
    ctx = context.find(environment)
    if ctx is None or isinstance(environment.runner, WorkerRunner):
        return
    if ctx.stages and ctx.stages[-1].t_end_unix is None:
        ctx.stages[-1].t_end_unix = time.time()


def keep_first_stage(environment: Any, **_: Any) -> None:
    """The first stage is announced by the first tick, before the run folder exists (which starts
    an empty stage list): put it back so run.json lists every stage."""
    ctx = context.find(environment)
    if ctx is None or isinstance(environment.runner, WorkerRunner):
        return
    if not ctx.stages and ctx.stage.t_start_unix:
        ctx.stages.append(ctx.stage)


def begin_startup(environment: Any, **_: Any) -> None:
    """A new run: its start-up is not yet over (the web UI runs several in one process)."""
    ctx = context.find(environment)
    if ctx is not None and not isinstance(environment.runner, WorkerRunner):
        ctx.meta.pop("startup", None)


def end_spawning(environment: Any, user_count: int) -> None:
    """Master/local: the first `spawning_complete` of a run closes the spawn part of the start-up."""
    ctx = context.find(environment)
    if ctx is None or isinstance(environment.runner, WorkerRunner) or "startup" in ctx.meta:
        return
    t0 = ctx.meta.get("t_start_unix")
    now = time.time()
    ctx.meta["startup"] = {
        "t_start_unix": t0 if isinstance(t0, int | float) else now,
        "t_spawned_unix": now,
        "users": int(user_count),
    }


def install(events: Any) -> None:
    """After the lifecycle's listeners (test_start order matters: the run folder opens first)."""
    hooks.level_changed.add_listener(on_level)
    hooks.schedule_built.add_listener(on_schedule_built)
    hooks.described.add_listener(on_described)
    hooks.schedule_ended.add_listener(end_last_stage)
    events.test_start.add_listener(keep_first_stage)
    events.test_start.add_listener(begin_startup)
    events.test_stopping.add_listener(end_last_stage)

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        if isinstance(runner, WorkerRunner):
            runner.register_message(messages.STAGE, on_stage_message)
        # spawning_complete carries no environment: bind it here (as selfmon binds its reports)
        environment.events.spawning_complete.add_listener(
            lambda user_count, **_: end_spawning(environment, user_count)
        )
