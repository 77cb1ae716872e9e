"""Server-sent events → OpenAI stream payloads: the one place SSE is parsed.

Both transports hand complete events here *after* the arrival timestamp is taken, so the
cost of JSON decoding never moves a timestamp.
"""

from __future__ import annotations

from typing import Any

import orjson

DONE: Any = object()  # the `data: [DONE]` sentinel


class BadSSE(ValueError):
    """A `data:` line that is not JSON: the server broke the stream format."""


def event_data(event: bytes) -> bytes | None:
    """The data of one event (its `data:` lines joined); None for comments and keep-alives."""
    if event.startswith(b"data: ") and event.count(b"\n", 0, -2) == 0:
        return event[6:].rstrip(b"\r\n")  # the common case: one `data: {...}` line
    parts = [
        line[5:].lstrip(b" ") if line.startswith(b"data:") else b""
        for line in event.splitlines()
        if line.startswith(b"data:")
    ]
    return b"\n".join(parts) if parts else None


def decode(data: bytes) -> Any:
    """Payload → dict, or DONE."""
    if data == b"[DONE]":
        return DONE
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BadSSE(data[:120].decode("utf-8", "replace")) from e


def chunk_text(obj: dict) -> str:
    """Generated text a chunk carries: content, reasoning or tool-call text (chat) or text (completions).

    A role-only or empty delta carries none, so it never counts as the first token.
    """
    choices = obj.get("choices")
    if not choices:
        return ""
    choice = choices[0]
    delta = choice.get("delta")
    if delta is None:  # /v1/completions
        return choice.get("text") or ""
    text = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
    if not text and (calls := delta.get("tool_calls")):
        text = "".join(((c.get("function") or {}).get("arguments") or "") for c in calls)
    return text
