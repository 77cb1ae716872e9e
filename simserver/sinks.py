"""Response writers: engine tokens → one route's wire format (a stream, or one body), faults applied.

What the bytes look like is the route's `Wire` (simserver/wire_*.py); how and when they leave is
here, the same for every route. A stream writes each token as soon as the engine samples it: a
token is one concatenation (or one prebuilt-format call) and one `transport.write`. Only tokens
that need more — the first, the first of a new phase (reasoning → answer), the last, or every
token of a request with a fault — take the slow path. --trace-tokens adds one clock read and one
append per token (TracedStreamSink), and nothing at all when it is off. With speculative decoding
a sequence's tokens of one step arrive together (`on_step`) and leave as one event per phase, as
vLLM streams them; a request with a fault takes them one by one, where its cut points are.

Every request ends in exactly one trace record (RequestCtx.finish), whatever way it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from simserver.answer import REASONING, Answer
from simserver.engine import Seq
from simserver.http import Connection
from simserver.runner import EngineRunner
from simserver.tokenizer import VOCAB_JSON, VOCAB_JSON_LEN
from simserver.trace import RequestCtx
from simserver.wire import Emit, Tally, Wire, frame, joined_json

CHUNK = b"%x\r\n%b%b%b\r\n"  # one chunked-encoding frame around pre + token + post
BAD_SSE = b'data: {"id": "broken", "choices": [{"delta": {"content": "\n\n'  # the bad_sse fault's line


class BaseSink:
    """State shared by both writers: connection, trace context, wire, fault and its cut point."""

    __slots__ = ("answer", "conn", "ctx", "cut_at", "fault", "n", "runner", "wire")

    def __init__(
        self,
        conn: Connection,
        ctx: RequestCtx,
        wire: Wire,
        answer: Answer,
        fault: str | None,
        runner: EngineRunner,
    ) -> None:
        self.conn, self.ctx, self.wire, self.fault, self.runner = conn, ctx, wire, fault, runner
        self.answer = ctx.answer = answer
        self.n = 0  # tokens received from the engine (a trickle may deliver them late)
        self.cut_at = answer.total // 2  # disconnect / bad_sse position: mid-answer

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        raise NotImplementedError

    def on_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None:
        """A speculative step's tokens, handed on one by one (what writers of one token at a time do)."""
        last = len(indices) - 1
        for i, index in enumerate(indices):
            self.on_token(seq, index, finish if i == last else None, now)

    def _drop(self, seq: Seq) -> None:
        """The disconnect fault: close the socket mid-response and drop the request in the engine."""
        self.conn.close()
        self.runner.abort(seq)
        self.ctx.output_tokens = self.n - 1
        self.ctx.finish("disconnected", seq)

    def _tally(self, seq: Seq, n: int, finish: str, now: float) -> Tally:
        first, received = seq.t_first_token or now, self.ctx.t_arrival
        return Tally(
            seq.prompt_len,
            max(seq.num_cached, 0),
            n,
            min(n, self.answer.reasoning),
            self.answer.api_finish(finish) if n else finish,
            max(0.0, first - seq.t_first_sched) if seq.t_first_sched >= 0 else 0.0,
            max(0.0, now - first),
            max(0.0, time.time() - received),
            max(0.0, seq.t_first_sched - seq.arrival) if seq.t_first_sched >= 0 else 0.0,
            received,
        )


class StreamSink(BaseSink):
    __slots__ = ("base", "fast_until", "fmt", "many", "phase", "post", "pre", "slow_always")

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.pre = self.post = b""
        self.base = 0
        self.fmt: Callable[[int, int], bytes] | None = None
        self.many: Callable[[int, list[int]], bytes] | None = None
        self.phase = -1
        self.fast_until = 0  # tokens numbered below this take the hot path
        self.slow_always = self.fault is not None

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        n = self.n + 1
        self.n = n
        if finish is None and n < self.fast_until:
            conn = self.conn
            if not conn.closed:  # the hot path: one format, one write, chunked framing included
                fmt = self.fmt
                if fmt is None:
                    conn._write(
                        CHUNK % (self.base + VOCAB_JSON_LEN[index], self.pre, VOCAB_JSON[index], self.post)
                    )
                else:
                    conn._write(fmt(n, index))
            return
        self._slow(seq, index, finish, now)

    def on_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None:
        n = self.n + len(indices)
        if finish is None and n < self.fast_until:
            self.n = n
            if not self.conn.closed:
                self.conn._write(self._many(n, indices))
            return
        if self.slow_always:
            BaseSink.on_step(self, seq, indices, finish, now)
        else:
            self._slow_step(seq, indices, finish, now)

    def _use(self, phase: int, emit: Emit) -> None:
        self.phase, self.pre, self.post, self.fmt = phase, emit.pre, emit.post, emit.fmt
        self.many = emit.many
        self.base = len(emit.pre) + len(emit.post)

    def _many(self, n: int, indices: list[int]) -> bytes:
        """A step's tokens of one phase (the last numbered n), framed: one event, or one per token
        where the format writes a token per event (`fmt` without `many`)."""
        if self.many is not None:
            return self.many(n, indices)
        fmt = self.fmt
        if fmt is None:
            text = joined_json(indices)
            return CHUNK % (self.base + len(text), self.pre, text, self.post)
        first = n - len(indices) + 1
        return b"".join([fmt(first + i, index) for i, index in enumerate(indices)])

    def _slow_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None:
        """A step's tokens that start the stream, cross a phase boundary or end it: one event per
        phase, the phase's opening events before it, the closing events after the last."""
        conn, ctx, wire, answer = self.conn, self.ctx, self.wire, self.answer
        while indices and not conn.closed:
            first = self.n + 1
            size = min(len(indices), answer.next_boundary(first) - first)
            group, indices = indices[:size], indices[size:]
            n = self.n = first + size - 1
            parts = wire.first() if first == 1 else []
            phase = answer.phase_of(first)
            if phase != self.phase:
                events, emit = wire.enter(phase, first)
                parts += events
                self._use(phase, emit)
            if finish is not None and not indices:
                parts += wire.final(phase, n, group, self._tally(seq, n, finish, now))
                self._end(seq, parts, n, finish, size)
                return
            ctx.output_tokens = n
            ctx.wrote(phase, ctx.stamp(), size)
            conn._write(b"".join([*map(frame, parts), self._many(n, group)]))
        self.fast_until = answer.next_boundary(self.n)

    def _token(self, n: int, index: int) -> bytes:
        if self.fmt is None:
            return CHUNK % (self.base + VOCAB_JSON_LEN[index], self.pre, VOCAB_JSON[index], self.post)
        return self.fmt(n, index)

    def _slow(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        conn, ctx, n, fault, wire = self.conn, self.ctx, self.n, self.fault, self.wire
        if conn.closed:
            return
        parts = wire.first() if n == 1 else []
        if fault == "disconnect" and n > self.cut_at:
            if parts:
                ctx.stamp()
                conn.send_many(parts)
            self._drop(seq)
            return
        if fault == "empty":  # EOS first: no token at all
            self._end(seq, [*parts, *wire.empty(self._tally(seq, 0, "stop", now))], 0, "stop")
            return
        if fault == "bad_sse" and n == max(1, self.cut_at):
            parts.append(BAD_SSE)
        phase = self.answer.phase_of(n)
        if phase != self.phase:
            events, emit = wire.enter(phase, n)
            parts += events
            self._use(phase, emit)
        if finish is not None:
            parts += wire.final(phase, n, [index], self._tally(seq, n, finish, now))
            self._end(seq, parts, n, finish)
            return
        data = b"".join([*map(frame, parts), self._token(n, index)])
        ctx.output_tokens = n
        ctx.wrote(phase, ctx.stamp())
        conn._write(data)
        self.fast_until = 0 if self.slow_always else self.answer.next_boundary(n)

    def _end(self, seq: Seq, parts: list[bytes], n: int, finish: str, count: int = 1) -> None:
        ctx = self.ctx
        ctx.output_tokens, ctx.finish_reason = n, self.answer.api_finish(finish) if n else finish
        t = ctx.stamp()
        if n:
            ctx.wrote(self.phase, t, count)
        self.conn.end_stream(parts)
        ctx.finish("ok", seq)


class TracedStreamSink(StreamSink):
    """--trace-tokens: the same hot path, plus one clock read and one append per token.

    A subclass rather than a flag, so that without --trace-tokens the hot path does not even test
    for it. Tokens on the slow path are noted there (RequestCtx.wrote).
    """

    __slots__ = ()

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        n = self.n + 1
        if finish is None and n < self.fast_until:
            self.n = n
            conn = self.conn
            if not conn.closed:
                fmt = self.fmt
                t = time.time()  # before the write: a token is never stamped later than it left
                if fmt is None:
                    conn._write(
                        CHUNK % (self.base + VOCAB_JSON_LEN[index], self.pre, VOCAB_JSON[index], self.post)
                    )
                else:
                    conn._write(fmt(n, index))
                self.ctx.emits.append(t)  # type: ignore[union-attr]
            return
        StreamSink.on_token(self, seq, index, finish, now)

    def on_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None:
        n = self.n + len(indices)
        if finish is None and n < self.fast_until:
            self.n = n
            conn = self.conn
            if not conn.closed:
                t = time.time()
                conn._write(self._many(n, indices))
                self.ctx.emits.extend([t] * len(indices))  # type: ignore[union-attr]
            return
        StreamSink.on_step(self, seq, indices, finish, now)


class FullSink(BaseSink):
    """Non-streaming: collect the tokens, answer once with the whole completion."""

    __slots__ = ("indices",)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.indices: list[int] = []

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        self.n += 1
        if self.conn.closed:
            return
        if self.fault == "disconnect" and self.n > self.cut_at:
            self._drop(seq)
            return
        self.indices.append(index)
        if finish is None:
            return
        if self.fault == "empty":
            self.indices.clear()
            finish = "stop"
        n = len(self.indices)
        body = self.wire.body(self.indices, self._tally(seq, n, finish, now))
        if self.fault == "bad_sse":  # a malformed body: the non-streaming twin of a bad SSE line
            body = body[: len(body) // 2]
        ctx = self.ctx
        ctx.output_tokens, ctx.finish_reason = n, self.answer.api_finish(finish) if n else finish
        t = ctx.stamp()
        reasoning, answered = self.answer.split(n)
        if reasoning:
            ctx.wrote(REASONING, t, reasoning)
        if answered:
            ctx.wrote(self.answer.phase_of(n), t, answered)
        self.conn.respond(200, body, headers=(("x-request-id", ctx.request_id),))
        ctx.finish("ok", seq)


class Trickle:
    """The trickle fault: the engine runs at full speed, the client gets one token per interval."""

    __slots__ = ("handle", "inner", "interval", "last", "pending")

    def __init__(self, inner: StreamSink | FullSink, interval: float) -> None:
        self.inner, self.interval = inner, interval
        self.pending: deque[tuple[Seq, int, str | None, float]] = deque()
        self.handle: asyncio.TimerHandle | None = None
        self.last = 0.0

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        self.pending.append((seq, index, finish, now))
        if self.handle is None:
            self._schedule()

    def on_step(self, seq: Seq, indices: list[int], finish: str | None, now: float) -> None:
        """A speculative step's tokens still trickle one per interval."""
        last = len(indices) - 1
        for i, index in enumerate(indices):
            self.on_token(seq, index, finish if i == last else None, now)

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        due = max(loop.time(), self.last + self.interval)
        self.handle = loop.call_at(due, self._release)

    def _release(self) -> None:
        self.handle = None
        if self.inner.conn.closed or not self.pending:
            self.pending.clear()
            return
        self.last = asyncio.get_running_loop().time()
        seq, index, finish, now = self.pending.popleft()
        self.inner.on_token(seq, index, finish, now)
        if self.pending:
            self._schedule()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.pending.clear()
