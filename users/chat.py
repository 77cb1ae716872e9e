"""Single-shot users: each task takes the next request of the workload and streams it.

Closed loop with no wait, like the research protocol's synchronous users: a user sends its next
request as soon as the previous one ends, so the user count is the concurrency.
"""

from __future__ import annotations

from locust import User, constant, task

from users.client import make_transport
from users.request import perform


class LLMUser(User):
    """Shared set-up of every Goodput user: one transport (connection) per user."""

    abstract = True
    wait_time = constant(0)
    scenario = "chat"

    def on_start(self) -> None:
        ctx = self.environment.goodput
        self.goodput_id = ctx.next_user_id()
        self.transport = make_transport(ctx.options.client, self.host or self.environment.host, ctx.api_key)

    def on_stop(self) -> None:
        self.transport.close()


class ChatUser(LLMUser):
    """`POST /v1/chat/completions`, streamed, one request per task."""

    @task
    def chat(self) -> None:
        ctx = self.environment.goodput
        messages, max_tokens, conv, turn = ctx.workload().next_request()
        perform(
            self,
            "/v1/chat/completions",
            ctx.chat_body(messages, max_tokens, conv.extra_body),
            session=conv.id,
            turn=turn,
        )


class CompletionsUser(LLMUser):
    """`POST /v1/completions`: the conversation rendered as one plain prompt (no chat template)."""

    scenario = "completions"

    @task
    def complete(self) -> None:
        ctx = self.environment.goodput
        messages, max_tokens, conv, turn = ctx.workload().next_request()
        prompt = "\n\n".join(str(m.get("content") or "") for m in messages)
        perform(
            self,
            "/v1/completions",
            ctx.completion_body(prompt, max_tokens, conv.extra_body),
            session=conv.id,
            turn=turn,
        )
