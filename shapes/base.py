"""What every Goodput shape shares: a list of labelled stages over time, announced to all workers.

A shape only says which stage is active at a given run time; this base turns that into Locust's
`tick()` answer and tells every load process the new stage, so each request row carries the
load level that was active when it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from users.context import Stage

STAGE_MESSAGE = "goodput_stage"


@dataclass(frozen=True, slots=True)
class Level:
    """One stage of a shape: users to run (closed loop) and/or an arrival rate (open loop)."""

    step: int
    users: int
    spawn_rate: float
    label: str
    rate_rps: float | None = None
    warmup_s: float = 0.0


def announce(environment: Any, level: Level) -> None:
    """Make `level` the current stage here and on every worker."""
    stage = Stage(
        step=level.step,
        target_users=level.users,
        rate_rps=level.rate_rps,
        label=level.label,
        warmup_s=level.warmup_s,
    )
    environment.goodput.set_stage(stage)
    runner = environment.runner
    if runner is not None and hasattr(runner, "clients"):  # master: broadcast
        runner.send_message(STAGE_MESSAGE, _stage_msg(stage))


def _stage_msg(stage: Stage) -> dict:
    return {
        "step": stage.step,
        "target_users": stage.target_users,
        "rate_rps": stage.rate_rps,
        "label": stage.label,
        "warmup_s": stage.warmup_s,
        "t_start_unix": stage.t_start_unix,
    }


def on_stage_message(environment: Any, msg: Any, **_: Any) -> None:
    """Worker side of `announce`."""
    environment.goodput.set_stage(Stage(**msg.data))


class Schedule:
    """A shape's timetable: `level_at(t)` returns the active Level, or None when the run is over."""

    def level_at(self, run_time_s: float) -> Level | None:
        raise NotImplementedError

    def describe(self) -> dict:
        """Parameters for run.json."""
        return {}
