"""What every Goodput shape shares: a list of labelled stages over time, announced to all workers.

A shape only says which stage is active at a given run time; this base turns that into Locust's
`tick()` answer and tells every load process the new stage, so each request row carries the
load level that was active when it was sent.

Open-loop stages start a little in the future (`STAGE_LEAD_S`, the run's first one
`FIRST_STAGE_LEAD_S`): every load process computes the same arrival schedule from the stage's
start time, and the lead lets each of them (a freshly spawned open-loop user opening its workload
included) be ready before the first arrival is due, instead of starting late.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from users.context import Stage

STAGE_MESSAGE = "goodput_stage"
STAGE_LEAD_S = 0.25
FIRST_STAGE_LEAD_S = 1.0  # the first also waits for workers to spawn their user and open the workload
_LISTENERS = "_goodput_stage_listeners"


@dataclass(frozen=True, slots=True)
class Level:
    """One stage of a shape.

    `users` is the closed-loop user count; for an open-loop stage (`rate_rps` set) it is the
    in-flight cap across all workers (0 = none). Warm-up/cool-down are the stage's leading and
    trailing seconds that analysis excludes.
    """

    step: int
    users: int
    spawn_rate: float
    label: str
    rate_rps: float | None = None
    warmup_s: float = 0.0
    cooldown_s: float = 0.0

    def same_stage(self, stage: Stage) -> bool:
        return (
            stage.step == self.step
            and stage.target_users == self.users
            and stage.rate_rps == self.rate_rps
            and stage.label == self.label
            and bool(stage.t_start_unix)
        )


def announce(environment: Any, level: Level, first: bool = False) -> None:
    """Make `level` the current stage here and on every worker."""
    lead = (FIRST_STAGE_LEAD_S if first else STAGE_LEAD_S) if level.rate_rps else 0.0
    stage = Stage(
        step=level.step,
        target_users=level.users,
        rate_rps=level.rate_rps,
        label=level.label,
        warmup_s=level.warmup_s,
        cooldown_s=level.cooldown_s,
        spawn_rate=level.spawn_rate,
        t_start_unix=time.time() + lead,
    )
    set_stage(environment, stage)
    runner = environment.runner
    if runner is not None and hasattr(runner, "clients"):  # master: broadcast
        runner.send_message(STAGE_MESSAGE, stage_msg(stage))


def stage_msg(stage: Stage) -> dict:
    return {
        "step": stage.step,
        "target_users": stage.target_users,
        "rate_rps": stage.rate_rps,
        "label": stage.label,
        "warmup_s": stage.warmup_s,
        "cooldown_s": stage.cooldown_s,
        "spawn_rate": stage.spawn_rate,
        "t_start_unix": stage.t_start_unix,
    }


def on_stage_message(environment: Any, msg: Any, **_: Any) -> None:
    """Worker side of `announce`."""
    set_stage(environment, Stage(**msg.data))


def set_stage(environment: Any, stage: Stage) -> None:
    """Record the stage and wake whoever waits for stage changes (the open-loop dispatcher)."""
    environment.goodput.set_stage(stage)
    for callback in list(getattr(environment, _LISTENERS, ())):
        callback(stage)


def add_stage_listener(environment: Any, callback: Callable[[Stage], None]) -> None:
    if not hasattr(environment, _LISTENERS):
        setattr(environment, _LISTENERS, [])
    getattr(environment, _LISTENERS).append(callback)


def remove_stage_listener(environment: Any, callback: Callable[[Stage], None]) -> None:
    listeners = getattr(environment, _LISTENERS, [])
    if callback in listeners:
        listeners.remove(callback)


class Schedule:
    """A shape's timetable: `level_at(t)` returns the active Level, or None when the run is over.

    `open_loop` schedules need the open-loop user (`users/rate.py`), which runs one dispatcher
    per load process; `bind` gives schedules that adapt to the run (sweep, trace) the master's
    environment.
    """

    open_loop = False

    def level_at(self, run_time_s: float) -> Level | None:
        raise NotImplementedError

    def bind(self, environment: Any) -> None:
        """Called once on the master before the first `level_at`."""

    def describe(self) -> dict:
        """Parameters for run.json."""
        return {}
