"""The request trace: one JSON line per request, joinable with client rows by `request_id`.

Lines are buffered and written at most every `flush_s` (and on shutdown), so tracing costs one
dict and one orjson call per request, never a disk write on the token path. The file is opened
for append: restarting the simulator never destroys an earlier run's trace.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

FIELDS = (
    "request_id",
    "t_arrival_unix",
    "t_first_emit_unix",
    "t_last_emit_unix",
    "prompt_tokens",
    "cached_tokens",
    "output_tokens",
    "status",
    "fault",
    "http_status",
    "finish_reason",
    "endpoint",
    "stream",
    "preemptions",
)


class TraceWriter:
    def __init__(self, path: str | Path, flush_s: float = 0.5) -> None:
        self.path = Path(path)
        self.fh = self.path.open("ab")
        self.lines: list[bytes] = []
        self.flush_s = flush_s
        self._timer: asyncio.TimerHandle | None = None

    def write(self, record: dict[str, Any]) -> None:
        self.lines.append(orjson.dumps(record) + b"\n")
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.flush_s, self.flush)

    def flush(self) -> None:
        self._timer = None
        if self.lines:
            self.fh.write(b"".join(self.lines))
            self.lines.clear()
            self.fh.flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        self.fh.close()


def us(t: float | None) -> float | None:
    """Wall-clock seconds rounded to the microsecond (the trace's resolution)."""
    return None if t is None else round(t, 6)
