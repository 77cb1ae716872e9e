"""Load shapes. Locust uses exactly one shape class per locustfile, so `GoodputShape` delegates to
the schedule chosen with `--shape` (step by default; `none` keeps plain `-u/-r/-t` runs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from locust import LoadTestShape

from shapes.base import Level, Schedule, announce
from shapes.step import ConstantSchedule, StepSchedule
from users.options import parse_duration_s


def _step(opts: Any) -> Schedule:
    duration = (
        float(opts.run_time) if opts.run_time else parse_duration_s(opts.step_duration, "--step-duration")
    )
    return StepSchedule(
        step_users=opts.step_users,
        interval_s=parse_duration_s(opts.step_interval, "--step-interval"),
        duration_s=duration,
        max_users=opts.max_users,
    )


def _constant(opts: Any) -> Schedule:
    return ConstantSchedule(
        users=opts.num_users or 1,
        spawn_rate=opts.spawn_rate or 1.0,
        duration_s=float(opts.run_time) if opts.run_time else None,
    )


# `--shape` name → builder. Other shapes register here (stages, sweep, trace).
SCHEDULES: dict[str, Callable[[Any], Schedule]] = {"step": _step, "none": _constant}


def build_schedule(opts: Any) -> Schedule:
    """Validate the shape options (raises OptionError with one clear line)."""
    name = opts.shape
    if name == "step" and opts.num_users and not _explicit_step(opts):
        name = "none"  # `-u N` without step options: the user asked for a plain run
    if name not in SCHEDULES:
        from users.options import OptionError

        raise OptionError(
            f"--shape: '{name}' is not available (expected one of {', '.join(sorted(SCHEDULES))})"
        )
    return SCHEDULES[name](opts)


def _explicit_step(opts: Any) -> bool:
    return opts.step_users != 1 or opts.step_interval != "10s" or opts.max_users != 0


class GoodputShape(LoadTestShape):
    """Ticks the chosen schedule and announces each new stage to every load process."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.schedule: Schedule | None = None
        self.level: Level | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self.schedule = None
        self.level = None

    def tick(self) -> tuple[int, float] | None:
        env = self.runner.environment
        if self.schedule is None:
            self.schedule = build_schedule(env.parsed_options)
            env.goodput.meta["shape"] = {
                "name": type(self.schedule).__name__,
                "params": self.schedule.describe(),
            }
        level = self.schedule.level_at(self.get_run_time())
        if level is None:
            return None
        if self.level is None or level.step != self.level.step or level.users != self.level.users:
            self.level = level
            announce(env, level)
        return level.users, level.spawn_rate
