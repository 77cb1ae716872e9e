"""Server-sent event → JSON payload: what every API's parser (loadgen/transport/apis/) decodes
first (framing is loadgen/transport/eventstream.py, shared by both transports).

Both transports hand complete events to the API's `fold` *after* the arrival timestamp is taken,
so the cost of JSON decoding never moves a timestamp.
"""

from __future__ import annotations

from typing import Any

import orjson

from loadgen.transport.eventstream import ERROR, EventStream

DONE: Any = object()  # the `data: [DONE]` sentinel


class BadSSE(ValueError):
    """A `data:` line that is not JSON: the server broke the stream format."""


class StreamError(str):
    """The server's message from an error reported inside a 200 stream (an `error` event)."""


def event_data(event: bytes) -> bytes | None:
    """The data of one whole event (its `data:` lines joined); None for comments and keep-alives."""
    p = EventStream(bytearray(event))
    ev = p.next_event()
    return None if ev is None else bytes(ev[1])


def decode(data: bytes | bytearray, event: str = "message") -> Any:
    """One event → a dict, DONE, a StreamError, or None (nothing to fold: an empty or `null` keep-alive)."""
    if event == ERROR:
        return StreamError(_message(data))
    if data == b"[DONE]":
        return DONE
    if not data:
        return None
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise BadSSE(bytes(data[:120]).decode("utf-8", "replace")) from e
    return obj if type(obj) is dict else None


def error_message(obj: dict) -> str | None:
    """The server's message when a payload reports an error: `{"error": …}` (vLLM, OpenAI, TGI's
    string form) or vLLM's early unwrapped `{"object": "error", "message": …}`; None otherwise."""
    if err := obj.get("error"):
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    if obj.get("object") == "error":
        return str(obj.get("message") or obj)[:300]
    return None


def _message(data: bytes | bytearray) -> str:
    """An error event's data: a JSON error in one of the shapes above, or plain text."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict):
        return error_message(obj) or str(obj.get("message") or obj)[:300]
    return bytes(data).decode("utf-8", "replace")[:300] or "error event without a message"
