"""`--api chat`: OpenAI's `POST /v1/chat/completions`, as vLLM, SGLang, TGI, llama.cpp, Ollama and
OpenAI stream it.

Events are `data: {chat.completion.chunk}`; `choices[0].delta` carries one of: `content` (the
answer; Mistral's reasoning models send it as a list of typed `thinking`/`text` chunks), reasoning
— `reasoning` (vLLM ≥ 0.11 after PR #27752, OpenRouter, Ollama) or `reasoning_content` (SGLang,
DeepSeek, older vLLM) —, or `tool_calls` (the first delta with the
function name and `arguments: ""`, then argument fragments; Ollama sends a whole call in one delta).
A role-only or empty delta is no token. `usage` (asked for with `stream_options.include_usage`)
comes in a chunk of its own with `choices: []`, or on the finish chunk (llama.cpp), or on every
chunk (vLLM's continuous_usage_stats): the last one wins; reasoning tokens are its
`completion_tokens_details.reasoning_tokens`. Beside the usage, llama-server's `timings` and vLLM's
`metrics` (`--enable-per-request-metrics`) state the server's own timing of the request. An error inside the stream is a payload with
`error` and no `choices`. `data: [DONE]` ends the stream, but servers omit it (client.py `_finish`).
"""

from __future__ import annotations

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.apis.base import (
    Api,
    Prompt,
    answer,
    event_object,
    fail,
    llamacpp_timings,
    openai_body,
    reasoning,
    tool_call,
    usage_timing,
)


def build(p: Prompt) -> dict:
    body = openai_body(p, messages=p.messages)
    if p.cap_field != "max_tokens":  # OpenAI's reasoning models refuse max_tokens (--max-tokens-field)
        body[p.cap_field] = body.pop("max_tokens")
    return body


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content:
                if content.__class__ is str:
                    answer(res, content, t)
                else:
                    _typed_chunks(res, content, t)
            elif thought := delta.get("reasoning") or delta.get("reasoning_content"):
                reasoning(res, t, thought)
            elif calls := delta.get("tool_calls"):
                _tool_calls(res, calls, t)
        if fr := choice.get("finish_reason"):
            res.finish_reason = fr
            llamacpp_timings(res, obj.get("timings"))  # llama-server, no usage chunk: on the last one
    elif msg := sse.error_message(obj):  # error payloads carry no choices
        fail(res, msg)
        return
    if usage := obj.get("usage"):
        res.usage = usage
        usage_timing(res, obj)  # llama-server's timings or vLLM's metrics, beside the usage


def _typed_chunks(res: StreamResult, content: object, t: float) -> None:
    """Mistral's reasoning models send `content` as a list of typed chunks: `thinking` ones (their
    text nested in a list of their own) while the model reasons, then `text` ones. A text chunk is
    the answer; a thinking chunk with no text beside it is reasoning; anything else is no token."""
    if not isinstance(content, list):
        return
    text = "".join(c.get("text") or "" for c in content if isinstance(c, dict) and c.get("type") == "text")
    if text:
        answer(res, text, t)
    elif thinking := [
        c["thinking"]
        for c in content
        if isinstance(c, dict) and c.get("type") == "thinking" and c.get("thinking")
    ]:
        reasoning(res, t, "".join(_nested_text(x) for x in thinking))


def _nested_text(thinking: object) -> str:
    """A thinking chunk's text: a string, or (Mistral) a list of `{type: text, text}` chunks."""
    if isinstance(thinking, str):
        return thinking
    if isinstance(thinking, list):
        return "".join(c.get("text") or "" for c in thinking if isinstance(c, dict))
    return ""


def _tool_calls(res: StreamResult, calls: list, t: float) -> None:
    deltas = []
    for call in calls:
        fn = call.get("function") or {}
        name, args = fn.get("name") or "", fn.get("arguments") or ""
        if name or args:
            deltas.append((call.get("index") or 0, call.get("id") or "", name, args))
    if deltas:
        tool_call(res, t, deltas)


API = Api("chat", "/v1/chat/completions", build, fold, splits_reasoning=True, sdk="chat.completions",
          server="OpenAI-compatible servers", images=("data", "http"))  # fmt: skip
