"""`--api ollama`: Ollama's native `POST /api/chat`.

Why a native route when Ollama also serves `/v1/chat/completions`: its own route is what most
Ollama clients speak, and its last line carries what the OpenAI one drops — the server's own
durations (`load_duration`: a model loaded inside the request; `prompt_eval_duration`,
`eval_duration`) and the prompt count after Ollama fitted the prompt to its context.

The stream is NDJSON, not SSE (`application/x-ndjson`, one object per line: loadgen/transport/
ndjson.py), per docs/api.md and api/types.go (`ChatResponse`, `Message`, `Metrics`):
`{"model", "created_at", "message": {"role": "assistant", "content", "thinking"?, "tool_calls"?},
"done": false}` per step — a thinking model's reasoning in `message.thinking` (TTFO is defined),
a tool call whole in one line (`{"function": {"name", "arguments": {…}}}`, arguments an object) —;
lines with neither text nor a call (gpt-oss's first line: empty content) are no token. The last
line has `done: true`, `done_reason` (stop | length | …) and the counts: `eval_count` (generated
tokens, thinking included), `prompt_eval_count` (the prompt, cached tokens included since Ollama
0.30) and, where the server says it, `prompt_eval_cached_count` (`tokens_source=eval_count`);
`load_duration`, `prompt_eval_duration`, `eval_duration` become the row's `engine_*_s`.
An error is `{"error": "…"}`, as a line of a 200 stream or as the body of an error status.

The request: the conversation as messages (Ollama applies the model's template), `options`
(`num_predict` = the output cap, and the dataset's sampling fields under their own names), the
dataset's `tools`, and its `think`, `format`, `keep_alive` as they are, and `truncate: false`
(unless the dataset says otherwise): by default Ollama shortens a prompt longer than its context
and answers 200, so a run would time other prompts than the workload's; told not to, it refuses
one with a 400 that the row keeps (server/routes.go reads `truncate` on /api/chat; an older
Ollama ignores the field). Ollama has no way to ignore
the end-of-sequence token (`--ignore-eos` is not sent). Two message shapes differ from OpenAI's: a
message's `content` is a string (OpenAI content parts are joined; their images go in the message's
`images`, base64 without a data URL's head, as Ollama's API documents) and a tool call's `arguments`
an object (a string of JSON is parsed), so an agentic session's history is sent in Ollama's form.
"""

from __future__ import annotations

import orjson

from core.result import StreamResult
from loadgen.transport.apis.base import (
    Api,
    Prompt,
    answer,
    arguments_object,
    content_text,
    event_object,
    fail,
    ollama_durations,
    openai_usage,
    reasoning,
    sampling,
    tool_call,
)
from loadgen.transport.ndjson import LineStream
from workloads.images import image_urls, split_data_url

PASSED = ("tools", "think", "format", "keep_alive", "truncate")  # the dataset's fields, as they are


def build(p: Prompt) -> dict:
    options = {"num_predict": p.max_tokens, **sampling(p.extra, {})}
    body: dict = {"model": p.named, "messages": [_message(m) for m in p.messages], "stream": True}
    body["options"], body["truncate"] = options, False
    if p.extra:
        body.update((k, p.extra[k]) for k in PASSED if k in p.extra)
    return body


def _message(m: dict) -> dict:
    """An OpenAI-shaped message in Ollama's form (the common one, a string content and no tool
    calls, is passed as it is)."""
    content, calls = m.get("content"), m.get("tool_calls")
    if content.__class__ is str and not calls:
        return m
    out = {**m, "content": content_text(content)}
    if images := [inline[1] for u in image_urls(content) if (inline := split_data_url(u)) is not None]:
        out["images"] = images  # base64 without the data URL's head (remote ones: refused at start)
    if calls:
        out["tool_calls"] = [_call(c) for c in calls]
    return out


def _call(call: dict) -> dict:
    fn = call.get("function") or {}
    return {"function": {"name": fn.get("name") or "", "arguments": arguments_object(fn.get("arguments"))}}


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    msg = obj.get("message")
    if msg:
        if content := msg.get("content"):
            answer(res, content, t)
        elif thought := msg.get("thinking"):
            reasoning(res, t, thought)
        elif calls := msg.get("tool_calls"):
            _tool_calls(res, calls, t)
    elif (err := obj.get("error")) is not None:
        fail(res, str(err))
        return
    if obj.get("done"):
        res.done = True
        reason = obj.get("done_reason") or ""  # stop | length, OpenAI's words already
        res.finish_reason = "tool_calls" if reason == "stop" and res.tool_calls else reason  # as OpenAI says
        n = obj.get("eval_count")
        if n is not None:
            res.tokens_source = "eval_count"
            res.usage = openai_usage(n, obj.get("prompt_eval_count"), obj.get("prompt_eval_cached_count"))
        ollama_durations(res, obj)


def _tool_calls(res: StreamResult, calls: list, t: float) -> None:
    """Each call whole: its name and its arguments (an object, kept as JSON text like OpenAI's)."""
    deltas, after = [], len(res.tool_calls or ())  # calls without an index follow those seen so far
    for call in calls:
        if not isinstance(call, dict):
            continue
        fn = call.get("function") or {}
        name, args = fn.get("name") or "", fn.get("arguments")
        text = args if isinstance(args, str) else orjson.dumps(args).decode() if args else ""
        if name or text:
            index = fn.get("index")
            deltas.append(
                (index if isinstance(index, int) else after + len(deltas), call.get("id") or "", name, text)
            )
    if deltas:
        tool_call(res, t, deltas)


API = Api("ollama", "/api/chat", build, fold, splits_reasoning=True, server="Ollama",
          framing=LineStream, media="application/x-ndjson", ignore_eos=False, images=("data",))  # fmt: skip
