"""Request ids: unique across the workers and runs of a test, sent in a header the server can log.

Each id joins a client row with the server's own records (the simulated engine's trace, an
engine's spans or logs), so it travels in the request (`X-Request-Id` by default).
"""

from __future__ import annotations

import itertools
import uuid

DEFAULT_HEADER = "X-Request-Id"


class RequestIds:
    """`{tag}-{n:07d}`: a random per-process tag and a counter."""

    def __init__(self, header: str = DEFAULT_HEADER) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.header = header
        self._n = itertools.count(1)

    def next(self) -> str:
        return f"{self.tag}-{next(self._n):07d}"

    def headers(self, request_id: str) -> dict[str, str]:
        """The header(s) that carry `request_id` (none when the header is switched off)."""
        return {self.header: request_id} if self.header else {}
