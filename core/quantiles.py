"""The two percentile rules, each named and defined once.

- `linear`: interpolation between the closest ranks (numpy's default, vLLM's benchmark): every
  reported latency percentile of a run or a step. analysis/ uses numpy with the same rule.
- `nearest_rank`: the smallest value with at least q of the values at or below it (the classic
  definition, no interpolation): for a generator's own health figures (event-loop lag, send lag)
  where a value that really occurred is wanted. The median of 1..10 is 5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def linear(sorted_values: Sequence[float], q: float) -> float:
    """q in [0, 1] over pre-sorted values; NaN when there are none."""
    n = len(sorted_values)
    if not n:
        return math.nan
    pos = (n - 1) * min(1.0, max(0.0, q))
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """q in [0, 1] over pre-sorted values: the ceil(q·n)-th smallest (the first for q = 0); NaN when empty."""
    n = len(sorted_values)
    if not n:
        return math.nan
    rank = math.ceil(round(q * n, 9))  # round: 0.29 * 100 is 28.999999999999996 in binary
    return sorted_values[min(n, max(1, rank)) - 1]
