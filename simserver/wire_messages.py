"""POST /v1/messages: Anthropic's Messages API as vLLM serves it (vllm/entrypoints/anthropic/).

The stream, as a real vLLM 0.32 writes it (tests/fixtures/vllm-cpu-messages-stream.txt): `event:` +
`data:` typed events, no [DONE] — `message_start` (the message with no content, `usage` with the
whole prompt as `input_tokens`) and the first block's `content_block_start` with the first token's
step, a `content_block_delta` per token, `content_block_stop`, `message_delta` with `stop_reason`
(end_turn | max_tokens | tool_use) and the final usage — `input_tokens` the uncached part,
`cache_read_input_tokens` the cached one, `cache_creation_input_tokens` (0 here: the engine does not
tell newly cached blocks apart) — and `message_stop`. Keys in vLLM's order (its pydantic models).
A reasoning model's thinking is a `thinking` block of `thinking_delta`s before the text block, as
Anthropic streams one; a tool call is a `tool_use` block whose `content_block_start` carries the id
and name (the call's first token, as vLLM turns the name delta into it) and whose arguments come as
`input_json_delta`s. Errors are vLLM's Anthropic shape, `{"type": "error", "error": {type, message}}`.

The request: `model`, `max_tokens` (required, as Anthropic's), `messages` (string contents or
blocks: text, image — a `base64` source, or a `url` one that is a data URL: simserver/images.py —,
tool_use, tool_result), `system` (a string or text blocks), `stream`, `tools`
(`{name, description, input_schema}`) and `tool_choice` (auto | any | tool | none), `thinking`
(`{"type": "disabled"}`: no reasoning).
"""

from __future__ import annotations

from typing import Any

import orjson

from simserver.answer import CONTENT, REASONING, TOOL, Answer, parse_tools
from simserver.images import ImageItem, anthropic_part
from simserver.reqparse import ApiError, GenRequest, check_lengths, check_model, get_bool, get_int
from simserver.tokenizer import VOCAB_TEXT, chat_tokens
from simserver.wire import Emit, Tally, Wire, frame, joined_json

STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
CHOICE = {"auto": "auto", "any": "required", "none": "none"}
BLOCK = {REASONING: (b'{"type":"thinking","thinking":""}', b"thinking_delta", b"thinking"),
         CONTENT: (b'{"type":"text","text":""}', b"text_delta", b"text")}  # fmt: skip


def messages_error(status: int, kind: str, message: str, param: str | None = None) -> tuple[int, bytes]:
    return status, orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def _content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """A message's (or the system's) content as chat parts, its blocks flattened: what the engine's
    template renders — text, tool calls and results as text, images in place (simserver/images.py)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        raise ApiError(400, f"{where}: content must be a string or a non-empty list of blocks", "messages")
    parts: list[dict[str, Any]] = []
    for b in content:
        if not isinstance(b, dict):
            raise ApiError(400, f"{where}: a content block must be an object", "messages")
        kind = b.get("type")
        if kind == "text":
            parts.append(_part(str(b.get("text") or "")))
        elif kind == "image":
            try:
                parts.append(anthropic_part(b))
            except ValueError as e:
                raise ApiError(400, f"{where}: {e}", "messages") from None
        elif kind == "tool_use":
            parts.append(_part(f"{b.get('name') or ''} {orjson.dumps(b.get('input') or {}).decode()}"))
        elif kind == "tool_result":
            inner = b.get("content")
            if isinstance(inner, str) or not inner:
                parts.append(_part(inner or ""))
            else:
                nested = _content(inner, where)
                parts.extend([_part(nested)] if isinstance(nested, str) else nested)
    return parts


def _part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def parse_messages(body: dict[str, Any], model: str, max_model_len: int) -> GenRequest:
    check_model(body, model)
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "messages must contain at least one item", "messages")
    chat: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        chat.append({"role": "system", "content": _content(system, "system")})
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise ApiError(400, f"messages[{i}] must be {{role: user | assistant, content}}", "messages")
        chat.append({"role": m["role"], "content": _content(m.get("content"), f"messages[{i}]")})
    images: list[ImageItem] = []
    try:
        prompt = chat_tokens(chat, images)
    except ValueError as e:  # an image that cannot be read
        raise ApiError(400, str(e), "messages") from None
    if body.get("max_tokens") is None:
        raise ApiError(400, "max_tokens: Field required", "max_tokens")
    max_tokens = get_int(body, "max_tokens", None)
    assert max_tokens is not None
    check_lengths(prompt, max_tokens, 0, max_model_len, "max_tokens", "messages")
    tools, choice = _tools(body)
    thinking = body.get("thinking")
    think = not (isinstance(thinking, dict) and thinking.get("type") == "disabled")
    return GenRequest(prompt, max_tokens, stream=get_bool(body, "stream"), tools=tools, tool_choice=choice,
                      think=think, images=tuple(images))  # fmt: skip


def _tools(body: dict[str, Any]) -> tuple[Any, Any]:
    raw, choice = body.get("tools"), body.get("tool_choice")
    if raw is None:
        return (), None
    if not isinstance(raw, list):
        raise ApiError(400, "'tools' must be a list of {name, description, input_schema}", "tools")
    fns = [{"type": "function", "function": {"name": t.get("name"), "parameters": t.get("input_schema")}}
           for t in raw if isinstance(t, dict)]  # fmt: skip
    if isinstance(choice, dict) and choice.get("type") == "tool":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, dict):
        choice = CHOICE.get(str(choice.get("type")), "bad")
    try:
        return parse_tools({"tools": fns, "tool_choice": choice})
    except ValueError as e:
        raise ApiError(400, str(e), "tools") from None


def _event(kind: bytes, data: bytes) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (kind, data)


class MessagesWire(Wire):
    """One message's events; `block` counts the content blocks opened so far."""

    def __init__(self, msg_id: str, model: str, answer: Answer) -> None:
        self.answer, self.msg_id, self.model = answer, orjson.dumps(msg_id), orjson.dumps(model)
        self.block = -1
        self.tool_events: list[bytes] = []  # unframed: the tool_use start, then one argument fragment each
        self.tool_start = 0

    def first(self) -> list[bytes]:
        prompt = self.seq.prompt_len if self.seq is not None else 0
        message = (b'{"id":%b,"type":"message","role":"assistant","content":[],"model":%b,"stop_reason":null,'
                   b'"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":0}}') % (self.msg_id, self.model, prompt)  # fmt: skip
        return [_event(b"message_start", b'{"type":"message_start","message":%b}' % message)]

    def _stop(self) -> list[bytes]:
        if self.block < 0:
            return []
        return [_event(b"content_block_stop", b'{"type":"content_block_stop","index":%d}' % self.block)]

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        events = self._stop()
        self.block += 1
        if phase == TOOL:
            tool = self.answer.tool
            assert tool is not None
            use = {"type": "tool_use", "id": tool.call_id, "name": tool.name, "input": {}}
            start = b'{"type":"content_block_start","content_block":%b,"index":%d}' % (
                orjson.dumps(use),
                self.block,
            )
            self.tool_events = [_event(b"content_block_start", start)] + [
                _event(b"content_block_delta", b'{"type":"content_block_delta","delta":{"type":"input_json_delta",'
                       b'"partial_json":%b},"index":%d}' % (orjson.dumps(p), self.block))
                for p in tool.pieces
            ]  # fmt: skip
            self.tool_start = n
            frames = [frame(e) for e in self.tool_events]
            return events, Emit(fmt=lambda k, _index: frames[k - n])
        empty, kind, key = BLOCK[phase]
        start = b'{"type":"content_block_start","content_block":%b,"index":%d}' % (empty, self.block)
        events.append(_event(b"content_block_start", start))
        pre = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"%b","%b":'
            % (kind, key)
        )
        return events, Emit(pre, b'},"index":%d}\n\n' % self.block)

    def _end(self, t: Tally) -> list[bytes]:
        usage = {"input_tokens": t.prompt_tokens - t.cached_tokens, "output_tokens": t.completion_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": t.cached_tokens}  # fmt: skip
        reason = STOP.get(t.finish, "end_turn")
        delta = b'{"type":"message_delta","delta":{"stop_reason":"%b","stop_sequence":null},"usage":%b}' % (
            reason.encode(), orjson.dumps(usage),
        )  # fmt: skip
        return [_event(b"message_delta", delta), _event(b"message_stop", b'{"type":"message_stop"}')]

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        if phase == TOOL:  # one delta per tool token, as on the way
            last = self.tool_events[n - len(indices) + 1 - self.tool_start : n + 1 - self.tool_start]
        else:
            _, kind, key = BLOCK[phase]
            last = [b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"%b","%b":%b},"index":%d}\n\n' % (
                kind, key, joined_json(indices), self.block,
            )]  # fmt: skip
        return [*last, *self._stop(), *self._end(tally)]

    def empty(self, tally: Tally) -> list[bytes]:
        return self._end(tally)

    def body(self, indices: list[int], tally: Tally) -> bytes:
        r, answered = self.answer.split(len(indices))
        content: list[dict[str, Any]] = []
        if r:
            content.append(
                {"type": "thinking", "thinking": "".join(VOCAB_TEXT[i] for i in indices[:r]), "signature": ""}
            )
        tool = self.answer.tool
        if tool is not None and answered:
            args = tool.arguments(answered)
            try:
                given = orjson.loads(args) if args else {}
            except orjson.JSONDecodeError:
                given = {}  # cut by max_tokens inside the arguments
            content.append({"type": "tool_use", "id": tool.call_id, "name": tool.name, "input": given})
        elif answered or not r:
            content.append({"type": "text", "text": "".join(VOCAB_TEXT[i] for i in indices[r:])})
        usage = {"input_tokens": tally.prompt_tokens - tally.cached_tokens, "output_tokens": tally.completion_tokens,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": tally.cached_tokens}  # fmt: skip
        out = {"id": orjson.loads(self.msg_id), "type": "message", "role": "assistant", "content": content,
               "model": orjson.loads(self.model), "stop_reason": STOP.get(tally.finish, "end_turn"), "usage": usage}  # fmt: skip
        return orjson.dumps(out)
