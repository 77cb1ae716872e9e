"""`Dist`: the six figures of one distribution, the unit every latency result is made of.

Its own module so that every typed result (analysis/results.py, analysis/reasoning.py) can hold
one without importing the other; analysis/results.py re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dist:
    """`{mean, p50, p90, p95, p99, max}` of one latency, in seconds (None: no samples); `n` samples."""

    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None
    n: int

    def to_dict(self) -> dict[str, float | None]:
        return {
            "mean": self.mean,
            "p50": self.p50,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
            "max": self.max,
        }
