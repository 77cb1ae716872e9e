"""Multi-turn agent sessions: the context grows with the server's real replies, turn after turn.

This is the workload where prefix caching matters: every turn resends the long shared system
prompt plus everything said so far, so a server that caches prefixes answers much faster.

When the workload sends tool definitions (`tools` in its extra body, e.g. `agentic:tools=native`)
and the server answers with a tool call, the session goes on as a real agent's does: the assistant
message carries the call (`tool_calls`), and the next turn's tool result — the workload's text —
goes back as a `tool` message answering that call. A reasoning model's reasoning is not sent back
(only the answer), as its chat templates expect.
"""

from __future__ import annotations

import gevent
from locust import task

from core.result import StreamResult
from users.base import LLMUser
from workloads import tool_result_text

UNANSWERED = "(not run)"  # the answer to a call the workload has no result for


class AgentUser(LLMUser):
    """One session per task: send each turn, append the live assistant reply, think, continue."""

    scenario = "agent"

    @task
    def session(self) -> None:
        ctx = self.ctx
        conv = ctx.workload(self.tenant).next_conversation()
        messages: list[dict] = list(conv.prefix)
        calls: list[dict] = []
        model = ctx.model_for(self.tenant, conv.id)  # one model (adapter) for the whole session
        for i, turn in enumerate(conv.turns):
            pause = (
                (ctx.think_time_s or turn.think_time_s) if i else 0.0
            )  # --think-time overrides the dataset's
            if pause:
                gevent.sleep(pause)
            messages.extend(tool_messages(turn.messages, calls) if calls else turn.messages)
            body = ctx.body(messages, turn.max_tokens, conv.extra_body, model)
            res = self.send(ctx.api, body, messages, conv.id, i, model)
            if res.error:
                return  # a broken session ends; the next task starts a new one
            calls = named_calls(res)
            messages.append(assistant_message(res, calls))


def named_calls(res: StreamResult) -> list[dict]:
    """The reply's tool calls in OpenAI's message form, each with an id (servers may omit it)."""
    return [
        {
            "id": c["id"] or f"call_{k}",
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
        }
        for k, c in enumerate(res.tool_calls or ())
        if c["name"]
    ]


def assistant_message(res: StreamResult, calls: list[dict]) -> dict:
    message: dict = {"role": "assistant", "content": res.text}
    if calls:
        message["tool_calls"] = calls
    return message


def tool_messages(messages: tuple[dict, ...], calls: list[dict]) -> list[dict]:
    """The turn after a tool call: a `tool` message answering each call — the first with the
    workload's tool result when the turn opens with one, the others (and every call, when the turn
    is a human message instead) with a short "not run" — then the turn's other messages."""
    first = messages[0] if messages else {}
    result = tool_result_text(str(first.get("content") or ""))
    rest = list(messages[1:] if result is not None else messages)
    answers = [
        {
            "role": "tool",
            "tool_call_id": c["id"],
            "content": result if k == 0 and result is not None else UNANSWERED,
        }
        for k, c in enumerate(calls)
    ]
    return answers + rest
