"""Chat logs → conversations: ShareGPT (`conversations: [{from, value}]`) and `messages: [{role, content}]`.

Leading system messages become the shareable prefix; every user message (with any tool results
before it) opens a turn and the assistant message after it is that turn's recorded reply, whose
length becomes the turn's expected output (as vLLM's benchmark does for ShareGPT). A log whose
first speaker is the assistant has that message skipped; records with no user turn are skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from workloads.conversation import Conversation, Turn
from workloads.errors import WorkloadError
from workloads.spec import Options
from workloads.tokens import count_tokens, render

SHAPE = (
    '{"id": ..., "conversations": [{"from": "system"|"human"|"gpt", "value": "..."}, ...]}'
    ' or {"messages": [{"role": ..., "content": ...}, ...]}'
)
ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
    "bing": "assistant", "model": "assistant", "assistant": "assistant", "system": "system",
    "developer": "system", "tool": "tool", "function": "tool", "observation": "tool", "ipython": "tool",
}  # fmt: skip
PREFIX_ROLES = ("system", "developer")


def check_messages(items: Any, where: str, shape: str, field: str = "messages") -> list[dict]:
    """Validate OpenAI-style messages: a non-empty list of {role: str, content: str|list|null}."""
    if not isinstance(items, list) or not items:
        raise WorkloadError(f"{where}: {field} must be a non-empty list; expected {shape}")
    for i, m in enumerate(items):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise WorkloadError(f"{where}: {field}[{i}] has no role; expected {shape}")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise WorkloadError(f"{where}: {field}[{i}].content must be text; expected {shape}")
    return items


def normalize(items: Any, where: str) -> list[dict]:
    """ShareGPT items or role/content messages → OpenAI messages."""
    if not isinstance(items, list):
        raise WorkloadError(f"{where}: conversations must be a list; expected {SHAPE}")
    out: list[dict] = []
    for i, m in enumerate(items):
        if not isinstance(m, dict):
            raise WorkloadError(f"{where}: message {i} is not an object; expected {SHAPE}")
        speaker = m.get("from", m.get("role"))
        text = m.get("value", m.get("content"))
        role = ROLES.get(str(speaker).lower()) if speaker is not None else None
        if role is None:
            raise WorkloadError(f"{where}: message {i} has speaker {speaker!r}; expected {SHAPE}")
        if text is not None and not isinstance(text, str | list):
            raise WorkloadError(f"{where}: message {i} has no text; expected {SHAPE}")
        out.append({"role": role, "content": text if text is not None else ""})
    return out


def group_of(prefix: tuple[dict, ...] | list[dict]) -> str:
    """Conversations with an identical prefix form one group; no prefix → `default`."""
    if not prefix:
        return "default"
    return "p" + hashlib.sha256(render(prefix).encode()).hexdigest()[:10]


def build(messages: list[dict], cid: str, first_turn_only: bool = False) -> Conversation | None:
    """One conversation from a message list; None when it holds no user turn."""
    k = 0
    while k < len(messages) and messages[k]["role"] in PREFIX_ROLES:
        k += 1
    prefix = tuple(messages[:k])
    rest = messages[k:]
    while rest and rest[0]["role"] == "assistant":
        rest = rest[1:]
    turns: list[Turn] = []
    pending: list[dict] = []
    for m in rest:
        if m["role"] != "assistant":
            pending.append(m)
            continue
        reply = m.get("content") or ""
        reply = reply if isinstance(reply, str) else str(reply)
        if pending:
            turns.append(Turn(tuple(pending), max(1, count_tokens(reply)), reply, 0.0))
            pending = []
        elif turns:  # two assistant messages in a row: one longer reply
            last = turns[-1]
            joined = f"{last.reply}\n{reply}"
            turns[-1] = Turn(last.messages, max(1, count_tokens(joined)), joined, 0.0)
    if pending:
        turns.append(Turn(tuple(pending), None, None, 0.0))
    if not turns:
        return None
    if first_turn_only:
        turns = turns[:1]
    return Conversation(cid, prefix, tuple(turns), group_of(prefix), {})


def load(records: Iterable[tuple[str, Any]], opts: Options, stem: str) -> list[Conversation]:
    """Options: turns=all|first (first = only the opening exchange, as vLLM's ShareGPT benchmark)."""
    first_only = opts.choice("turns", "all", ("all", "first")) == "first"
    opts.done()
    out: list[Conversation] = []
    for n, (where, obj) in enumerate(records, 1):
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}: not an object; expected {SHAPE}")
        items = obj.get("conversations", obj.get("conversation", obj.get("messages")))
        if items is None:
            raise WorkloadError(f"{where}: no conversations; expected {SHAPE}")
        conv = build(normalize(items, where), str(obj.get("id", f"{stem}-{n}")), first_only)
        if conv is not None:
            out.append(conv)
    return out
