"""Request bookkeeping after the I/O: finished requests wait until the event loop has nothing to read."""

from __future__ import annotations

import time
from collections import deque

import gevent
from gevent import Greenlet
from gevent.hub import Waiter, get_hub


class IoFirst:
    """Request bookkeeping waits until the event loop has no I/O pending, ~1 ms of it per loop pass.

    A token's stamp is its kernel arrival (loadgen/transport/arrival.py) as long as its stream is read before the
    next token comes. When many streams end in the same engine step (closed-loop users with equal
    lengths stay in lockstep), their rows, Locust events and the requests that follow would hold
    the loop for tens of ms while the first tokens of the requests just sent arrive unread. Here a
    finished request waits its turn; a dispatcher lets a batch go whenever the loop is idle and sizes
    the batches so that one takes about `BUDGET_S`. Under no pressure that is the same loop pass.
    """

    BUDGET_S = 0.001

    def __init__(self) -> None:
        self.waiting: deque[Waiter] = deque()
        self.dispatcher: Greenlet | None = None
        self.batch = 8

    def wait(self) -> None:
        w = Waiter()
        self.waiting.append(w)
        if self.dispatcher is None:
            self.dispatcher = gevent.spawn(self._dispatch)
        w.get()

    def _dispatch(self) -> None:
        loop = get_hub().loop
        try:
            while self.waiting:
                gevent.idle()
                t0 = time.perf_counter()
                for _ in range(min(self.batch, len(self.waiting))):
                    loop.run_callback(self.waiting.popleft().switch, None)
                gevent.sleep(0)  # queued after them: each ran until it blocked (its next request sent)
                if time.perf_counter() - t0 > self.BUDGET_S:
                    self.batch = max(1, self.batch // 2)
                else:
                    self.batch = min(2 * self.batch, 256)
        finally:
            self.dispatcher = None
