"""Goodput's session JSONL: the format of the shipped sets, able to hold multi-turn sessions.

    {"type": "goodput-workload", "version": 1, "name": "agentic", "description": "...", "options": {...}}
    {"type": "prefix", "id": "forge-textkit", "messages": [{"role": "system", "content": "..."}]}
    {"type": "session", "id": "agentic-0001", "group": "forge-textkit", "prefix": "forge-textkit",
     "turns": [{"messages": [...], "max_tokens": 80, "reply": "...", "think_time_s": 0.4}, ...],
     "extra_body": {}}

A long shared prefix is written once (`type: prefix`) and referenced by id, which keeps the files
small; a session may also carry its prefix inline as a message list. The header line is optional.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from workloads.conversation import Conversation, Turn
from workloads.errors import WorkloadError
from workloads.sources.chatlog import check_messages
from workloads.spec import Options

SHAPE = (
    '{"type": "session", "id": ..., "prefix": PREFIX_ID|[messages], '
    '"turns": [{"messages": [...], "max_tokens": N, "reply": "...", "think_time_s": S}, ...]}'
)


def _turn(where: str, i: int, t: Any) -> Turn:
    if not isinstance(t, dict):
        raise WorkloadError(f"{where}: turns[{i}] is not an object; expected {SHAPE}")
    messages = check_messages(t.get("messages"), where, SHAPE, f"turns[{i}].messages")
    max_tokens = t.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise WorkloadError(f"{where}: turns[{i}].max_tokens must be a positive integer; expected {SHAPE}")
    reply = t.get("reply")
    if reply is not None and not isinstance(reply, str):
        raise WorkloadError(f"{where}: turns[{i}].reply must be text; expected {SHAPE}")
    think = t.get("think_time_s", 0.0)
    if isinstance(think, bool) or not isinstance(think, int | float) or think < 0:
        raise WorkloadError(f"{where}: turns[{i}].think_time_s must be ≥ 0 seconds; expected {SHAPE}")
    return Turn(tuple(messages), max_tokens, reply, float(think) if i else 0.0)


def load(
    records: Iterable[tuple[str, Any]], opts: Options, stem: str, header: dict | None = None
) -> list[Conversation]:
    """Options: think=F scales every recorded think time (0 turns pauses off)."""
    think_scale = opts.number("think", 1.0)
    opts.done()
    prefixes: dict[str, tuple[dict, ...]] = {}
    out: list[Conversation] = []
    for where, obj in records:
        kind = obj.get("type") if isinstance(obj, dict) else None
        if kind == "goodput-workload":
            if header is not None:
                header.update(obj)
            continue
        if kind == "prefix":
            pid = obj.get("id")
            if not isinstance(pid, str) or not pid:
                raise WorkloadError(
                    f'{where}: prefix without an id; expected {{"type": "prefix", "id": ..., "messages": [...]}}'
                )
            prefixes[pid] = tuple(check_messages(obj.get("messages"), where, SHAPE))
            continue
        if kind != "session":
            raise WorkloadError(f"{where}: unknown record; expected {SHAPE}")
        ref = obj.get("prefix", [])
        if isinstance(ref, str):
            if ref not in prefixes:
                raise WorkloadError(
                    f"{where}: prefix '{ref}' is not defined above; expected a type=prefix line first"
                )
            prefix = prefixes[ref]
        else:
            prefix = tuple(check_messages(ref, where, SHAPE, "prefix")) if ref else ()
        turns_raw = obj.get("turns")
        if not isinstance(turns_raw, list) or not turns_raw:
            raise WorkloadError(f"{where}: turns must be a non-empty list; expected {SHAPE}")
        turns = tuple(_turn(where, i, t) for i, t in enumerate(turns_raw))
        if think_scale != 1.0:
            turns = tuple(
                Turn(t.messages, t.max_tokens, t.reply, round(t.think_time_s * think_scale, 3)) for t in turns
            )
        extra = obj.get("extra_body") or {}
        if not isinstance(extra, dict):
            raise WorkloadError(f"{where}: extra_body must be an object; expected {SHAPE}")
        group = obj.get("group") or (ref if isinstance(ref, str) else "default")
        out.append(
            Conversation(str(obj.get("id", f"{stem}-{len(out) + 1}")), prefix, turns, str(group), extra)
        )
    return out


def dump_lines(conversations: Iterable[Conversation], header: dict) -> Iterator[str]:
    """Serialise conversations, writing each distinct prefix once (deterministic, compact)."""

    def line(obj: dict) -> str:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))

    yield line({"type": "goodput-workload", "version": 1, **header})
    ids: dict[tuple, str] = {}
    for c in conversations:
        key = tuple(json.dumps(m, sort_keys=True) for m in c.prefix)
        ref: str | list = list(c.prefix)
        if c.prefix:
            if key not in ids:
                ids[key] = c.group if c.group not in ids.values() else f"{c.group}-{len(ids)}"
                yield line({"type": "prefix", "id": ids[key], "messages": list(c.prefix)})
            ref = ids[key]
        turns = [
            {
                "messages": list(t.messages),
                "max_tokens": t.max_tokens,
                "reply": t.reply,
                "think_time_s": t.think_time_s,
            }
            for t in c.turns
        ]
        session = {"type": "session", "id": c.id, "group": c.group, "prefix": ref, "turns": turns}
        if c.extra_body:
            session["extra_body"] = c.extra_body
        yield line(session)
