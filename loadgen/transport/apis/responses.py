"""`--api responses`: OpenAI's Responses API, `POST /v1/responses` (OpenAI; vLLM serves it too).

The body: `input` (the conversation as a list of `{role, content}` messages; content parts in the
API's own types, `input_text` and `input_image`), `max_output_tokens`,
`stream: true`. The stream is typed events, `event: TYPE` + `data: {"type": TYPE, …}` with no
`[DONE]` (OpenAI's "Responses streaming events" reference; vLLM serving_responses.py):
`response.output_text.delta` (the answer), `response.reasoning_text.delta` (raw reasoning, vLLM and
gpt-oss) or `response.reasoning_summary_text.delta` (OpenAI's summaries), a `function_call` item
announced by `response.output_item.added` (it carries the name: the tool call's first token) and its
`response.function_call_arguments.delta` fragments; the end is `response.completed` (its `status`
may be `incomplete`, with `incomplete_details.reason`, as vLLM sends a response cut by
max_output_tokens), `response.incomplete` or `response.failed`, whose `response.usage` holds
`input_tokens`, `output_tokens` and their details (cached, reasoning tokens), and on vLLM with
`--enable-per-request-metrics` its own timing of the request (`metrics`). An `error` event
(`{"type": "error", "message", …}`) is a failure. Lifecycle events (created, in_progress,
*.added/*.done) carry no token.
"""

from __future__ import annotations

from typing import Any

from core.result import StreamResult
from loadgen.transport.apis.base import (
    Api,
    Prompt,
    answer,
    event_object,
    fail,
    openai_usage,
    reasoning,
    tool_call,
    vllm_metrics,
)
from workloads.images import image_url

TEXT = "response.output_text.delta"
REASONING = frozenset(("response.reasoning_text.delta", "response.reasoning_summary_text.delta"))
ENDS = frozenset(("response.completed", "response.incomplete", "response.failed"))
# Chat-only fields of a dataset's extra body that the Responses API takes in another shape or not at all.
CHAT_ONLY = frozenset(
    ("messages", "max_tokens", "max_completion_tokens", "stream_options", "tools", "tool_choice", "n")
)


def build(p: Prompt) -> dict:
    body: dict = {
        "model": p.named,
        "input": _input(p.messages),
        "max_output_tokens": p.max_tokens,
        "stream": True,
    }
    if p.ignore_eos:
        body["ignore_eos"] = True  # vLLM's extension; OpenAI would refuse it, so only when asked for
    if p.extra:
        body.update((k, v) for k, v in p.extra.items() if k not in CHAT_ONLY)
    return body


def _input(messages: list[dict]) -> list[dict]:
    """The conversation as the Responses API's input: a message whose content is a list of parts gets
    the API's own part types — `input_text` (`output_text` in an assistant's), `input_image` with the
    image's URL — which chat's `text` / `image_url` parts are not; string contents pass as they are."""
    if not any(m.get("content").__class__ is list for m in messages):
        return messages
    return [
        {**m, "content": [_part(x, m.get("role")) for x in m["content"]]}
        if m.get("content").__class__ is list
        else m
        for m in messages
    ]


def _part(part: Any, role: Any) -> Any:
    if (url := image_url(part)) is not None:
        return {"type": "input_image", "image_url": url, "detail": "auto"}
    if isinstance(part, dict) and part.get("type") == "text":
        return {
            "type": "output_text" if role == "assistant" else "input_text",
            "text": part.get("text") or "",
        }
    return part


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    kind = obj.get("type") or event
    if kind == TEXT:
        if delta := obj.get("delta"):
            answer(res, delta, t)
    elif kind in REASONING:
        if thought := obj.get("delta"):
            reasoning(res, t, thought)
    elif kind == "response.function_call_arguments.delta":
        if delta := obj.get("delta"):
            calls = res.scratch or {}
            tool_call(res, t, [(calls.get(obj.get("output_index"), 0), "", "", delta)])
    elif kind == "response.output_item.added":
        item = obj.get("item") or {}
        if item.get("type") == "function_call" and item.get("name"):
            calls = res.scratch = res.scratch or {}  # output index → tool call number (0, 1, …)
            calls[obj.get("output_index")] = n = len(calls)
            tool_call(res, t, [(n, item.get("call_id") or "", item["name"], item.get("arguments") or "")])
    elif kind in ENDS:
        _end(res, obj.get("response") or {})
    elif kind == "error":  # the data of an `error` event without its `event:` line
        fail(res, str(obj.get("message") or obj))


def _end(res: StreamResult, resp: dict) -> None:
    res.done = True
    if not res.served_model and (model := resp.get("model")) and model.__class__ is str:
        res.served_model = model
    status = resp.get("status")
    if status == "failed":
        err = resp.get("error") or {}
        fail(res, str(err.get("message") or err or "response.failed"))
        return
    if status == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason") or "incomplete"
        res.finish_reason = "length" if reason == "max_output_tokens" else reason
    else:
        res.finish_reason = "tool_calls" if res.t_first_tool is not None else "stop"
    if usage := resp.get("usage"):
        res.usage = _usage(usage)
    vllm_metrics(res, resp.get("metrics"))  # vLLM with --enable-per-request-metrics


def _usage(u: dict[str, Any]) -> dict:
    return openai_usage(
        u.get("output_tokens"),
        u.get("input_tokens"),
        (u.get("input_tokens_details") or {}).get("cached_tokens"),
        (u.get("output_tokens_details") or {}).get("reasoning_tokens"),
    )


API = Api("responses", "/v1/responses", build, fold, splits_reasoning=True, sdk="responses",
          server="OpenAI, vLLM", images=("data", "http"))  # fmt: skip
