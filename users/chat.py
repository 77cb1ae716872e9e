"""Single-shot users: each task takes the next request of the workload and streams it.

Closed loop with no wait, like the research protocol's synchronous users: a user sends its next
request as soon as the previous one ends, so the user count is the concurrency (after a failed
request it pauses first: users/base.py `wait_time`).
"""

from __future__ import annotations

from locust import task

from loadgen.request import perform
from users.base import LLMUser


class ChatUser(LLMUser):
    """`POST /v1/chat/completions`, streamed, one request per task."""

    @task
    def chat(self) -> None:
        ctx = self.ctx
        messages, max_tokens, conv, turn = ctx.workload(self.tenant).next_request()
        self.note(
            perform(
                self,
                "/v1/chat/completions",
                ctx.chat_body(messages, max_tokens, conv.extra_body),
                session=conv.id,
                turn=turn,
                backoff_s=self.backoff_s(),
            )
        )


class CompletionsUser(LLMUser):
    """`POST /v1/completions`: the conversation rendered as one plain prompt (no chat template)."""

    scenario = "completions"

    @task
    def complete(self) -> None:
        ctx = self.ctx
        messages, max_tokens, conv, turn = ctx.workload(self.tenant).next_request()
        prompt = "\n\n".join(str(m.get("content") or "") for m in messages)
        self.note(
            perform(
                self,
                "/v1/completions",
                ctx.completion_body(prompt, max_tokens, conv.extra_body),
                session=conv.id,
                turn=turn,
                backoff_s=self.backoff_s(),
            )
        )
