"""Stages on every load process: the shape's levels become the current stage here and on each worker.

The shape (shapes/) fires its hooks on the master or local runner; this module makes the level the
current stage (`RunContext.set_stage`), broadcasts it to the workers (`messages.STAGE`), records the
schedule in run.json, ends the last stage when the schedule ends, and binds adaptive schedules
(sweep, trace) to the run's progress.
"""

from __future__ import annotations

import time
from typing import Any

from locust.runners import MasterRunner, WorkerRunner

from core.stage import Stage
from loadgen import context, messages
from loadgen.context import RunContext
from shapes import hooks
from shapes.base import Level, Schedule


class LiveProgress:
    """The run's progress as a schedule reads it (shapes.base.Progress), from the live figures."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def ok(self) -> int:
        return self.ctx.live.entry("E2E").num_requests

    def finished(self) -> int:
        e2e = self.ctx.live.entry("E2E")
        return e2e.num_requests + e2e.num_failures


def on_level(environment: Any, level: Level, first: bool, **_: Any) -> None:
    """Master/local: make `level` the current stage here and on every worker."""
    stage = level.stage(first=first)
    context.of(environment).set_stage(stage)
    runner = environment.runner
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


def install(events: Any) -> None:
    """After the lifecycle's listeners (test_start order matters: the run folder opens first)."""
    hooks.level_changed.add_listener(on_level)
    hooks.schedule_built.add_listener(on_schedule_built)
    hooks.described.add_listener(on_described)
    hooks.schedule_ended.add_listener(end_last_stage)
    events.test_start.add_listener(keep_first_stage)
    events.test_stopping.add_listener(end_last_stage)

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        if isinstance(runner, WorkerRunner):
            runner.register_message(messages.STAGE, on_stage_message)
