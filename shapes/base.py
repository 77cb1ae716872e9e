"""What every Goodput shape shares: a list of labelled stages over time.

A shape only says which level is active at a given run time (`Schedule.level_at`); the run layer
(loadgen/run/stages.py) makes it the current stage on every load process, so each request row
carries the load level that was active when it was sent.

Open-loop stages start a little in the future (`STAGE_LEAD_S`, the run's first one
`FIRST_STAGE_LEAD_S`): every load process computes the same arrival schedule from the stage's
start time, and the lead lets each of them (a freshly spawned open-loop user opening its workload
included) be ready before the first arrival is due, instead of starting late.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from core.stage import Stage

STAGE_LEAD_S = 0.25
FIRST_STAGE_LEAD_S = 1.0  # the first also waits for workers to spawn their user and open the workload


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

    def stage(self, first: bool = False) -> Stage:
        """The stage this level starts now (open-loop stages a little later: `STAGE_LEAD_S`)."""
        lead = (FIRST_STAGE_LEAD_S if first else STAGE_LEAD_S) if self.rate_rps else 0.0
        return Stage(
            step=self.step,
            target_users=self.users,
            rate_rps=self.rate_rps,
            label=self.label,
            warmup_s=self.warmup_s,
            cooldown_s=self.cooldown_s,
            spawn_rate=self.spawn_rate,
            t_start_unix=time.time() + lead,
        )

    def same_stage(self, stage: Stage) -> bool:
        return (
            stage.step == self.step
            and stage.target_users == self.users
            and stage.rate_rps == self.rate_rps
            and stage.label == self.label
            and bool(stage.t_start_unix)
        )


@dataclass(frozen=True, slots=True)
class StageFigures:
    """The current stage's live figures since its warm-up ended, as the load path computes them
    (loadgen/run/stages.py `LiveProgress`, from the live figures' one definition and the run's SLO).

    `ended`/`good`: requests that ended (completed or failed) in that time, and those of them good
    under the run's SLO (core/slo.py `Slo.is_good`). `in_flight_slope_rps` is the least-squares
    growth of the requests in flight over that time (requests per second; None: too few samples)
    and `in_flight_slope_low_rps` its 95 % lower bound; `ttft_p50_early_s`/`ttft_p50_late_s` are the
    TTFT p50 of the requests that ended in its first and second half: the TTFT trend.
    """

    elapsed_s: float
    ended: int
    good: int
    ok_rps: float | None
    in_flight: int
    in_flight_slope_rps: float | None = None
    in_flight_slope_low_rps: float | None = None
    ttft_p50_early_s: float | None = None
    ttft_p50_late_s: float | None = None

    @property
    def attainment(self) -> float | None:
        return self.good / self.ended if self.ended else None


class Progress(Protocol):
    """What a schedule may read of the run while it runs (the run layer provides it)."""

    def ok(self) -> int:
        """Requests completed successfully so far."""
        ...

    def finished(self) -> int:
        """Requests finished so far, successfully or not."""
        ...

    def in_flight(self) -> int:
        """Requests sent and not ended yet, across every load process."""
        ...

    def attain_target(self) -> float:
        """The run's SLO attainment target (`--slo`, core/slo.py)."""
        ...

    def stage_figures(self) -> StageFigures | None:
        """The current stage's figures since its warm-up ended (None: still in its warm-up)."""
        ...


class Schedule:
    """A shape's timetable: `level_at(t)` returns the active Level, or None when the run is over.

    `open_loop` schedules need the open-loop user (`users/rate.py`), which runs one dispatcher
    per load process.
    """

    open_loop = False

    def level_at(self, run_time_s: float) -> Level | None:
        raise NotImplementedError

    def bind(self, progress: Progress) -> None:
        """Called once on the master before the first `level_at`: schedules that adapt to the run
        (sweep, trace) read its progress there."""

    def describe(self) -> dict:
        """Parameters for run.json."""
        return {}
