"""Reading JSON / JSONL records with their location, and telling the record format apart.

A JSONL file yields `(path:LINE, object)` pairs so a bad line is reported where it is; a JSON
file holding an array yields `(path: record N, object)`. The format is told from the first record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workloads.errors import WorkloadError

try:  # orjson parses several times faster; json is the fallback with identical results
    import orjson

    _loads = orjson.loads
    _JSONError: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover
    _loads = json.loads
    _JSONError = (ValueError,)

JSONL_SHAPE = "one JSON object per line"


class BadJson(WorkloadError):
    """A record that is not JSON; the loader adds the shape it expected."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: not valid JSON ({detail})")
        self.where, self.detail = where, detail


def _detail(e: Exception) -> str:
    return str(e).splitlines()[0][:120] if str(e) else type(e).__name__


def read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield (location, parsed object) for every record; blank lines are skipped."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"["):
        data = path.read_bytes()
        try:
            items = json.loads(data)  # json (not orjson) reports the line of a syntax error
        except json.JSONDecodeError as e:
            raise BadJson(f"{path}:{e.lineno}", e.msg) from None
        for i, obj in enumerate(items, 1):
            yield f"{path}: record {i}", obj
        return
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = _loads(line)
            except _JSONError as e:
                raise BadJson(f"{path}:{lineno}", _detail(e)) from None
            yield f"{path}:{lineno}", obj


def detect(obj: Any) -> str:
    """The record format: sessions | batch | sharegpt | columns."""
    if not isinstance(obj, dict):
        return "columns"
    if obj.get("type") in ("goodput-workload", "prefix", "session"):
        return "sessions"
    if "custom_id" in obj or ("body" in obj and isinstance(obj["body"], dict)):
        return "batch"
    if isinstance(obj.get("conversations"), list) or isinstance(obj.get("conversation"), list):
        return "sharegpt"
    if isinstance(obj.get("messages"), list):
        return "sharegpt"  # a chat log with role/content messages: the same conversion
    return "columns"
