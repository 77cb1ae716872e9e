"""The zoo's answers on the other APIs: OpenAI's Responses as vLLM streams it, SGLang's /generate, TGI's
/generate_stream and llama.cpp's /completion — each written as its server writes it, with the
pieces that carry the first token and the first answer token marked (tests/support/zoo/cases.py names
the sources)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

from tests.support.zoo.stream import LF, PREFILL_S, ROLE_LEAD_S, TOKEN_GAP_S, TOKENS, Framing, Plan, recorded


def responses_reasoning(_: dict) -> Plan:
    """created/in_progress before the engine runs, reasoning_text deltas, then output_text deltas."""
    seq = itertools.count()

    def ev(kind: str, **data: object) -> bytes:
        return (
            b"event: "
            + kind.encode()
            + b"\n"
            + LF.event({"type": kind, "sequence_number": next(seq), **data})
        )

    resp = {
        "id": "resp_zoo",
        "object": "response",
        "model": "zoo",
        "status": "in_progress",
        "output": [],
        "usage": None,
    }
    rs = {"id": "rs_zoo", "type": "reasoning", "summary": [], "content": [], "status": "in_progress"}
    msg = {"id": "msg_zoo", "type": "message", "role": "assistant", "content": [], "status": "in_progress"}
    where = {"output_index": 1, "content_index": 0, "item_id": "msg_zoo"}
    thoughts, words = ["Let", " me", " think"], ["Paris", " is", " it"]
    p = Plan().add(
        ev("response.created", response=resp) + ev("response.in_progress", response=resp),
        PREFILL_S - ROLE_LEAD_S,
    )
    for i, tok in enumerate(thoughts):
        head = ev("response.output_item.added", output_index=0, item=rs) if i == 0 else b""
        delta = ev(
            "response.reasoning_text.delta", item_id="rs_zoo", output_index=0, content_index=0, delta=tok
        )
        p.add(head + delta, ROLE_LEAD_S if i == 0 else TOKEN_GAP_S, first=i == 0)
    for i, tok in enumerate(words):
        head = b""
        if i == 0:  # the reasoning item closes and the message opens with the first answer token
            head = (
                ev("response.reasoning_text.done", item_id="rs_zoo", output_index=0, content_index=0, text="".join(thoughts))
                + ev("response.output_item.done", output_index=0, item={**rs, "status": "completed"})
                + ev("response.output_item.added", output_index=1, item=msg)
                + ev("response.content_part.added", **where, part={"type": "output_text", "text": "", "annotations": []})
            )  # fmt: skip
        p.add(
            head + ev("response.output_text.delta", **where, delta=tok, logprobs=[]),
            TOKEN_GAP_S,
            answer=i == 0,
        )
    usage = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 6,
             "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 18}  # fmt: skip
    tail = ev("response.output_text.done", **where, text="".join(words), logprobs=[])
    p.add(tail + ev("response.completed", response={**resp, "status": "completed", "usage": usage}))
    p.n_tokens, p.n_reasoning = 6, 3
    return p


def sglang_generate(_: dict) -> Plan:
    """Cumulative text and counts; reasoning_tokens grows up to and including the think-end token."""
    tokens = ["<think>", "Let", " me", "</think>", "Paris", " is"]
    p, text = Plan(), ""
    for i, tok in enumerate(tokens):
        text += tok
        last = i == len(tokens) - 1
        meta = {"id": "zoo", "finish_reason": {"type": "length", "length": 6} if last else None, "prompt_tokens": 6,
                "weight_version": "default", "num_retractions": 0, "reasoning_tokens": min(i + 1, 4),
                "completion_tokens": i + 1, "cached_tokens": 0}  # fmt: skip
        if last:
            meta["e2e_latency"] = 0.09
        obj = {"text": text, "output_ids": list(range(100, 101 + i)), "meta_info": meta}
        p.add(LF.event(obj), PREFILL_S if i == 0 else TOKEN_GAP_S, first=i == 0, answer=i == 4)
    p.add(LF.done())
    p.n_tokens, p.n_reasoning = 6, 4
    return p


def sglang_generate_metrics(_: dict) -> Plan:
    """--enable-metrics: the scheduler's stamps on every event, the HTTP process's on the last; 4.2 ms
    in the wait queue, batched at .1061, first token at .1183, finished at .1301 (prefill 12.2 ms,
    decode 11.8 ms, whatever the zoo's own pacing)."""
    t, tokens = 1765010000.0, [" Paris", ",", " the", " capital"]
    sched = {"forward_entry_time": t + 0.1061, "prefill_finished_time": t + 0.1183, "queue_time": 0.0042,
             "prefill_waiting_latency": 0.0003, "prefill_launch_latency": 0.0109}  # fmt: skip
    p, text = Plan(), ""
    for i, tok in enumerate(tokens):
        text += tok
        last = i == len(tokens) - 1
        meta = {"id": "zoo", "finish_reason": {"type": "length", "length": 4} if last else None, "prompt_tokens": 6,
                "weight_version": "default", "num_retractions": 0, **sched, "reasoning_tokens": 0,
                "completion_tokens": i + 1, "cached_tokens": 0}  # fmt: skip
        if last:
            meta |= {"e2e_latency": 0.0301, "request_received_ts": t + 0.1, "api_server_dispatch_finish_ts": t + 0.1012,
                     "response_sent_to_client_ts": t + 0.1186, "request_finished_ts": t + 0.1301,
                     "inference_time": 0.024, "decode_throughput": 338.98}  # fmt: skip
        obj = {"text": text, "output_ids": list(range(100, 101 + i)), "meta_info": meta}
        p.add(LF.event(obj), PREFILL_S if i == 0 else TOKEN_GAP_S, first=i == 0, answer=i == 0)
    p.add(LF.done())
    p.n_tokens, p.n_reasoning = 4, 0
    return p


def tgi_generate_stream(_: dict) -> Plan:
    """`data:` without a space, one event per token, the EOS token last (special), no [DONE]."""
    frame, words = Framing(prefix=b"data:"), TOKENS[:5]
    p = Plan()
    for i, tok in enumerate(words):
        token = {"id": 100 + i, "text": tok, "logprob": -0.5, "special": False}
        obj = {"index": i + 1, "token": token, "generated_text": None, "details": None}
        p.add(frame.event(obj), PREFILL_S if i == 0 else TOKEN_GAP_S, first=i == 0)
    eos = {"id": 2, "text": "</s>", "logprob": -0.1, "special": True}
    details = {"finish_reason": "eos_token", "generated_tokens": 6, "seed": None, "input_length": 6}
    p.add(
        frame.event({"index": 6, "token": eos, "generated_text": "".join(words), "details": details}),
        TOKEN_GAP_S,
    )
    p.n_tokens = 6
    return p


def llamacpp_completion(_: dict) -> Plan:
    """The real llama-server capture, one event per write; the server closes the connection after it."""
    events = recorded("llamacpp-completion-stream.txt")
    p = Plan()
    for i, e in enumerate(events):
        p.add(e, PREFILL_S if i == 0 else TOKEN_GAP_S, first=i == 0)
    p.hangup = True
    p.headers.append(("Keep-Alive", "timeout=5, max=100"))
    p.n_tokens = json.loads(events[-1][len(b"data: ") :])["timings"]["predicted_n"]
    return p


def _ollama_line(message: dict, **top: object) -> bytes:
    """One line of Ollama's /api/chat stream (api/types.go ChatResponse): Go's json.Encoder writes
    the object and a newline, the handler flushes it."""
    obj = {"model": "qwen3:0.6b", "created_at": "2025-08-15T21:38:23.714020953Z",
           "message": {"role": "assistant", **message}, "done": False, **top}  # fmt: skip
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _ollama_done(n: int, reason: str = "stop") -> bytes:
    metrics = {"done_reason": reason, "total_duration": 124635125, "load_duration": 19208250,
               "prompt_eval_count": 12, "prompt_eval_duration": 30154000, "eval_count": n,
               "eval_duration": 74120959}  # fmt: skip
    return _ollama_line({"content": ""}, **metrics).replace(b'"done":false', b'"done":true')


NDJSON = [("Content-Type", "application/x-ndjson")]


def ollama_chat(_: dict) -> Plan:
    """A thinking model (`think: true`): an empty first line (gpt-oss writes one before its
    thoughts: no token), thinking lines, content lines, the done line with the counts."""
    p = Plan(headers=list(NDJSON)).add(_ollama_line({"content": ""}), PREFILL_S - ROLE_LEAD_S)
    for i, tok in enumerate(["Let", " me", " think"]):
        p.add(
            _ollama_line({"content": "", "thinking": tok}),
            ROLE_LEAD_S if i == 0 else TOKEN_GAP_S,
            first=i == 0,
        )
    for i, tok in enumerate(["Paris", " is", " it"]):
        p.add(_ollama_line({"content": tok}), TOKEN_GAP_S, answer=i == 0)
    p.add(_ollama_done(6))
    p.n_tokens, p.n_reasoning = 6, 3
    return p


def ollama_tool_call(_: dict) -> Plan:
    """Thinking, then the tool call whole in one line — its arguments an object, not a string —
    once the model has finished it (Ollama's parser holds a call's tokens until it is complete)."""
    p = Plan(headers=list(NDJSON))
    for i, tok in enumerate(["I", " should", " call"]):
        p.add(
            _ollama_line({"content": "", "thinking": tok}), PREFILL_S if i == 0 else TOKEN_GAP_S, first=i == 0
        )
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    p.add(_ollama_line({"content": "", "tool_calls": [call]}), 5 * TOKEN_GAP_S, answer=True)
    p.add(_ollama_done(14))
    p.n_tokens, p.n_reasoning = 14, 3
    return p


def _anthropic_data(event: bytes) -> dict:
    line = next(ln for ln in event.split(b"\n") if ln.startswith(b"data:"))
    return json.loads(line[5:])


def _anthropic_token(obj: dict) -> bool:
    delta = obj.get("delta") or {}
    block = obj.get("content_block") or {}
    return (
        obj.get("type") == "content_block_delta"
        and any(delta.get(k) for k in ("text", "thinking", "partial_json"))
    ) or (obj.get("type") == "content_block_start" and block.get("type") == "tool_use")


def anthropic_events(events: list[bytes]) -> Plan:
    """Anthropic Messages events, one write each: what comes before the first token leads it as a
    role chunk does, tokens a gap apart; the first token and the first answer token (a text delta or
    a tool_use start, not a thinking delta) marked; the count from message_delta's usage."""
    p, tokens, reasoning, answered = Plan(), 0, 0, False
    for e in events:
        obj = _anthropic_data(e)
        token = _anthropic_token(obj)
        thinking = (obj.get("delta") or {}).get("type") == "thinking_delta"
        if token:
            delay = ROLE_LEAD_S if tokens == 0 else TOKEN_GAP_S
        else:
            delay = PREFILL_S - ROLE_LEAD_S if not p.pieces else 0.0
        answer = token and not thinking and not answered
        p.add(e, delay, first=token and tokens == 0, answer=answer and reasoning > 0)
        tokens += token
        reasoning += token and thinking
        answered = answered or answer
        if obj.get("type") == "message_delta":
            p.n_tokens = obj["usage"]["output_tokens"]
    p.n_reasoning = reasoning or None
    return p


def anthropic_capture(name: str) -> Callable[[dict], Plan]:
    return lambda _: anthropic_events(recorded(name))


def _ev(kind: str, **data: object) -> bytes:
    return b"event: " + kind.encode() + b"\n" + LF.event({"type": kind, **data})


def anthropic_thinking_tool_use(_: dict) -> Plan:
    """Anthropic's documented stream of extended thinking and a tool call: message_start with
    output_tokens 1, a ping, a thinking block (thinking_delta, then signature_delta: no token), a
    text block, a tool_use block (id and name at its start, input_json_delta fragments, the first
    one empty), message_delta with stop_reason tool_use."""
    msg = {"id": "msg_zoo", "type": "message", "role": "assistant", "content": [], "model": "claude-zoo",
           "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 472, "output_tokens": 1}}  # fmt: skip
    events = [_ev("message_start", message=msg), _ev("ping"),
              _ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""})]  # fmt: skip
    events += [_ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": t})
               for t in ("I need", " the weather", " tool.")]  # fmt: skip
    events += [_ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}),
               _ev("content_block_stop", index=0),
               _ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
               _ev("content_block_delta", index=1, delta={"type": "text_delta", "text": "Checking."}),
               _ev("content_block_stop", index=1),
               _ev("content_block_start", index=2, content_block={"type": "tool_use", "id": "toolu_01zoo", "name": "get_weather", "input": {}}),
               _ev("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": ""}),
               _ev("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": '{"city": "Pa'}),
               _ev("content_block_delta", index=2, delta={"type": "input_json_delta", "partial_json": 'ris"}'}),
               _ev("content_block_stop", index=2),
               _ev("message_delta", delta={"stop_reason": "tool_use", "stop_sequence": None}, usage={"output_tokens": 89}),
               _ev("message_stop")]  # fmt: skip
    return anthropic_events(events)


def anthropic_overloaded(_: dict) -> Plan:
    """Anthropic's documented mid-stream failure: an `error` event after some text."""
    msg = {"id": "msg_zoo", "type": "message", "role": "assistant", "content": [], "model": "claude-zoo",
           "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 12, "output_tokens": 1}}  # fmt: skip
    return anthropic_events([
        _ev("message_start", message=msg),
        _ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        _ev("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"}),
        _ev("error", error={"type": "overloaded_error", "message": "Overloaded"}),
    ])  # fmt: skip
