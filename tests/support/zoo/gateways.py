"""Zoo answers shaped by what stands between a model server and its client: a compressor (a
gateway's or an app's gzip), a hosted API's content filter (Azure OpenAI), and gateways that retry,
fall back and say which model answered (LiteLLM, ngrok's AI gateway, OpenRouter).

A compressor turns a stream's events into a deflate stream that comes out only as its buffer fills:
Starlette's GZipMiddleware before it left `text/event-stream` alone (Kludex/starlette PR #2753:
"streaming responses … buffered 32KiB at a time"), tower-http's CompressionLayer (tower-rs/tower-http
issue #419), gin-contrib/gzip (issue #16). Whoever reads it sees the events late and in bursts, so
both clients ask for `Accept-Encoding: identity` (loadgen/transport/client.py IDENTITY).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import zlib
from collections.abc import Callable

from tests.support.zoo.stream import (
    LF,
    PREFILL_S,
    ROLE_LEAD_S,
    TOKEN_GAP_S,
    TOKENS,
    Piece,
    Plan,
    token_stream,
    usage,
)

ROLE = {"role": "assistant", "content": ""}
_Q_ZERO = re.compile(r"^q\s*=\s*0(?:\.0*)?$", re.I)


def accepts_gzip(value: str | None) -> bool:
    """RFC 9110 §12.5.3: a request without Accept-Encoding accepts any coding; otherwise gzip (or `*`)
    must be listed without `q=0`."""
    if value is None:
        return True
    for item in value.split(","):
        name, _, param = item.partition(";")
        if name.strip().lower() in ("gzip", "x-gzip", "*") and not _Q_ZERO.match(param.strip()):
            return True
    return False


def gzipped(plan: Plan) -> Plan:
    """`plan`'s body through a gzip compressor that is never flushed before the end: each write is
    what the compressor gave out for it (nothing, mostly), the rest at the end. No piece completes
    the first token's event any more, so a client that read it could not be held to the truth."""
    z = zlib.compressobj(wbits=31)
    pieces, held = [], 0.0
    for piece in plan.pieces:
        held += piece.delay_s
        if out := z.compress(piece.data):  # an empty chunk would end a chunked body: none is written
            pieces.append(Piece(out, held))
            held = 0.0
    pieces.append(Piece(z.flush(), held))
    plan.pieces = pieces
    plan.headers = [*plan.headers, ("Content-Encoding", "gzip")]
    return plan


def compressing(regardless: bool) -> Callable[[dict], Plan]:
    """A chat stream gzipped where the request accepts gzip (no Accept-Encoding, as RFC 9110 reads
    it, or gzip listed), or (`regardless`) whatever the request asked."""

    def plan(headers: dict) -> Plan:
        p = token_stream(Plan(), LF, role=ROLE)
        return gzipped(p) if regardless or accepts_gzip(headers.get("accept-encoding")) else p

    return plan


_VERDICT = {k: {"filtered": False, "severity": "safe"} for k in ("hate", "self_harm", "sexual", "violence")}


def _azure_chunk(choices: list, **extra: object) -> dict:
    return {"choices": choices, "created": 1795536195, "id": "chatcmpl-zoo", "model": "gpt-4o-2024-11-20",
            "object": "chat.completion.chunk", "system_fingerprint": "fp_zoo", **extra}  # fmt: skip


def _annotation(start: int, end: int) -> dict:
    """The asynchronous filter's verdict on text already sent: a choice with no delta, no id."""
    choice = {"content_filter_offsets": {"check_offset": start, "start_offset": start, "end_offset": end},
              "content_filter_results": _VERDICT, "finish_reason": None, "index": 0}  # fmt: skip
    return {"choices": [choice], "created": 0, "id": "", "model": "", "object": ""}


def azure_filtered(_: dict) -> Plan:
    """Azure OpenAI with its content filter: the prompt's verdict first, in a frame whose `choices`
    is empty (`prompt_filter_results`), the role chunk, content chunks each with its (empty)
    `content_filter_results`, and, with the asynchronous filter, annotation frames that carry a
    choice without a delta between them; the finish chunk, the usage chunk, `[DONE]`."""
    prompt = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
              "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": _VERDICT}]}  # fmt: skip
    p = Plan().add(LF.event(prompt), PREFILL_S - ROLE_LEAD_S)
    p.add(
        LF.event(
            _azure_chunk([{"content_filter_results": {}, "delta": ROLE, "finish_reason": None, "index": 0}])
        )
    )
    sent = checked = 0
    for i, tok in enumerate(TOKENS):
        choice = {"content_filter_results": {}, "delta": {"content": tok}, "finish_reason": None, "index": 0}
        p.add(LF.event(_azure_chunk([choice])), ROLE_LEAD_S if i == 0 else TOKEN_GAP_S, first=i == 0)
        sent += len(tok)
        if i in (2, len(TOKENS) - 1):  # the filter catches up on the text sent since its last verdict
            p.add(LF.event(_annotation(checked, sent)), TOKEN_GAP_S / 2)
            checked = sent
    finish = {"content_filter_results": {}, "delta": {}, "finish_reason": "stop", "index": 0}
    p.add(LF.event(_azure_chunk([finish])), TOKEN_GAP_S)
    p.add(LF.event(_azure_chunk([], usage=usage(len(TOKENS)))))
    p.add(LF.done())
    p.n_tokens = len(TOKENS)
    return p


# -- gateways that route: which model answered, after how many attempts ----------------------------
def named(plan: Plan, model: str) -> Plan:
    """`plan`'s chunks with their `model` field naming `model` instead of the zoo's own."""
    old, new = b'"model":"zoo"', b'"model":' + json.dumps(model).encode()
    plan.pieces = [dataclasses.replace(p, data=p.data.replace(old, new)) for p in plan.pieces]
    return plan


def litellm_fallback(_: dict) -> Plan:
    """LiteLLM's proxy after its primary deployment failed and a fallback group answered: it states the
    attempts in headers (docs: proxy/response_headers) while every streamed chunk names the requested
    group (BerriAI/litellm issue #31722: the fallback is masked in streaming)."""
    p = named(token_stream(Plan(), LF, role=ROLE), "primary-model")
    p.headers = [*p.headers, ("x-litellm-attempted-retries", "0"), ("x-litellm-attempted-fallbacks", "1"),
                 ("x-litellm-max-fallbacks", "2")]  # fmt: skip
    return p


def ngrok_failover(_: dict) -> Plan:
    """ngrok's AI gateway after a failover: `Ngrok-AIG-Attempts` counts every upstream attempt, the
    answering one included, and `Ngrok-AIG-Model` names the model that answered (ngrok changelog
    2026-09-02, "See which model answered"); the body's `model` is that provider's own name for it."""
    p = named(token_stream(Plan(), LF, role=ROLE), "claude-haiku-4-5-20251001")
    p.headers = [*p.headers, ("Ngrok-AIG-Request-Id", "zoo-1"), ("Ngrok-AIG-Attempts", "2"),
                 ("Ngrok-AIG-Model", "claude-haiku-4-5")]  # fmt: skip
    return p


FALLBACK_MODELS = ("meta-llama/llama-3.3-70b-instruct", "mistralai/mistral-small-3.2-24b-instruct")


def fallback_for(request_id: str) -> bool:
    """Which requests the second model answers: a third of them, by their id (stable across runs)."""
    return int(hashlib.blake2b(request_id.encode(), digest_size=4).hexdigest(), 16) % 3 == 0


def openrouter_fallback(headers: dict) -> Plan:
    """OpenRouter with a `models` fallback list: when the first model is down or refuses, the next one
    answers and the response's `model` names it (OpenRouter docs, "Model Fallbacks"). Here the second
    model answers a third of the requests, chosen by request id."""
    model = FALLBACK_MODELS[fallback_for(headers.get("x-request-id", ""))]
    return named(token_stream(Plan(), LF, role=ROLE), model)
