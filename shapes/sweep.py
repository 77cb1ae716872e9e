"""`--shape sweep`: the whole load curve in one run (GuideLLM's sweep).

  stage 0  synchronous   1 request at a time (closed loop): the unloaded latency and its rate r_sync
  stage 1  throughput    --sweep-concurrency requests at a time (closed loop): saturation, r_max
  stage 2… rate r_j      open-loop arrivals at K rates evenly spaced strictly between r_sync and
                         r_max: r_j = r_sync + j·(r_max − r_sync)/(K+1), j = 1..K

r_sync and r_max are completed requests per second measured on the master from the merged live
stats, over each stage minus its warm-up. Every stage lasts --sweep-stage-duration; the run takes
(K + 2) stages. Rows carry the stage (`step`); run.json has each stage's `rate_rps` and label.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shapes.base import Level, Progress, Schedule

SETTLE_S = 1.5  # > one worker report interval (loadgen/run/lifecycle.py reports every second)


@dataclass(slots=True)
class SweepSchedule(Schedule):
    stage_s: float = 30.0
    k: int = 5
    concurrency: int = 64
    max_concurrency: int = 0
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    # completed requests so far (master, merged over workers); set by bind() or by tests
    completed: Callable[[], int] | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)
    sync_rps: float | None = None
    max_rps: float | None = None
    rates: list[float] = field(default_factory=list)
    failed: str = ""

    open_loop = True

    def bind(self, progress: Progress) -> None:
        self.completed = progress.ok

    def level_at(self, run_time_s: float) -> Level | None:
        stage = int(run_time_s // self.stage_s)
        if self.completed is not None:
            self.samples.append((run_time_s, self.completed()))
        if stage >= 1 and self.sync_rps is None:
            self.sync_rps = self.measured(0)
        if stage >= 2 and self.max_rps is None:
            self.max_rps = self.measured(1)
            self.rates = self.plan(self.sync_rps or 0.0, self.max_rps)
        if stage >= 2 + self.k or self.failed:
            return None
        if stage == 0:
            return self._level(0, 1, None, "synchronous")
        if stage == 1:
            return self._level(1, self.concurrency, None, "throughput")
        rate = self.rates[stage - 2]
        return self._level(stage, self.max_concurrency, rate, f"{rate:.3g} req/s")

    def measured(self, stage: int) -> float:
        """Completed requests/s of a stage: count difference between the first sample after its
        warm-up (and after SETTLE_S, so users are running and their first completions have been
        reported) and the last sample inside it. Worker reports then lag both ends alike."""
        start, hi = stage * self.stage_s + self.warmup_s, (stage + 1) * self.stage_s
        lo = start + SETTLE_S if start + SETTLE_S < hi - 1.0 else start
        inside = [(t, c) for t, c in self.samples if lo <= t < hi]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return 0.0
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0)

    def plan(self, sync_rps: float, max_rps: float) -> list[float]:
        if max_rps <= 0:
            self.failed = "the throughput stage completed no requests: nothing to sweep"
            return []
        lo = min(sync_rps, max_rps)
        return [lo + j * (max_rps - lo) / (self.k + 1) for j in range(1, self.k + 1)]

    def _level(self, step: int, users: int, rate: float | None, label: str) -> Level:
        return Level(
            step=step,
            users=users,
            spawn_rate=float(max(1, users)),
            label=label,
            rate_rps=rate,
            warmup_s=self.warmup_s,
            cooldown_s=self.cooldown_s,
        )

    def describe(self) -> dict:
        return {
            "stage_duration_s": self.stage_s,
            "sweep_stages": self.k,
            "throughput_concurrency": self.concurrency,
            "max_concurrency": self.max_concurrency,
            "warmup_s": self.warmup_s,
            "cooldown_s": self.cooldown_s,
            "synchronous_rps": self.sync_rps,
            "throughput_rps": self.max_rps,
            "rates_rps": list(self.rates),
            "total_duration_s": self.stage_s * (self.k + 2),
            **({"failed": self.failed} if self.failed else {}),
        }
