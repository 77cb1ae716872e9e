"""`LLMUser`: what every Goodput user shares — its transport (connection), its context, and the pause
after failed requests (loadgen/state/pacing.py: bounded backoff, `Retry-After` obeyed)."""

from __future__ import annotations

import gevent
from locust import User

from core.result import StreamResult
from loadgen import context
from loadgen.context import RunContext
from loadgen.request import perform
from loadgen.state.pacing import Pacing
from loadgen.transport.apis import Api
from loadgen.transport.client import make_transport
from workloads.images import count_images


def _idle(user: User) -> None:
    gevent.sleep(1.0)


class LLMUser(User):
    """Shared set-up of every Goodput user: one transport (connection) per user."""

    abstract = True
    scenario = "chat"

    def wait_time(self) -> float:
        """Closed loop: the next request leaves at once — unless the last one failed.

        A server that refuses at once (400, 401, 503, connection refused) answers in a millisecond:
        without a pause every user turns into a tight loop writing thousands of rows a second. After
        a failure the user backs off (50 ms doubling to 1 s; a 429/503 `Retry-After` is obeyed), so
        such a server sees about one request per user per second, and recovery shows within 1 s.
        Locust ends a waiting user at once when the run stops, so no pause outlasts the run.
        """
        return self.pacing.pause_s

    def note(self, res: StreamResult) -> StreamResult:
        """Decide the pause before this user's next request from how `res` ended."""
        self.pacing.after(res, self.ctx.remaining_s())
        return res

    def backoff_s(self) -> float | None:
        """The pause this user just took after failures: for the row of the request it sends now."""
        return self.pacing.take()

    def send(
        self, api: Api, body: dict, messages: list[dict], session: str, turn: int, model: str
    ) -> StreamResult:
        """Send one turn of a conversation (`body`, built from `messages` for `api`) and note how it
        ended: its row says the pause before it, the model it named and the images it carried."""
        images = count_images(messages)
        return self.note(
            perform(
                self,
                api,
                body,
                session=session,
                turn=turn,
                backoff_s=self.backoff_s(),
                model=model,
                images=images,
            )
        )

    ctx: RunContext
    pacing: Pacing
    #: The mix class this user sends for (`--mix`: loadgen/run/tenants.py makes one subclass per class).
    tenant: str = ""

    def on_start(self) -> None:
        self.pacing = Pacing()
        ctx = self.ctx = context.of(self.environment)
        if ctx.refused:  # the web form's options were refused: this start sends nothing until stopped
            self.transport = None
            self.tasks = [_idle]
            return
        self.goodput_id = ctx.next_user_id()
        self.transport = make_transport(
            ctx.options.client, self.host or self.environment.host, ctx.api_key, ctx.extra_headers, ctx.api
        )

    def on_stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
