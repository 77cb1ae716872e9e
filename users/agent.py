"""Multi-turn agent sessions: the context grows with the server's real replies, turn after turn.

This is the workload where prefix caching matters: every turn resends the long shared system
prompt plus everything said so far, so a server that caches prefixes answers much faster.
"""

from __future__ import annotations

import gevent
from locust import task

from loadgen.request import perform
from users.base import LLMUser


class AgentUser(LLMUser):
    """One session per task: send each turn, append the live assistant reply, think, continue."""

    scenario = "agent"

    @task
    def session(self) -> None:
        ctx = self.ctx
        conv = ctx.workload(self.tenant).next_conversation()
        messages: list[dict] = list(conv.prefix)
        for i, turn in enumerate(conv.turns):
            pause = (
                (ctx.think_time_s or turn.think_time_s) if i else 0.0
            )  # --think-time overrides the dataset's
            if pause:
                gevent.sleep(pause)
            messages.extend(turn.messages)
            res = self.note(
                perform(
                    self,
                    "/v1/chat/completions",
                    ctx.chat_body(messages, turn.max_tokens, conv.extra_body),
                    session=conv.id,
                    turn=i,
                    backoff_s=self.backoff_s(),
                )
            )
            if res.error:
                return  # a broken session ends; the next task starts a new one
            messages.append({"role": "assistant", "content": res.text})
