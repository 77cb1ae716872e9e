"""Length distributions for generated prompts and outputs: the `DIST` values of a spec string.

    256                         fixed
    fixed(256)                  fixed
    uniform(64,256)             integers, both ends included
    normal(512,128[,min,max])   mean, std; redrawn outside [min, max]
    lognormal(512,128[,min,max])  mean and std *of the lengths* (not of the log); heavy right tail

Values outside [min, max] (default [1, unbounded]) are redrawn, up to 100 times, then clipped:
a truncated distribution rather than spikes at the bounds.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from workloads.errors import WorkloadError

KINDS = ("fixed", "uniform", "normal", "lognormal")
_CALL = re.compile(r"^\s*([a-z]+)\s*\(([^()]*)\)\s*$")
SHAPE = "N, fixed(N), uniform(min,max), normal(mean,std[,min,max]) or lognormal(mean,std[,min,max])"


@dataclass(frozen=True, slots=True)
class LengthDist:
    kind: str
    a: float  # fixed: value; uniform: min; normal/lognormal: mean
    b: float = 0.0  # uniform: max; normal/lognormal: std
    lo: int = 1
    hi: int | None = None

    def sample(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return int(self.a)
        if self.kind == "uniform":
            return rng.randint(int(self.a), int(self.b))
        for _ in range(100):
            x = round(self._draw(rng))
            if x >= self.lo and (self.hi is None or x <= self.hi):
                return x
        return max(self.lo, min(x, self.hi if self.hi is not None else x))

    def _draw(self, rng: random.Random) -> float:
        if self.kind == "normal":
            return rng.gauss(self.a, self.b)
        # lognormal parameterised by the mean m and std s of the lengths themselves
        m, s = self.a, self.b
        sigma2 = math.log(1.0 + (s * s) / (m * m))
        return rng.lognormvariate(math.log(m) - sigma2 / 2.0, math.sqrt(sigma2))

    @property
    def mean(self) -> float:
        """Nominal mean (before truncation), for documentation and tests."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return (self.a + self.b) / 2.0
        return self.a

    def __str__(self) -> str:
        def n(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else repr(x)

        if self.kind == "fixed":
            return n(self.a)
        if self.kind == "uniform":
            return f"uniform({n(self.a)},{n(self.b)})"
        bounds = f",{self.lo},{self.hi}" if (self.lo != 1 or self.hi is not None) else ""
        return f"{self.kind}({n(self.a)},{n(self.b)}{bounds})"


def parse_length(text: str, where: str) -> LengthDist:
    """Parse a DIST value; `where` names the option for the error line (e.g. `random: input`)."""
    raw = str(text).strip()

    def bad(why: str) -> WorkloadError:
        return WorkloadError(f"{where}={raw}: {why}; expected {SHAPE}")

    if re.fullmatch(r"\d+", raw):
        if int(raw) < 1:
            raise bad("a length must be at least 1")
        return LengthDist("fixed", float(raw))
    m = _CALL.match(raw)
    if not m:
        raise bad("not a length distribution")
    kind, args_text = m.group(1), m.group(2)
    if kind not in KINDS:
        raise bad(f"unknown distribution '{kind}'")
    try:
        args = [float(x) for x in args_text.split(",")] if args_text.strip() else []
    except ValueError:
        raise bad("arguments must be numbers") from None
    if any(math.isnan(x) or math.isinf(x) for x in args):
        raise bad("arguments must be finite numbers")
    if kind == "fixed":
        if len(args) != 1 or args[0] < 1 or not args[0].is_integer():
            raise bad("fixed takes one whole number ≥ 1")
        return LengthDist("fixed", args[0])
    if kind == "uniform":
        if len(args) != 2 or not all(x.is_integer() for x in args) or not 1 <= args[0] <= args[1]:
            raise bad("uniform takes two whole numbers 1 ≤ min ≤ max")
        return LengthDist("uniform", args[0], args[1])
    if len(args) not in (2, 4):
        raise bad(f"{kind} takes mean,std or mean,std,min,max")
    mean, std = args[0], args[1]
    lo, hi = (int(args[2]), int(args[3])) if len(args) == 4 else (1, None)
    if mean < 1 or std < 0:
        raise bad("mean must be ≥ 1 and std ≥ 0")
    if len(args) == 4 and not (1 <= lo <= mean <= hi):
        raise bad("bounds must satisfy 1 ≤ min ≤ mean ≤ max")
    return LengthDist(kind, mean, std, lo, hi)
