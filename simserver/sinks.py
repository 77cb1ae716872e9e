"""Response writers: engine tokens → SSE chunks (stream) or one JSON body, with faults applied.

The chunk bytes are vLLM's: `data: {json}\\n\\n`, a role-only first chunk (chat), one chunk per
token, the last token's chunk carrying `finish_reason`, a usage chunk when the client asked for
`stream_options.include_usage`, then `data: [DONE]`. Each request prebuilds the JSON around the
token, so a token costs one concatenation with the token's prebuilt JSON string and one write.

Every request ends in exactly one trace record (RequestCtx.finish), whatever way it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import orjson

from simserver.engine import Seq
from simserver.http import Connection
from simserver.runner import EngineRunner
from simserver.tokenizer import VOCAB_JSON, VOCAB_JSON_LEN, VOCAB_TEXT
from simserver.trace import TraceWriter, us

DONE = b"data: [DONE]\n\n"
CHUNK = b"%x\r\n%b%b%b\r\n"  # one chunked-encoding frame around pre + token + post


class RequestCtx:
    """What the trace records about one request; `finish` writes it once."""

    __slots__ = (
        "cached_tokens",
        "endpoint",
        "fault",
        "finish_reason",
        "http_status",
        "output_tokens",
        "preemptions",
        "prompt_tokens",
        "request_id",
        "stream",
        "t_arrival",
        "t_first",
        "t_last",
        "trace",
    )

    def __init__(self, request_id: str, endpoint: str, t_arrival: float, trace: TraceWriter | None) -> None:
        self.request_id, self.endpoint, self.t_arrival, self.trace = request_id, endpoint, t_arrival, trace
        self.stream = False
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.prompt_tokens = self.cached_tokens = self.output_tokens = self.preemptions = 0
        self.fault: str | None = None
        self.finish_reason: str | None = None
        self.http_status = 200

    def stamp(self) -> None:
        """Called right before the bytes go to the socket (a client can never see them earlier)."""
        t = time.time()
        if self.t_first is None:
            self.t_first = t
        self.t_last = t

    def finish(self, status: str, seq: Seq | None = None) -> None:
        trace, self.trace = self.trace, None
        if trace is None:
            return
        if seq is not None:
            self.cached_tokens = max(seq.num_cached, 0)
            self.preemptions = seq.preemptions
        trace.write(
            {
                "request_id": self.request_id,
                "t_arrival_unix": us(self.t_arrival),
                "t_first_emit_unix": us(self.t_first),
                "t_last_emit_unix": us(self.t_last),
                "prompt_tokens": self.prompt_tokens,
                "cached_tokens": self.cached_tokens,
                "output_tokens": self.output_tokens,
                "status": status,
                "fault": self.fault,
                "http_status": self.http_status,
                "finish_reason": self.finish_reason,
                "endpoint": self.endpoint,
                "stream": self.stream,
                "preemptions": self.preemptions,
            }
        )


class Shape:
    """Prebuilt JSON pieces of one response (chat or completions)."""

    __slots__ = ("chat", "head", "post", "pre", "role")

    def __init__(self, chat: bool, resp_id: str, created: int, model: str) -> None:
        self.chat = chat
        obj = "chat.completion.chunk" if chat else "text_completion"
        self.head = orjson.dumps({"id": resp_id, "object": obj, "created": created, "model": model})[:-1]
        if chat:
            self.pre = b"data: " + self.head + b',"choices":[{"index":0,"delta":{"content":'
            self.post = b'},"logprobs":null,"finish_reason":null}]}\n\n'
            self.role = (
                b"data: " + self.head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                b'"logprobs":null,"finish_reason":null}]}\n\n'
            )
        else:
            self.pre = b"data: " + self.head + b',"choices":[{"index":0,"text":'
            self.post = b',"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n'
            self.role = b""

    def last(self, text_json: bytes, finish: str) -> bytes:
        close = b"}" if self.chat else b""
        return (
            self.pre
            + text_json
            + close
            + b',"logprobs":null,"finish_reason":"%b","stop_reason":null}]}\n\n' % (finish.encode())
        )

    def usage(self, seq: Seq, completion_tokens: int) -> bytes:
        return (
            b"data: "
            + self.head
            + b',"choices":[],"usage":'
            + orjson.dumps(usage(seq, completion_tokens))
            + b"}\n\n"
        )


def usage(seq: Seq, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": seq.prompt_len,
        "total_tokens": seq.prompt_len + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": {"cached_tokens": max(seq.num_cached, 0)},
    }


class BaseSink:
    """State shared by both writers: connection, trace context, fault and its cut point."""

    __slots__ = ("conn", "ctx", "cut_at", "fault", "n", "runner", "shape")

    def __init__(
        self,
        conn: Connection,
        ctx: RequestCtx,
        shape: Shape,
        fault: str | None,
        target_len: int,
        runner: EngineRunner,
    ) -> None:
        self.conn, self.ctx, self.shape, self.fault, self.runner = conn, ctx, shape, fault, runner
        self.n = 0  # tokens received from the engine (a trickle may deliver them late)
        self.cut_at = target_len // 2  # disconnect / bad_sse position: mid-answer

    def _drop(self, seq: Seq) -> None:
        """The disconnect fault: close the socket mid-response and drop the request in the engine."""
        self.conn.close()
        self.runner.abort(seq)
        self.ctx.output_tokens = self.n - 1
        self.ctx.finish("disconnected", seq)


class StreamSink(BaseSink):
    __slots__ = ("base", "fast", "include_usage", "post", "pre")

    def __init__(self, *args: Any, include_usage: bool) -> None:
        super().__init__(*args)
        self.include_usage = include_usage
        self.pre, self.post = self.shape.pre, self.shape.post
        self.base = len(self.pre) + len(self.post)
        self.fast = False  # set after the first token when no fault applies

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        self.n += 1
        if finish is None and self.fast:
            conn = self.conn
            if not conn.closed:  # the hot path: one format, one write, chunked framing included
                conn._write(
                    CHUNK % (self.base + VOCAB_JSON_LEN[index], self.pre, VOCAB_JSON[index], self.post)
                )
            return
        self._token(seq, index, finish)
        self.fast = self.fault is None

    def _token(self, seq: Seq, index: int, finish: str | None) -> None:
        conn, ctx, n, fault = self.conn, self.ctx, self.n, self.fault
        if conn.closed:
            return
        parts = [self.shape.role] if n == 1 and self.shape.chat else []
        if fault == "disconnect" and n > self.cut_at:
            if parts:
                ctx.stamp()
                conn.send_many(parts)
            self._drop(seq)
            return
        if fault == "empty":  # EOS first: no text at all
            self._end(seq, [*parts, self.shape.last(b'""', "stop")], "stop", 0)
            return
        if fault == "bad_sse" and n == max(1, self.cut_at):
            parts.append(b'data: {"id": "broken", "choices": [{"delta": {"content": "\n\n')
        ctx.output_tokens = n
        if finish is None:
            parts.append(self.pre + VOCAB_JSON[index] + self.post)
            ctx.stamp()
            conn.send_many(parts)
        else:
            parts.append(self.shape.last(VOCAB_JSON[index], finish))
            self._end(seq, parts, finish, n)

    def _end(self, seq: Seq, parts: list[bytes], finish: str, completion_tokens: int) -> None:
        if self.include_usage:
            parts.append(self.shape.usage(seq, completion_tokens))
        parts.append(DONE)
        ctx = self.ctx
        ctx.output_tokens, ctx.finish_reason = completion_tokens, finish
        ctx.stamp()
        self.conn.end_stream(parts)
        ctx.finish("ok", seq)


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
        text = "".join(VOCAB_TEXT[i] for i in self.indices)
        shape, n = self.shape, len(self.indices)
        if shape.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": []},
            }
        else:
            choice = {"index": 0, "text": text}
        choice.update(logprobs=None, finish_reason=finish, stop_reason=None)
        body = shape.head.replace(b".chunk", b"") + b',"choices":' + orjson.dumps([choice])
        body += b',"usage":' + orjson.dumps(usage(seq, n)) + b',"prompt_logprobs":null}'
        if self.fault == "bad_sse":  # a malformed body: the non-streaming twin of a bad SSE line
            body = body[: len(body) // 2]
        ctx = self.ctx
        ctx.output_tokens, ctx.finish_reason = n, finish
        ctx.stamp()
        self.conn.respond(200, body, headers=self.conn_headers())
        ctx.finish("ok", seq)

    def conn_headers(self) -> tuple[tuple[str, str], ...]:
        return (("x-request-id", self.ctx.request_id),)


class Trickle:
    """The trickle fault: the engine runs at full speed, the client gets one token per interval."""

    __slots__ = ("handle", "inner", "interval", "last", "pending")

    def __init__(self, inner: StreamSink | FullSink, interval: float) -> None:
        self.inner, self.interval = inner, interval
        self.pending: deque[tuple[Seq, int, str | None]] = deque()
        self.handle: asyncio.TimerHandle | None = None
        self.last = 0.0

    def on_token(self, seq: Seq, index: int, finish: str | None, now: float) -> None:
        self.pending.append((seq, index, finish))
        if self.handle is None:
            self._schedule()

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
        seq, index, finish = self.pending.popleft()
        self.inner.on_token(seq, index, finish, self.last)
        if self.pending:
            self._schedule()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.pending.clear()
