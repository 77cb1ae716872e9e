"""Open-loop arrival processes and the constant-rate schedule.

Arrival times never depend on responses: a slow server gets its requests on time anyway and its
slowness shows up as latency (no coordinated omission).

Splitting across load processes without bunching: every process walks the *same* global
sequence of arrival offsets (seeded by `--seed` and the stage) and keeps positions
k ≡ worker_index (mod worker_count). The union of the slices is exactly the single-process
arrival process at the full rate, whatever the process type or the number of workers: Poisson
stays Poisson, gamma keeps its CV, and constant arrivals are evenly phase-offset (worker i sends
at (k·W + i + 1)/R). Each process runs at rate/W and draws the whole sequence (a few random
numbers per second, negligible).

Processes (rate R, mean gap 1/R):
  poisson   exponential gaps, CV = 1
  gamma     gamma gaps with shape k = --burstiness, scale 1/(R·k): CV = 1/sqrt(k)
            (k < 1 burstier than Poisson, k = 1 is Poisson, k > 1 smoother; vLLM's semantics)
  constant  gaps exactly 1/R, CV = 0
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from shapes.base import Level, Schedule


def stage_seed(seed: int, step: int) -> str:
    """Same string on every process: the global sequence is shared, the slices differ."""
    return f"goodput-arrivals:{seed}:{step}"


def gaps(kind: str, rate: float, burstiness: float, rng: random.Random) -> Iterator[float]:
    """Endless inter-arrival gaps in seconds."""
    if kind == "constant":
        while True:
            yield 1.0 / rate
    elif kind == "poisson":
        while True:
            yield rng.expovariate(rate)
    elif kind == "gamma":
        scale = 1.0 / (rate * burstiness)
        while True:
            yield rng.gammavariate(burstiness, scale)
    else:
        raise ValueError(f"unknown arrival process {kind!r}")


def arrival_offsets(
    kind: str,
    rate: float,
    burstiness: float = 1.0,
    seed: str = "goodput-arrivals:0:0",
    worker_index: int = 0,
    worker_count: int = 1,
) -> Iterator[float]:
    """This process's arrival times, in seconds after the stage start, increasing, endless."""
    if kind == "constant":  # exact multiples: no accumulated rounding over long runs
        k = worker_index
        while True:
            yield (k + 1) / rate
            k += worker_count
    t = 0.0
    for k, gap in enumerate(gaps(kind, rate, burstiness, random.Random(seed))):
        t += gap
        if k % worker_count == worker_index:
            yield t


def share(total: int, worker_index: int, worker_count: int) -> int:
    """This process's part of a count split over the processes (parts differ by at most 1)."""
    base, extra = divmod(max(0, total), max(1, worker_count))
    return base + (1 if worker_index < extra else 0)


def cv(values: list[float]) -> float:
    """Coefficient of variation (std / mean); 0 for fewer than 2 values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return math.sqrt(var) / mean if mean else 0.0


def expected_cv(kind: str, burstiness: float = 1.0) -> float:
    """The documented inter-arrival CV of each process."""
    return {"poisson": 1.0, "constant": 0.0}.get(kind, 1.0 / math.sqrt(burstiness))


@dataclass(frozen=True, slots=True)
class RateSchedule(Schedule):
    """`--rate R`: one open-loop stage at R requests per second for `-t` (or until stopped)."""

    open_loop = True
    rate_rps: float = 1.0
    duration_s: float | None = None
    max_concurrency: int = 0
    arrival: str = "poisson"
    burstiness: float = 1.0
    warmup_s: float = 0.0
    cooldown_s: float = 0.0

    def level_at(self, run_time_s: float) -> Level | None:
        if self.duration_s is not None and run_time_s >= self.duration_s:
            return None
        return Level(
            step=0,
            users=self.max_concurrency,
            spawn_rate=1.0,
            label=f"{self.rate_rps:g} req/s",
            rate_rps=self.rate_rps,
            warmup_s=self.warmup_s,
            cooldown_s=self.cooldown_s,
        )

    def describe(self) -> dict:
        return {
            "rate_rps": self.rate_rps,
            "arrival": self.arrival,
            "burstiness": self.burstiness,
            "expected_cv": expected_cv(self.arrival, self.burstiness),
            "max_concurrency": self.max_concurrency,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "cooldown_s": self.cooldown_s,
        }
