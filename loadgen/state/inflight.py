"""How many requests this load process has on the wire right now.

Locust counts a request only when it ends, so a saturated server looks idle in its stats until
the timeouts arrive; the number still waiting on the server is the earliest sign of queueing.
`perform()` bumps this around the stream; workers send it with their reports (loadgen/live/webui).
"""

from __future__ import annotations


class InFlight:
    """A plain counter: gevent switches only at I/O, so `+=` needs no lock."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


IN_FLIGHT = InFlight()
