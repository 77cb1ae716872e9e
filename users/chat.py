"""Single-shot users: each task takes the next request of the workload and streams it.

Closed loop with no wait, like the research protocol's synchronous users: a user sends its next
request as soon as the previous one ends, so the user count is the concurrency (after a failed
request it pauses first: users/base.py `wait_time`).
"""

from __future__ import annotations

from locust import task

from loadgen.transport.apis import APIS
from users.base import LLMUser


class ChatUser(LLMUser):
    """One request per task, through the run's API (`--api`, default chat: `POST /v1/chat/completions`)."""

    @task
    def chat(self) -> None:
        ctx = self.ctx
        messages, max_tokens, conv, turn = ctx.workload(self.tenant).next_request()
        model = ctx.model_for(self.tenant, conv.id)
        body = ctx.body(messages, max_tokens, conv.extra_body, model)
        self.send(ctx.api, body, messages, conv.id, turn, model)


class CompletionsUser(LLMUser):
    """`POST /v1/completions` whatever `--api` says: the conversation rendered as one plain prompt."""

    scenario = "completions"

    @task
    def complete(self) -> None:
        ctx = self.ctx
        messages, max_tokens, conv, turn = ctx.workload(self.tenant).next_request()
        api = APIS["completions"]
        model = ctx.model_for(self.tenant, conv.id)
        body = api.build(ctx.prompt(messages, max_tokens, conv.extra_body, model=model))
        self.send(api, body, messages, conv.id, turn, model)
