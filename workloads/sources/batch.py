"""OpenAI batch JSONL (the research tool's format): one request per line.

    {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "...", "messages": [...], "max_tokens": 128, "temperature": 0.7}}

Each line is one single-turn conversation: leading system messages are its prefix, the remaining
messages (history included) its one turn. Body fields other than the messages, the output cap,
`model` and the streaming flags (which the run decides) are sent as extra request fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from workloads.conversation import Conversation, Turn
from workloads.errors import WorkloadError
from workloads.sources.chatlog import PREFIX_ROLES, check_messages, group_of
from workloads.spec import Options

SHAPE = '{"custom_id": ..., "body": {"messages": [{"role": ..., "content": ...}, ...], "max_tokens": N}}'
RUN_DECIDES = {"messages", "max_tokens", "max_completion_tokens", "model", "stream", "stream_options"}


def _max_tokens(body: dict, where: str) -> int | None:
    value = body.get("max_tokens", body.get("max_completion_tokens"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WorkloadError(f"{where}: body.max_tokens must be a positive integer; expected {SHAPE}")
    return value


def convert(where: str, obj: Any, fallback_id: str) -> Conversation:
    if not isinstance(obj, dict) or not isinstance(obj.get("body"), dict):
        raise WorkloadError(f"{where}: no body object; expected {SHAPE}")
    body = obj["body"]
    messages = check_messages(body.get("messages"), where, SHAPE, "body.messages")
    k = 0
    while k < len(messages) - 1 and messages[k]["role"] in PREFIX_ROLES:
        k += 1
    prefix = tuple(messages[:k])
    extra = {key: v for key, v in body.items() if key not in RUN_DECIDES}
    cid = obj.get("custom_id")
    turn = Turn(tuple(messages[k:]), _max_tokens(body, where), None, 0.0)
    return Conversation(
        str(cid) if cid is not None else fallback_id, prefix, (turn,), group_of(prefix), extra
    )


def load(records: Iterable[tuple[str, Any]], opts: Options, stem: str) -> list[Conversation]:
    opts.done()
    out: list[Conversation] = []
    seen: dict[str, int] = {}
    for n, (where, obj) in enumerate(records, 1):
        conv = convert(where, obj, f"{stem}-{n}")
        if conv.id in seen:  # ids must stay unique: they become session ids in requests.csv
            seen[conv.id] += 1
            conv = Conversation(
                f"{conv.id}#{seen[conv.id]}", conv.prefix, conv.turns, conv.group, conv.extra_body
            )
        else:
            seen[conv.id] = 1
        out.append(conv)
    return out
