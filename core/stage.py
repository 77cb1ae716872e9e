"""`Stage`: the load level a request is labelled with (`step`, `target_users` in requests.csv).

The shape decides the stages; the master announces each to every worker, whose rows then carry
the level that was active when the request was *sent*. run.json lists them (`stages`), and the
analysis reads each stage's own time span as the window of that load level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


def users_label(n: float) -> str:
    """A closed-loop level's label: `1 user`, `8 users` (a search's bracket may be fractional: `7.5 users`)."""
    return f"{n:g} user" + ("" if n == 1 else "s")


@dataclass(slots=True)
class Stage:
    """One load level. `rate_rps` is set for open-loop stages (then `target_users` is the in-flight cap)."""

    step: int = 0
    target_users: int = 0
    rate_rps: float | None = None
    label: str = ""
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    spawn_rate: float = 0.0
    t_start_unix: float = 0.0
    t_end_unix: float | None = None

    def to_dict(self) -> dict:
        """run.json's `stages[]` item and the stage message's payload (plain values only)."""
        return asdict(self)
