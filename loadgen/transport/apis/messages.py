"""`--api messages`: Anthropic's Messages API, `POST /v1/messages`, as vLLM (≥ 0.12), SGLang,
llama.cpp's llama-server and Ollama serve it for Claude Code and other Anthropic clients.

Why: coding agents that speak Anthropic's API (Claude Code pointed at a local model with
ANTHROPIC_BASE_URL) are today's heaviest agentic traffic, and the server converts that route's
requests and streams itself (vllm/entrypoints/anthropic/): measured through the OpenAI route, a
server is not measured the way those clients use it.

The stream (Anthropic's "Streaming Messages" docs; the real vLLM 0.32 and llama-server captures in
tests/fixtures/): `event:` + `data:` typed events — `message_start` (the message, its `usage`),
per content block `content_block_start` (a `text`, `thinking` or `tool_use` block; a tool_use one
carries the tool's id and name: the call's first token, as the name delta is on the OpenAI route),
`content_block_delta`s (`text_delta`, `thinking_delta`: reasoning, `input_json_delta`: argument
fragments, `signature_delta`: no token), `content_block_stop`; `message_delta` with `stop_reason`
and the final `usage`, `message_stop` (the end); `ping` between events; `error` for a failure. No
`[DONE]`. llama-server sends `message_start` only with the first token's step, so a stream whose
first tokens were held (bytes of an unfinished character) has none: nothing here needs it.

Counts follow Anthropic's usage: the prompt is `input_tokens` + `cache_read_input_tokens` +
`cache_creation_input_tokens` (vLLM and llama-server report the uncached part as `input_tokens`
once caching is known), `cached_tokens` the cache reads, the output `message_delta`'s
`output_tokens` (message_start's is 0 or 1 before anything was generated). SGLang does not: its
route (srt/entrypoints/anthropic/serving.py) copies its OpenAI usage, the whole prompt as
`input_tokens` beside the cache reads, so there the prompt is `input_tokens` alone; its messages
are told by their id, `msg_` and a uuid4's 32 hex digits (Anthropic's and the others' differ), and
its `message_start` says 0 of everything (it goes with the role chunk, before any usage). Its
stream carries no thinking blocks: a reasoning model's first token on that route is its answer's.

The request: `system` (the conversation's system messages, joined) apart from `messages`;
`max_tokens` (required); `stop_sequences`, `temperature`, `top_p`, `top_k` from the dataset; its
OpenAI `tools` and `tool_choice` in Anthropic's shapes, and `thinking` as it is. A conversation's
history goes back in Anthropic's form: an assistant's tool calls as `tool_use` blocks (`input` an
object), tool results as `tool_result` blocks of a user message; a message's images as `image`
blocks (a data URL's base64 as a `base64` source with its media type, a remote URL as a `url` source).
The header `anthropic-version:
2023-06-01` is sent; Anthropic's own API wants its key in `x-api-key` (`--header`), the servers
above take the usual Bearer key. No ignore-EOS field: `--ignore-eos` is not sent.
"""

from __future__ import annotations

import re
from typing import Any

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.apis.base import (
    Api,
    Prompt,
    answer,
    arguments_object,
    content_text,
    event_object,
    fail,
    openai_usage,
    reasoning,
    sampling,
    tool_call,
)
from workloads.images import image_url, image_urls, split_data_url

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}
NAMES: dict[str, str | None] = {"stop": "stop_sequences", "seed": None}  # sampling fields renamed
CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
SGLANG_ID = re.compile(r"msg_[0-9a-f]{32}")  # its messages' ids: f"msg_{uuid.uuid4().hex}"


def build(p: Prompt) -> dict:
    system, messages = _anthropic(p.messages)
    body: dict = {"model": p.named, "max_tokens": p.max_tokens, "messages": messages, "stream": True}
    if system:
        body["system"] = system
    body.update(sampling(p.extra, NAMES))
    extra = p.extra or {}
    if tools := extra.get("tools"):
        body["tools"] = [_tool(t) for t in tools if isinstance(t, dict)]
        choice = extra.get("tool_choice")
        if isinstance(choice, dict) and (fn := choice.get("function")):
            body["tool_choice"] = {"type": "tool", "name": fn.get("name")}
        elif choice in CHOICE:
            body["tool_choice"] = CHOICE[choice]
    if "thinking" in extra:
        body["thinking"] = extra["thinking"]
    return body


def _tool(t: dict) -> dict:
    fn = t.get("function") or {}
    out = {"name": fn.get("name") or "", "input_schema": fn.get("parameters") or {"type": "object"}}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _anthropic(messages: list[dict]) -> tuple[str, list[dict]]:
    """OpenAI-shaped messages → (the system text, Anthropic's messages)."""
    system, out = [], []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role in ("system", "developer"):
            system.append(content_text(content))
        elif role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id") or "",
                "content": content_text(content),
            }
            last = out[-1] if out else None
            if last and last["role"] == "user" and isinstance(last["content"], list):
                last["content"].append(block)  # the results of one turn's calls, one user message
            else:
                out.append({"role": "user", "content": [block]})
        elif role == "assistant" and m.get("tool_calls"):
            text = content_text(content)
            blocks: list[dict] = [{"type": "text", "text": text}] if text else []
            blocks += [_tool_use(c) for c in m["tool_calls"] if isinstance(c, dict)]
            out.append({"role": "assistant", "content": blocks})
        elif content.__class__ is list and image_urls(content):
            blocks = [_block(x) for x in content]  # Anthropic refuses an empty text block
            out.append({"role": role, "content": [b for b in blocks if b["type"] != "text" or b["text"]]})
        else:
            out.append(
                {"role": role, "content": content if content.__class__ is str else content_text(content)}
            )
    return "\n\n".join(s for s in system if s), out


def _block(part: Any) -> dict:
    """A chat content part as Anthropic's content block: an image's data URL as a `base64` source (its
    media type apart), a remote one as a `url` source; a text part as a text block."""
    if (url := image_url(part)) is None:
        return {"type": "text", "text": content_text([part])}
    if (inline := split_data_url(url)) is not None:
        media, data = inline
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _tool_use(call: dict) -> dict:
    fn = call.get("function") or {}
    return {"type": "tool_use", "id": call.get("id") or "", "name": fn.get("name") or "",
            "input": arguments_object(fn.get("arguments"))}  # fmt: skip


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    kind = obj.get("type")
    if kind == "content_block_delta":
        delta = obj.get("delta") or {}
        dk = delta.get("type")
        if dk == "text_delta":
            if text := delta.get("text"):
                answer(res, text, t)
        elif dk == "thinking_delta":
            if thought := delta.get("thinking"):
                reasoning(res, t, thought)
        elif dk == "input_json_delta" and (fragment := delta.get("partial_json")):
            tool_call(res, t, [(_tool_index(res, obj.get("index")), "", "", fragment)])
    elif kind == "content_block_start":
        block = obj.get("content_block") or {}
        if block.get("type") == "tool_use" and block.get("name"):
            at = len(res.tool_calls or ())
            _scratch(res)[obj.get("index")] = at
            tool_call(res, t, [(at, block.get("id") or "", block["name"], "")])
    elif kind == "message_start":
        message = obj.get("message") or {}
        if not res.served_model and (model := message.get("model")) and model.__class__ is str:
            res.served_model = model
        _scratch(res)["usage"] = message.get("usage")
        _scratch(res)["sglang"] = SGLANG_ID.fullmatch(str(message.get("id") or "")) is not None
    elif kind == "message_delta":
        if reason := (obj.get("delta") or {}).get("stop_reason"):
            res.finish_reason = FINISH.get(reason, reason)
        _counts(res, obj.get("usage"))
    elif kind == "message_stop":
        res.done = True
    elif kind == "error" or obj.get("error"):
        fail(res, sse.error_message(obj) or str(obj)[:300])


def _scratch(res: StreamResult) -> dict:
    if not isinstance(res.scratch, dict):
        res.scratch = {}
    return res.scratch


def _tool_index(res: StreamResult, block: Any) -> int:
    """The call a content block's argument fragments belong to (blocks count text ones too)."""
    at = _scratch(res).get(block)
    return at if isinstance(at, int) else max(len(res.tool_calls or ()) - 1, 0)


def _counts(res: StreamResult, usage: Any) -> None:
    """The final usage (message_delta's), the prompt from it or from message_start's."""
    if not isinstance(usage, dict) or usage.get("output_tokens") is None:
        return
    start = _scratch(res).get("usage")
    said = usage if usage.get("input_tokens") is not None else start if isinstance(start, dict) else {}
    prompt = None
    if said.get("input_tokens") is not None:
        parts = ("input_tokens",) if _scratch(res).get("sglang") else (
            "input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
        )  # fmt: skip
        prompt = sum(int(said.get(k) or 0) for k in parts)
    res.usage = openai_usage(usage["output_tokens"], prompt, said.get("cache_read_input_tokens"))


API = Api("messages", "/v1/messages", build, fold, splits_reasoning=True,
          server="Anthropic",
          headers=(("anthropic-version", "2023-06-01"),), ignore_eos=False, images=("data", "http"))  # fmt: skip
