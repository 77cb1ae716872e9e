"""Building blocks of the zoo's answers: the bytes a case writes, piece by piece, and what it knows.

A `Plan` is one HTTP answer: status, headers, and the body as `Piece`s written in order (each its
own write, after its delay). The piece marked `first` completes the event that carries the first
generated token: the server stamps the wall clock just before and just after writing it, and a
client's first-token time (it stamps an event when its last byte arrives) must fall in that window,
give or take the tolerance: a busy host can pause the server between its stamp and the send.
The piece marked `answer` does the same for the first answer token of a reasoning stream (TTFO).
`n_tokens` is what the server generated, `n_reasoning` how many of them were reasoning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TOKEN_GAP_S = (
    0.010  # between two tokens: a client must read each before the next comes (loadgen/transport/arrival.py)
)
PREFILL_S = 0.030  # before the first token
ROLE_LEAD_S = 0.015  # a role-only chunk goes out this long before the first token: counting it is caught


@dataclass
class Piece:
    data: bytes
    delay_s: float = 0.0
    first: bool = False
    answer: bool = (
        False  # completes the event of the first *answer* token (after a reasoning model's thinking)
    )


@dataclass
class Plan:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=lambda: [("Content-Type", "text/event-stream")])
    pieces: list[Piece] = field(default_factory=list)
    n_tokens: int | None = None
    n_reasoning: int | None = None  # reasoning tokens among n_tokens (None: not a reasoning answer)
    close: bool = False  # HTTP/1.0-style: no chunked framing, the body ends when the connection closes
    hangup: bool = False  # chunked and keep-alive, yet the connection is closed right after the answer
    end_delay_s: float = 0.0  # the chunked body's last chunk comes this long after the last piece

    def add(self, data: bytes, delay_s: float = 0.0, first: bool = False, answer: bool = False) -> Plan:
        self.pieces.append(Piece(data, delay_s, first, answer))
        return self


@dataclass
class Framing:
    """How a server frames its events: line end, the `data:` prefix, extra fields, comments."""

    eol: bytes = b"\n"
    prefix: bytes = b"data: "
    before: bytes = b""  # field lines written before each data line (e.g. sse-starlette's id/event)
    after: bytes = b""  # field lines after it (sse-starlette's retry)

    def event(self, payload: Any) -> bytes:
        data = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        lines = [self.before, self.prefix + data + self.eol, self.after]
        return b"".join(lines) + self.eol

    def comment(self, text: bytes) -> bytes:
        return b":" + text + self.eol + self.eol

    def done(self) -> bytes:
        return self.event(b"[DONE]")


LF = Framing()


def chunk(delta: dict | None = None, finish: str | None = None, **extra: Any) -> dict:
    """One chat.completion.chunk (vLLM/OpenAI shape)."""
    choices = (
        [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    )
    return {"id": "chatcmpl-zoo", "object": "chat.completion.chunk", "created": 1795536195, "model": "zoo",
            "choices": choices, **extra}  # fmt: skip


def text_chunk(text: str, finish: str | None = None, **extra: Any) -> dict:
    """One text_completion chunk (/v1/completions)."""
    return {"id": "cmpl-zoo", "object": "text_completion", "created": 1795536195, "model": "zoo",
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}], **extra}  # fmt: skip


def usage(n: int, prompt: int = 12) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}


TOKENS = ["Once", " upon", " a", " time", ",", " tokens"]


def token_stream(
    plan: Plan,
    frame: Framing = LF,
    *,
    role: dict | None = None,
    field_name: str = "content",
    tokens: list[str] = TOKENS,
    finish_own: bool = False,
    usage_mode: str = "final",
    done: str = "yes",
    extra_delta: dict | None = None,
) -> Plan:
    """A stream of `tokens`, one write each, shaped by the knobs servers differ in.

    role: the role-only first chunk (None: the role rides on the first token's chunk).
    usage_mode: final (a last chunk with `choices: []`), finish (usage on the finish chunk),
    every (cumulative usage on every chunk), null (`usage: null` on every chunk, a final one),
    null-only (`usage: null` everywhere, never a count), none (no usage field).
    done: yes, no (no [DONE]), unterminated (`data: [DONE]` with no blank line after it).
    """
    n = len(tokens)

    def extra(i: int) -> dict:
        if usage_mode == "every":
            return {"usage": usage(i)}
        if usage_mode in ("null", "null-only"):
            return {"usage": None}
        return {}

    if role is not None:
        plan.add(frame.event(chunk(role, **extra(0))), PREFILL_S - ROLE_LEAD_S)
    for i, tok in enumerate(tokens):
        delta = {field_name: tok, **(extra_delta or {})}
        if role is None and i == 0:
            delta = {"role": "assistant", **delta}
        last = i == n - 1
        fin = "stop" if last and not finish_own else None
        ex = extra(i + 1)
        if last and not finish_own and usage_mode == "finish":
            ex = {"usage": usage(n)}
        gap = (ROLE_LEAD_S if role is not None else PREFILL_S) if i == 0 else TOKEN_GAP_S
        plan.add(frame.event(chunk(delta, fin, **ex)), gap, first=i == 0)
    if finish_own:
        ex = {"usage": usage(n)} if usage_mode == "finish" else extra(n)
        plan.add(frame.event(chunk({}, "stop", **ex)), TOKEN_GAP_S)
    if usage_mode in ("final", "null", "every"):
        plan.add(frame.event(chunk(None, usage=usage(n))))
    if done == "yes":
        plan.add(frame.done())
    elif done == "unterminated":
        plan.add(frame.prefix + b"[DONE]" + frame.eol)
    plan.n_tokens = n
    return plan


def error_plan(status: int, body: bytes, content_type: str = "application/json", **headers: str) -> Plan:
    hdrs = [("Content-Type", content_type), *((k.replace("_", "-"), v) for k, v in headers.items())]
    return Plan(status=status, headers=hdrs, pieces=[Piece(body)] if body else [])


def recorded(name: str) -> list[bytes]:
    """A real server's capture (tests/fixtures/NAME) as its events, each with its blank line; the
    capture's comment lines (where it came from, the command) are left out."""
    events = []
    for block in (FIXTURES / name).read_bytes().split(b"\n\n"):
        lines = [ln for ln in block.split(b"\n") if ln and not ln.startswith(b":")]
        if lines:
            events.append(b"\n".join(lines) + b"\n\n")
    return events
