"""The interface between the stream/body writers (sinks.py) and one API's wire format (wire_*.py).

A Wire says what the bytes of one response look like; sinks.py decides when they leave. Events
are unframed SSE bytes; `Emit` says how a phase's tokens are written on the hot path, `Tally` is
what a format reports at the end (usage, meta_info, details, timings).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from simserver.engine import Seq
from simserver.tokenizer import VOCAB_JSON

FRAME = b"%x\r\n%b\r\n"
VOCAB_INNER: tuple[bytes, ...] = tuple(j[1:-1] for j in VOCAB_JSON)  # a token's JSON string, unquoted


def frame(event: bytes) -> bytes:
    return FRAME % (len(event), event)


def joined_json(indices: list[int]) -> bytes:
    """The JSON string of several tokens' text together (a speculative step's tokens in one event)."""
    return b'"' + b"".join([VOCAB_INNER[i] for i in indices]) + b'"'


@dataclass(slots=True)
class Emit:
    """How the tokens of one phase are written: `pre + token JSON + post`, or `fmt(n, index)`.

    `fmt` returns the chunk already framed; it is for formats whose token events carry counters
    (TGI's index, llama.cpp's tokens_predicted, a Responses sequence_number) or running text.
    `many(n, indices)` writes a speculative step's tokens (the last numbered n) as one framed event;
    without it they are `pre + their joined JSON + post`, or, with `fmt`, one `fmt` event each.
    """

    pre: bytes = b""
    post: bytes = b""
    fmt: Callable[[int, int], bytes] | None = None
    many: Callable[[int, list[int]], bytes] | None = None


@dataclass(slots=True)
class Tally:
    """The totals a wire format reports at the end (usage, meta_info, details, timings)."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    finish: str  # stop | length | tool_calls
    prefill_s: float  # engine: first scheduled → first token
    decode_s: float  # engine: first token → this one
    e2e_s: float  # wall: request received → now
    queue_s: float = 0.0  # engine: arrival → first scheduled (Ollama's prefill clock includes it)
    received_ts: float = 0.0  # wall: when the request arrived (the e2e clock's start; SGLang's stamps)


class Reply(NamedTuple):
    """Who answers, as the OpenAI-shaped formats name it: the response's id, its creation second, the
    served model, and whether the engine states its own timing in the answer (vLLM's
    `--enable-per-request-metrics`) and its speculative decoding (`--per-request-spec-decode-metrics`)."""

    id: str
    created: int
    model: str
    metrics: bool = False
    spec: bool = False  # --per-request-spec-decode-metrics summary: `metrics.speculative_decoding`


def per_request_metrics(t: Tally) -> dict[str, float]:
    """vLLM's `metrics` object (`--enable-per-request-metrics`; its entrypoints/generate/base/serving.py
    `build_per_request_timing_metrics`), from the engine's own durations: TTFT from the first
    scheduling (the wait queue apart), decode, queue, the mean gap, tokens over scheduled → last.
    Fields it cannot fill are left out, as vLLM leaves out its None fields."""
    n = t.completion_tokens
    if not n:
        return {}
    out = {
        "time_to_first_token_ms": t.prefill_s * 1e3,
        "generation_time_ms": t.decode_s * 1e3,
        "queue_time_ms": t.queue_s * 1e3,
    }
    if n > 1:
        out["mean_itl_ms"] = t.decode_s / (n - 1) * 1e3
    if (inference := t.prefill_s + t.decode_s) > 0:
        out["tokens_per_second"] = n / inference
    return out


def answer_metrics(reply: Reply, seq: Seq | None, t: Tally) -> dict[str, Any] | None:
    """vLLM's `metrics` object of one answer, or None where it has none: the timing with
    --enable-per-request-metrics, `speculative_decoding` with --per-request-spec-decode-metrics
    summary (alone when the timing is off, as vLLM builds it; entrypoints/openai chat serving)."""
    out = per_request_metrics(t) if reply.metrics else None
    if reply.spec and seq is not None and seq.spec is not None:
        out = out if out is not None else {}
        out["speculative_decoding"] = seq.spec.summary()
    return out


def trtllm_perf_metrics(t: Tally) -> bytes:
    """TensorRT-LLM's event after `[DONE]` (`return_perf_metrics`, asked with `X-TRTLLM-return-metrics:
    1`; its serve/perf_metrics.py `build_metrics_sse_event`): Server-Timing durations in ms from the
    request's arrival — queue (to the first scheduling), ttft (to the first token), e2e (to the last)."""
    queue, ttft = t.queue_s * 1e3, (t.queue_s + t.prefill_s) * 1e3
    e2e = ttft + t.decode_s * 1e3
    timing = f"server_queue;dur={queue:.6f}, server_ttft;dur={ttft:.6f}, server_e2e;dur={e2e:.6f}"
    return b"event: trtllm.perf_metrics\ndata: " + orjson.dumps({"Server-Timing": timing}) + b"\n\n"


class Wire:
    """One response's wire format. Events are unframed bytes (`data: …\\n\\n`, or with `event:`)."""

    seq: Seq | None = None  # the engine's sequence, set once it exists (cached tokens, preemptions)
    perf_metrics = False  # this answer ends with TensorRT-LLM's timing (chat and completions streams)

    def open(self) -> list[bytes]:
        """Events sent with the stream's headers, before the engine runs (Responses: created)."""
        return []

    def first(self) -> list[bytes]:
        """Events sent with the first token (chat: the role-only chunk)."""
        return []

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        """Events before token n, the first of `phase`, and how that phase's tokens are written."""
        raise NotImplementedError

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        """The last step's tokens of `phase` (one, or a speculative step's several; the last is token
        n) in their event(s), and every closing event (usage, [DONE], …)."""
        raise NotImplementedError

    def empty(self, tally: Tally) -> list[bytes]:
        """A complete stream without any token (the `empty` fault)."""
        raise NotImplementedError

    def body(self, indices: list[int], tally: Tally) -> bytes:
        """The non-streaming answer."""
        raise NotImplementedError
