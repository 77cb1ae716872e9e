"""Waiting on the simulated engine's trace: its whole lines once it holds what a test needs.

The engine writes its trace every 0.5 s (simserver/trace.py), so a test that has its client's answers
polls the file until the requests it sent are there — a fact, not a sleep. Lines are read whole
(`read_lines`: a line the engine is still appending waits for the next read).
"""

from __future__ import annotations

import time
from pathlib import Path

from simserver.trace import read_lines

POLL_S = 0.05


def traced(path: Path, ids: set[str] | None = None, count: int = 0, timeout_s: float = 5.0) -> list[dict]:
    """The trace's lines once they hold every id in `ids` and at least `count` lines; what they hold at
    `timeout_s` otherwise (the caller's assertions then say what is missing)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = read_lines(path)
        if (ids or set()) <= {t["request_id"] for t in lines} and len(lines) >= count:
            return lines
        if time.monotonic() > deadline:
            return lines
        time.sleep(POLL_S)


def by_id(lines: list[dict], ids: set[str] | None = None) -> dict[str, dict]:
    """Trace lines keyed by request id (only `ids`' where given)."""
    return {t["request_id"]: t for t in lines if ids is None or t["request_id"] in ids}
