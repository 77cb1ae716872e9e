"""The request trace: one JSON line per request, joinable with client rows by `request_id`.

Lines are buffered and written at most every `flush_s` (and on shutdown), so tracing costs one
dict and one orjson call per request, never a disk write on the token path. The file is opened
for append: restarting the simulator never destroys an earlier run's trace. RequestCtx is what the
writers (simserver/sinks.py) note of one request on its way, written as its line once it ends.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from simserver.answer import REASONING, TOOL, Answer

if TYPE_CHECKING:
    from simserver.seq import Seq

FIELDS = (
    "request_id",
    "t_arrival_unix",
    "t_first_emit_unix",
    "t_last_emit_unix",
    "prompt_tokens",
    "cached_tokens",
    "output_tokens",
    "status",
    "fault",
    "http_status",
    "finish_reason",
    "endpoint",
    "stream",
    "preemptions",
)


class TraceWriter:
    def __init__(self, path: str | Path, flush_s: float = 0.5) -> None:
        self.path = Path(path)
        self.fh = self.path.open("ab")
        self.lines: list[bytes] = []
        self.flush_s = flush_s
        self._timer: asyncio.TimerHandle | None = None

    def write(self, record: dict[str, Any]) -> None:
        self.lines.append(orjson.dumps(record) + b"\n")
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._timer = loop.call_later(self.flush_s, self.flush)

    def flush(self) -> None:
        self._timer = None
        if self.lines:
            self.fh.write(b"".join(self.lines))
            self.lines.clear()
            self.fh.flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self.flush()
        self.fh.close()


def read_lines(path: str | Path) -> list[dict[str, Any]]:
    """The trace's lines written so far: [] before the file exists, and never a half-written last one.

    Why: a reader polls the trace while the engine runs, and one append is not atomic to a reader on
    Linux (the file grows page by page as the write copies): a line cut at a page's end was seen once.
    A line is whole once its newline is there, so the bytes after the last newline are left for later.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return [orjson.loads(x) for x in data[: data.rfind(b"\n") + 1].splitlines() if x.strip()]


def us(t: float | None) -> float | None:
    """Wall-clock seconds rounded to the microsecond (the trace's resolution)."""
    return None if t is None else round(t, 6)


class RequestCtx:
    """What the trace records about one request; `finish` writes it once."""

    __slots__ = (
        "answer",
        "cached_tokens",
        "emits",
        "endpoint",
        "fault",
        "finish_reason",
        "http_status",
        "images",
        "lora",
        "output_tokens",
        "preemptions",
        "prompt_tokens",
        "request_id",
        "stream",
        "t_arrival",
        "t_first",
        "t_first_answer",
        "t_first_tool",
        "t_last",
        "trace",
    )

    def __init__(
        self,
        request_id: str,
        endpoint: str,
        t_arrival: float,
        trace: TraceWriter | None,
        tokens: bool = False,
    ) -> None:
        self.request_id, self.endpoint, self.t_arrival, self.trace = request_id, endpoint, t_arrival, trace
        self.stream = False
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.t_first_answer: float | None = None
        self.t_first_tool: float | None = None
        self.emits: list[float] | None = [] if tokens and trace is not None else None
        self.answer: Answer | None = None
        self.prompt_tokens = self.cached_tokens = self.output_tokens = self.preemptions = 0
        self.images = 0  # the prompt's images (their tokens are in prompt_tokens)
        self.fault: str | None = None
        self.finish_reason: str | None = None
        self.http_status = 200
        # with LoRA adapters served: the request's adapter, "" for the base model (traced as null);
        # None when the server serves none, and the line has no `lora` at all
        self.lora: str | None = None

    def stamp(self) -> float:
        """Called right before the bytes go to the socket (a client can never see them earlier)."""
        t = time.time()
        if self.t_first is None:
            self.t_first = t
        self.t_last = t
        return t

    def wrote(self, phase: int, t: float, count: int = 1) -> None:
        """`count` tokens of `phase` left at time t."""
        if phase != REASONING and self.t_first_answer is None:
            self.t_first_answer = t
        if phase == TOOL and self.t_first_tool is None:
            self.t_first_tool = t
        if self.emits is not None:
            self.emits.extend([t] * count)

    def finish(self, status: str, seq: Seq | None = None) -> None:
        trace, self.trace = self.trace, None
        if trace is None:
            return
        if seq is not None:
            self.cached_tokens = max(seq.num_cached, 0)
            self.preemptions = seq.preemptions
        a, n = self.answer, self.output_tokens
        reasoning, answered = a.split(n) if a is not None else (0, n)
        tool = a.tool if a is not None and answered > 0 else None
        record: dict[str, Any] = {
            "request_id": self.request_id,
            "t_arrival_unix": us(self.t_arrival),
            "t_first_emit_unix": us(self.t_first),
            "t_first_answer_emit_unix": us(self.t_first_answer),
            "t_last_emit_unix": us(self.t_last),
            "prompt_tokens": self.prompt_tokens,
            "images": self.images,
            "cached_tokens": self.cached_tokens,
            "output_tokens": n,
            "reasoning_tokens": reasoning,
            "tool_name": tool.name if tool is not None else None,
            "t_first_tool_call_emit_unix": us(self.t_first_tool),
            "tool_argument_tokens": max(0, answered - 1) if tool is not None else 0,
            "status": status,
            "fault": self.fault,
            "http_status": self.http_status,
            "finish_reason": self.finish_reason,
            "endpoint": self.endpoint,
            "stream": self.stream,
            "preemptions": self.preemptions,
        }
        if self.lora is not None:
            record["lora"] = self.lora or None
        if self.emits is not None:
            record["emit_unix"] = [round(t * 1e6) / 1e6 for t in self.emits]  # µs; round(t, 6) costs 10x more
        trace.write(record)
