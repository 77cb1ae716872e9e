"""The research protocol: 1 user, +1 user every 10 s, for 10 minutes (all three configurable).

Also the plain fixed-concurrency run (`-u/-r/-t`), one stage at a fixed user count.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.stage import users_label
from shapes.base import Level, Schedule


@dataclass(frozen=True, slots=True)
class StepSchedule(Schedule):
    step_users: int = 1
    interval_s: float = 10.0
    duration_s: float = 600.0
    max_users: int = 0  # 0: no cap
    warmup_s: float = 0.0  # per step
    cooldown_s: float = 0.0

    def level_at(self, run_time_s: float) -> Level | None:
        if run_time_s >= self.duration_s:
            return None
        step = int(run_time_s // self.interval_s)
        users = self.step_users * (step + 1)
        if self.max_users:
            users = min(users, self.max_users)
            step = min(step, -(-self.max_users // self.step_users) - 1)
        # a step's users all start at its beginning: the whole increment in one second
        return Level(
            step=step,
            users=users,
            spawn_rate=max(1.0, float(self.step_users) * 10),
            label=users_label(users),
            warmup_s=self.warmup_s,
            cooldown_s=self.cooldown_s,
        )

    def describe(self) -> dict:
        return {
            "step_users": self.step_users,
            "step_interval_s": self.interval_s,
            "duration_s": self.duration_s,
            "max_users": self.max_users,
            "warmup_s": self.warmup_s,
            "cooldown_s": self.cooldown_s,
        }


@dataclass(frozen=True, slots=True)
class ConstantSchedule(Schedule):
    """Plain `-u/-r [-t]` runs: one stage at a fixed user count."""

    users: int = 1
    spawn_rate: float = 1.0
    duration_s: float | None = None
    warmup_s: float = 0.0
    cooldown_s: float = 0.0

    def level_at(self, run_time_s: float) -> Level | None:
        if self.duration_s is not None and run_time_s >= self.duration_s:
            return None
        return Level(
            step=0,
            users=self.users,
            spawn_rate=self.spawn_rate,
            label=users_label(self.users),
            warmup_s=self.warmup_s,
            cooldown_s=self.cooldown_s,
        )

    def describe(self) -> dict:
        return {
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "cooldown_s": self.cooldown_s,
        }
