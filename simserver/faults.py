"""Fault injection: which fault (if any) a request gets, drawn per request or forced by a header.

Faults are drawn from their own seeded RNG, so turning faults on does not change the output
lengths or texts the engine draws for the same seed. What each fault does to the response lives
with the response writers (simserver/sinks.py); this module only decides.
"""

from __future__ import annotations

import random

from simserver.profiles import FAULT_KINDS

HEADER = "x-sim-fault"
HTTP_FAULTS = {
    "http_500": (500, "InternalServerError", "simulated internal server error"),
    "http_503": (503, "ServiceUnavailableError", "simulated overload: service unavailable"),
    "http_429": (429, "RateLimitError", "simulated rate limit: retry later"),
}


class FaultPicker:
    """Per-request fault draws: one uniform number against the cumulative probabilities."""

    def __init__(self, probabilities: dict[str, float], seed: int) -> None:
        self.rng = random.Random(f"faults-{seed}")
        self.table: list[tuple[float, str]] = []
        acc = 0.0
        for kind in FAULT_KINDS:  # fixed order, so the same seed gives the same faults
            p = probabilities.get(kind, 0.0)
            if p > 0:
                acc += p
                self.table.append((acc, kind))

    def draw(self) -> str | None:
        if not self.table:
            return None
        u = self.rng.random()
        for edge, kind in self.table:
            if u < edge:
                return kind
        return None

    def pick(self, header_value: str | None) -> str | None:
        """The header wins over the draw; an unknown kind in the header is the client's error."""
        if header_value:
            kind = header_value.strip().lower()
            if kind == "none":
                return None
            if kind not in FAULT_KINDS:
                raise ValueError(
                    f"unknown X-Sim-Fault '{header_value}' (known: none, {', '.join(FAULT_KINDS)})"
                )
            return kind
        return self.draw()
