"""`StreamResult`: what one streamed request produced, whatever the server's API.

Every transport and every API parser fills this same object (in perf_counter seconds; errors are
short categories plus the server's message, never exceptions), and core/measure.py turns it into
the row's figures — so a metric is defined once, not once per server format.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class StreamResult:
    t_send: float = 0.0
    status: int | None = None
    text_times: list[float] = field(default_factory=list)  # arrival of each text-bearing chunk
    t_last: float | None = None  # arrival of the last data event (usage chunk included)
    n_events: int = 0
    n_bytes: int = 0
    parts: list[str] = field(default_factory=list)
    usage: dict | None = None
    finish_reason: str = ""
    done: bool = False
    error: str = ""
    error_detail: str = ""

    @property
    def text(self) -> str:
        return "".join(self.parts)
