"""`LLMUser`: what every Goodput user shares — its transport (connection), its context, the pause
after requests the server never answered."""

from __future__ import annotations

import gevent
from locust import User

from core.result import StreamResult
from loadgen import context
from loadgen.context import RunContext
from loadgen.transport.client import make_transport

# Backoff after requests the server never answered: 50 ms, doubling, at most 1 s between tries.
NO_ANSWER_PAUSE_S = (0.05, 1.0)


def _idle(user: User) -> None:
    gevent.sleep(1.0)


class LLMUser(User):
    """Shared set-up of every Goodput user: one transport (connection) per user."""

    abstract = True
    scenario = "chat"
    no_answer_streak = 0

    def wait_time(self) -> float:
        """Closed loop: the next request leaves at once — unless the last one got no answer at all.

        Connection refused returns in microseconds: without a pause a server that is down or
        restarting turns every user into a tight loop writing thousands of `connect` rows a second.
        The backoff bounds that to about one row per user per second, and recovery within 1 s.
        """
        if not self.no_answer_streak:
            return 0.0
        first, cap = NO_ANSWER_PAUSE_S
        return min(cap, first * 2 ** (self.no_answer_streak - 1))

    def note(self, res: StreamResult) -> StreamResult:
        """Count consecutive requests the server never answered (no HTTP status: refused, reset, DNS)."""
        self.no_answer_streak = self.no_answer_streak + 1 if res.error and res.status is None else 0
        return res

    ctx: RunContext

    def on_start(self) -> None:
        ctx = self.ctx = context.of(self.environment)
        if ctx.refused:  # the web form's options were refused: this start sends nothing until stopped
            self.transport = None
            self.tasks = [_idle]
            return
        self.goodput_id = ctx.next_user_id()
        self.transport = make_transport(ctx.options.client, self.host or self.environment.host, ctx.api_key)

    def on_stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
