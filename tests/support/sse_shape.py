"""The structure of an SSE stream, so a simulated stream can be compared with a real server's.

A stream's signature is its framing (`data: ` or `data:`, `event:` lines, `[DONE]`) and its
sequence of event shapes with runs of equal shapes collapsed: an event's shape is its `event:`
name and its JSON's key tree, every value reduced to its kind (null, bool, number, string, a list
of the first element's shape, or an object's keys → shapes). Values themselves never matter.
"""

from __future__ import annotations

from typing import Any

import orjson


def events(raw: bytes) -> list[tuple[str | None, bytes, bytes]]:
    """(event name, data prefix as written, data) per SSE event; comment lines are skipped."""
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, prefix, data = None, b"", b""
        for line in block.split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                prefix = b"data: " if line.startswith(b"data: ") else b"data:"
                data = line[len(prefix) :]
            else:
                raise ValueError(f"not an SSE line: {line[:80]!r}")
        if prefix:
            out.append((name, prefix, data))
    return out


def shape(v: Any) -> Any:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return ("list", shape(v[0]) if v else "empty")
    return tuple((k, shape(x)) for k, x in v.items())


def signature(raw: bytes) -> tuple[frozenset[bytes], list[Any]]:
    """(the data prefixes used, the collapsed sequence of (event name, shape) / "[DONE]")."""
    seq: list[Any] = []
    prefixes = set()
    for name, prefix, data in events(raw):
        prefixes.add(prefix)
        item = "[DONE]" if data == b"[DONE]" else (name, shape(orjson.loads(data)))
        if not seq or seq[-1] != item:
            seq.append(item)
    return frozenset(prefixes), seq


def diff(a: list[Any], b: list[Any]) -> str:
    """The first place two signatures differ, readable."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"event {i}:\n  simulator: {x}\n  fixture:   {y}"
    return f"lengths differ: simulator {len(a)} events, fixture {len(b)}"
