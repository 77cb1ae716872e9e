"""`--shape trace --trace-file FILE`: replay a request trace open loop (BurstGPT- or Mooncake-like).

One request per row, sent at its timestamp × `--time-scale` after the stage start, whatever the
server does. Columns (CSV with a header, or JSON lines), first name found wins:

  time           timestamp | time | t | arrival_time | Timestamp   (seconds)   or  timestamp_ms (ms)
  input tokens   input_tokens | input_length | prompt_tokens | request_tokens | Request tokens
  output tokens  output_tokens | output_length | completion_tokens | response_tokens | Response tokens
  prefix group   prefix_id | prefix | session_id | conversation_id   (optional; JSONL `hash_ids`: its
                 first id)
  prefix length  prefix_tokens (optional)

Timestamps are made relative to the earliest one; rows are replayed in time order. A Mooncake
trace (milliseconds in `timestamp`) replays in real time with `--time-scale 0.001`.

The prompt of each row is `synth_prompt(input_tokens)`; rows of one prefix group start with the
same `prefix_tokens` tokens (default: the group's smallest input), so a prefix cache can reuse
them. `max_tokens` is the row's output tokens (at least 1; BurstGPT logs failed requests with 0)
and `ignore_eos` asks the engine to generate exactly that many.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from core.errors import OptionError
from shapes.base import FIRST_STAGE_LEAD_S, Level, Progress, Schedule

TIME_S = ("timestamp", "time", "t", "arrival_time", "Timestamp", "TIMESTAMP")
TIME_MS = ("timestamp_ms",)
INPUT = ("input_tokens", "input_length", "prompt_tokens", "request_tokens", "Request tokens")
OUTPUT = ("output_tokens", "output_length", "completion_tokens", "response_tokens", "Response tokens")
PREFIX = ("prefix_id", "prefix", "session_id", "conversation_id")


@dataclass(frozen=True, slots=True)
class TraceRow:
    t_s: float  # scaled seconds after the first request
    input_tokens: int
    output_tokens: int
    prefix_id: str | None
    prefix_tokens: int
    line: int


@dataclass(frozen=True, slots=True)
class Trace:
    path: str
    rows: tuple[TraceRow, ...]
    time_scale: float

    @property
    def span_s(self) -> float:
        return self.rows[-1].t_s if self.rows else 0.0


_CACHE: dict[tuple, Trace] = {}


def load_trace(path: str, time_scale: float = 1.0) -> Trace:
    """Parse and validate; every problem is one line `FILE:LINE: what is wrong`."""
    if not time_scale > 0 or not math.isfinite(time_scale):
        raise OptionError(f"--time-scale: {time_scale} must be a positive factor")
    try:
        st = os.stat(path)
    except OSError as e:
        raise OptionError(f"--trace-file: cannot read '{path}' ({e.strerror or e})") from None
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size, time_scale)
    if key in _CACHE:
        return _CACHE[key]
    with open(path, encoding="utf-8-sig", newline="") as fh:  # tolerate a BOM (spreadsheet exports)
        head = fh.read(4096).lstrip()
        fh.seek(0)
        jsonl = path.endswith((".jsonl", ".ndjson", ".json")) or head.startswith("{")
        raw = list(_jsonl(fh, path) if jsonl else _csv(fh, path))
    if not raw:
        raise OptionError(f"{path}: no requests in the trace")
    raw.sort(key=lambda r: r[0])
    t0 = raw[0][0]
    groups: dict[str, int] = {}
    for _, inp, _, pid, _, _ in raw:
        if pid is not None:
            groups[pid] = min(groups.get(pid, inp), inp)
    rows = tuple(
        TraceRow(
            t_s=(t - t0) * time_scale,
            input_tokens=inp,
            output_tokens=out,
            prefix_id=pid,
            prefix_tokens=min(inp, ptok if ptok is not None else groups[pid]) if pid is not None else 0,
            line=line,
        )
        for t, inp, out, pid, ptok, line in raw
    )
    trace = Trace(path=path, rows=rows, time_scale=time_scale)
    _CACHE.clear()  # one trace per run: keep memory bounded
    _CACHE[key] = trace
    return trace


Raw = tuple[float, int, int, str | None, int | None, int]  # time, in, out, prefix id/tokens, line


def _csv(fh: Iterable[str], path: str) -> Iterator[Raw]:
    reader = csv.DictReader(fh)
    names = reader.fieldnames or []
    cols = _columns(names, path, 1)
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        yield _parse(row, cols, path, line)


def _jsonl(fh: Iterable[str], path: str) -> Iterator[Raw]:
    cols: dict | None = None
    for line, text in enumerate(fh, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise OptionError(f"{path}:{line}: invalid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise OptionError(f"{path}:{line}: expected a JSON object per line")
        if "hash_ids" in obj and not any(k in obj for k in PREFIX):
            ids = obj["hash_ids"]
            obj = {**obj, "prefix_id": str(ids[0]) if isinstance(ids, list) and ids else None}
        if cols is None:
            cols = _columns(list(obj), path, line)
        yield _parse(obj, cols, path, line)


def _columns(names: list[str], path: str, line: int) -> dict:
    def pick(options: tuple[str, ...]) -> str | None:
        return next((n for n in options if n in names), None)

    t_col, ms = pick(TIME_S), False
    if t_col is None and (t_col := pick(TIME_MS)) is not None:
        ms = True
    for col, options, what in ((t_col, TIME_S + TIME_MS, "timestamp"), (pick(INPUT), INPUT, "input tokens"),
                               (pick(OUTPUT), OUTPUT, "output tokens")):  # fmt: skip
        if col is None:
            raise OptionError(f"{path}:{line}: no {what} column (expected one of {', '.join(options)})")
    return {"t": t_col, "ms": ms, "in": pick(INPUT), "out": pick(OUTPUT), "pid": pick(PREFIX),
            "ptok": "prefix_tokens" if "prefix_tokens" in names else None}  # fmt: skip


def _parse(row: dict, cols: dict, path: str, line: int) -> Raw:
    where = f"{path}:{line}"
    try:
        t = float(row.get(cols["t"]))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionError(f"{where}: timestamp '{row.get(cols['t'])}' is not a number") from None
    if not math.isfinite(t):
        raise OptionError(f"{where}: timestamp '{row.get(cols['t'])}' is not finite")
    if cols["ms"]:
        t /= 1000.0
    inp = max(1, _tokens(row.get(cols["in"]), where, "input tokens"))
    out = max(1, _tokens(row.get(cols["out"]), where, "output tokens"))
    pid = row.get(cols["pid"]) if cols["pid"] else None
    pid = None if pid in (None, "") else str(pid)
    ptok = None
    if cols["ptok"] and row.get(cols["ptok"]) not in (None, ""):
        ptok = _tokens(row.get(cols["ptok"]), where, "prefix_tokens")
    return t, inp, out, pid, ptok, line


def _tokens(value: Any, where: str, what: str) -> int:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise OptionError(f"{where}: {what} '{value}' is not a number") from None
    if not math.isfinite(x) or x < 0 or x != int(x):
        raise OptionError(f"{where}: {what} '{value}' must be a whole number ≥ 0")
    return int(x)


@dataclass(slots=True)
class TraceSchedule(Schedule):
    """One open-loop stage that lasts the trace, then waits (up to the request timeout) for the
    last responses before ending the run."""

    trace: Trace
    max_concurrency: int = 0
    drain_s: float = 120.0
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    completed: Callable[[], int] | None = None

    open_loop = True

    def bind(self, progress: Progress) -> None:
        self.completed = progress.finished

    @property
    def rate_rps(self) -> float:
        n = len(self.trace.rows)
        return n / self.trace.span_s if self.trace.span_s > 0 else float(n)

    def level_at(self, run_time_s: float) -> Level | None:
        end = self.trace.span_s + FIRST_STAGE_LEAD_S + 0.5  # the stage starts after its lead
        if run_time_s >= end:
            drained = self.completed is not None and self.completed() >= len(self.trace.rows)
            if drained or run_time_s >= end + self.drain_s:
                return None
        return Level(
            step=0,
            users=self.max_concurrency,
            spawn_rate=1.0,
            label="trace",
            rate_rps=self.rate_rps,
            warmup_s=self.warmup_s,
            cooldown_s=self.cooldown_s,
        )

    def describe(self) -> dict:
        rows = self.trace.rows
        return {
            "trace_file": self.trace.path,
            "time_scale": self.trace.time_scale,
            "requests": len(rows),
            "span_s": self.trace.span_s,
            "mean_rate_rps": self.rate_rps,
            "input_tokens": sum(r.input_tokens for r in rows),
            "output_tokens": sum(r.output_tokens for r in rows),
            "prefix_groups": len({r.prefix_id for r in rows if r.prefix_id is not None}),
            "max_concurrency": self.max_concurrency,
        }
