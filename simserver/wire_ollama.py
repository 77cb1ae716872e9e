"""Ollama's native `POST /api/chat`, served by the same engine: NDJSON lines, not server-sent events.

The format, as Ollama writes it (docs/api.md "Generate a chat completion"; api/types.go
`ChatRequest`, `Message`, `ChatResponse`, `Metrics`): the answer is `application/x-ndjson`, one
object per line, `stream` true unless the request says false. Each step's line is
`{"model", "created_at", "message": {"role": "assistant", "content": TOKEN}, "done": false}`, a
thinking model's reasoning in `message.thinking` with an empty content; the last line has an empty
message, `done: true`, `done_reason` (stop | length) and the metrics in nanoseconds —
`total_duration`, `load_duration` (0: the model is always loaded here), `prompt_eval_count` (the
whole prompt, as Ollama ≥ 0.30 counts it), `prompt_eval_duration` (queue + prefill: Ollama's
clock starts before its runner waits for a slot),
`eval_count` (every generated token, thinking included), `eval_duration` — and
`prompt_eval_cached_count` when some of the prompt was cached (the field is omitted when empty).
`created_at` is taken once per answer (Ollama stamps each line; a clock read and a format per token
would cost the engine's hot path more than the stamp is worth to a client, which never reads it).

The request: `model`, `messages` (a message's `content` must be a string, its `images` base64 strings
— ahead of its text in the prompt, simserver/images.py — and a tool call's `arguments` an object,
as Go's decoder insists: anything else is Ollama's 400), `options`
(`num_predict`, default -1: until the context is full; `seed`), `think` (false: no reasoning),
`stream`, `truncate` (this engine refuses a prompt longer than its context whatever it says, as
Ollama does with `truncate: false`; Ollama's default shortens it). Errors are `{"error": "…"}`. `tools` are accepted and not called: Ollama sends a tool call
whole in one line once the model has finished it, which this engine's per-token writer does not
model (the compatibility zoo holds that line: tests/support/zoo/native.py `ollama_chat`).
"""

from __future__ import annotations

import datetime
from typing import Any

import orjson

from simserver.answer import REASONING, Answer
from simserver.images import ImageItem, base64_part
from simserver.reqparse import ApiError, GenRequest, check_lengths, get_dict, get_int
from simserver.tokenizer import VOCAB_TEXT, chat_tokens
from simserver.wire import Emit, Tally, Wire, joined_json

NDJSON = "application/x-ndjson"
JSON_KIND = {list: "array", dict: "object", bool: "bool"}  # how Go's decoder names what it refuses


def parse_ollama(body: dict[str, Any], model: str, max_model_len: int) -> GenRequest:
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "model is required", "model")
    if name != model:
        raise ApiError(404, f"model '{name}' not found", "model")
    messages = body.get("messages")
    images: list[ImageItem] = []
    if isinstance(messages, list):
        for i, m in enumerate(messages):
            _check_message(m, i)
        messages = [_with_images(m) for m in messages]
    try:
        prompt = chat_tokens(messages, images)
    except ValueError as e:
        raise ApiError(400, str(e), "messages") from None
    options = get_dict(body, "options")
    n_predict = get_int(options, "num_predict", -1, "options.num_predict")
    assert n_predict is not None
    max_tokens = max_model_len - len(prompt) if n_predict < 0 else n_predict
    check_lengths(prompt, max_tokens, 0, max_model_len, "options.num_predict", "messages")
    stream = body.get("stream", True)  # Ollama streams unless told not to
    if not isinstance(stream, bool):
        raise ApiError(400, f"'stream' must be a boolean, got {stream!r}", "stream")
    if not isinstance(body.get("truncate", False), bool):
        raise ApiError(400, f"'truncate' must be a boolean, got {body['truncate']!r}", "truncate")
    think = body.get("think")  # true, false, or a gpt-oss level (low | medium | high)
    if think is not None and not isinstance(think, bool | str):
        raise ApiError(400, f"'think' must be a boolean or low, medium, high; got {think!r}", "think")
    return GenRequest(prompt, max_tokens, stream=stream, seed=get_int(options, "seed", None, "options.seed"),
                      think=think is not False, opts={"model": name}, images=tuple(images))  # fmt: skip


def _with_images(m: Any) -> Any:
    """A message with `images` (base64, no data URL head) as chat parts: its images, then its text —
    where Ollama's prompt puts a message's images (an [img-N] tag ahead of its content)."""
    if not isinstance(m, dict) or not m.get("images"):
        return m
    raw = m["images"]
    if not isinstance(raw, list):
        raise ApiError(400, "a message's 'images' must be a list of base64 strings", "messages")
    try:
        parts = [base64_part(data) for data in raw]
    except ValueError as e:
        raise ApiError(400, str(e), "messages") from None
    return {**m, "content": [*parts, {"type": "text", "text": m.get("content") or ""}]}


def _check_message(m: Any, i: int) -> None:
    """What Go's decoder refuses in a message (api.Message): a non-string content, string arguments."""
    if not isinstance(m, dict):
        return  # chat_tokens names it
    content = m.get("content")
    if content is not None and not isinstance(content, str):
        raise ApiError(
            400,
            f"json: cannot unmarshal {JSON_KIND.get(type(content), 'number')} into Go struct field "
            f"ChatRequest.messages.content of type string (messages[{i}])",
            "messages",
        )
    for call in m.get("tool_calls") or ():
        args = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
        if args is not None and not isinstance(args, dict):
            raise ApiError(
                400,
                "json: cannot unmarshal string into Go struct field ChatRequest.messages.tool_calls.function."
                f"arguments of type api.ToolCallFunctionArguments (messages[{i}])",
                "messages",
            )


def ollama_error(status: int, kind: str, message: str, param: str | None = None) -> tuple[int, bytes]:
    """Ollama's error body: {"error": message} with the status."""
    return status, orjson.dumps({"error": message})


class OllamaWire(Wire):
    """One answer's lines: a head shared by every line, a token's text or thinking, the metrics line."""

    def __init__(self, answer: Answer, model: str) -> None:
        self.answer = answer
        created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.head = b'{"model":%b,"created_at":"%b","message":{"role":"assistant","content":' % (
            orjson.dumps(model),
            created.encode(),
        )
        self.post = b'},"done":false}\n'

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        if phase == REASONING:
            return [], Emit(self.head + b'"","thinking":', self.post)
        return [], Emit(self.head, self.post)

    def _metrics(self, t: Tally) -> bytes:
        # Ollama's runner starts a request's prompt clock before it waits for a free sequence slot
        # (runner/ollamarunner NewSequence, then seqsSem.Acquire): its prefill holds the queue
        prefill_ns, decode_ns = round((t.queue_s + t.prefill_s) * 1e9), round(t.decode_s * 1e9)
        m = {
            "done_reason": "length" if t.finish == "length" else "stop",
            "total_duration": round(t.e2e_s * 1e9),
            "load_duration": 0,
            "prompt_eval_count": t.prompt_tokens,
            "prompt_eval_duration": prefill_ns,
            "eval_count": t.completion_tokens,
            "eval_duration": decode_ns,
        }
        if t.cached_tokens:
            m["prompt_eval_cached_count"] = t.cached_tokens
        return orjson.dumps(m)[1:-1]

    def _done(self, t: Tally, message: bytes = b'""') -> bytes:
        return self.head + message + b'},"done":true,' + self._metrics(t) + b"}\n"

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        text = joined_json(indices)  # a speculative step's tokens in one line
        token = b'"","thinking":%b' % text if phase == REASONING else text
        return [self.head + token + self.post, self._done(tally)]

    def empty(self, tally: Tally) -> list[bytes]:
        return [self._done(tally)]

    def body(self, indices: list[int], tally: Tally) -> bytes:
        r, _ = self.answer.split(len(indices))
        message = orjson.dumps("".join(VOCAB_TEXT[i] for i in indices[r:]))
        if r:
            message += b',"thinking":' + orjson.dumps("".join(VOCAB_TEXT[i] for i in indices[:r]))
        return self._done(tally, message)[:-1]
