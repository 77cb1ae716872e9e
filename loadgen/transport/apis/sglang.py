"""`--api sglang`: SGLang's native `POST /generate`, the route its own benchmark (bench_serving) uses.

The body: `text` (the conversation as one prompt, base.prompt_text), `sampling_params`
{max_new_tokens, ignore_eos, the dataset's temperature/top_p/top_k/stop, seed as `sampling_seed`},
`stream: true`, and `require_reasoning: true` — GenerateReqInput's flag, which SGLang's chat route
sets for a thinking request: without it the scheduler does not count reasoning tokens
(scheduler `_maybe_update_reasoning_tokens`) and a reasoning model's thinking would pass for its
answer. For a model without a think-end token it changes nothing. Each event (`data: {…}`, then `data: [DONE]`; http_server.py) is
`{"text", "output_ids", "meta_info"}` with `text` *cumulative* by default (tokenizer_manager.py
without `--incremental-streaming-output`): the new text is what follows the previous event's text,
taken by position — no re-tokenizing. An event whose text does not extend the previous one is read
as incremental output. `meta_info` counts cumulatively: `completion_tokens`, `prompt_tokens`,
`cached_tokens` and `reasoning_tokens` — the scheduler adds a step's tokens to reasoning_tokens
until the think-end token (schedule_batch.py `Req.update_reasoning_tokens`), so an event whose new
tokens all went to reasoning_tokens is reasoning and the first that did not is the answer (TTFO).
The reasoning text itself is in `text` (this route has no reasoning field). `finish_reason` is null
until the last event, then `{"type": "length" | "stop" | "abort", …}`; an abort is a failure.
Token counts come from the last event's meta_info (`tokens_source=meta_info`); with the server's
`--enable-metrics` the same meta_info states the request's timing (base.sglang_timing), which becomes
the row's engine prefill and decode.
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
    openai_usage,
    prompt_text,
    reasoning,
    sampling,
    sglang_timing,
)

SAMPLING_NAMES = {"seed": "sampling_seed"}


def build(p: Prompt) -> dict:
    params = {"max_new_tokens": p.max_tokens, **sampling(p.extra, SAMPLING_NAMES)}
    if p.ignore_eos:
        params["ignore_eos"] = True
    body = {
        "text": prompt_text(p.messages),
        "sampling_params": params,
        "stream": True,
        "require_reasoning": True,
    }
    if p.adapter:  # a LoRA adapter loaded with --lora-paths NAME=PATH, by its name
        body["lora_path"] = p.adapter
    return body


class _Seen:
    """What the previous events said: the text so far and the cumulative counts."""

    __slots__ = ("reasoning", "text", "tokens")

    def __init__(self) -> None:
        self.text, self.tokens, self.reasoning = "", 0, 0


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    meta = obj.get("meta_info")
    if meta is None:
        if msg := sse.error_message(obj):
            fail(res, msg)
        return
    seen = res.scratch or _Seen()
    res.scratch = seen
    text = obj.get("text") or ""
    new = text[len(seen.text) :] if text.startswith(seen.text) else text
    seen.text = text
    tokens = meta.get("completion_tokens")
    thought = meta.get("reasoning_tokens") or 0
    fresh = (tokens - seen.tokens) if tokens is not None else (1 if new else 0)
    if fresh > 0:
        if thought - seen.reasoning >= fresh:
            reasoning(res, t, new)
        else:
            answer(res, new, t)
        seen.tokens, seen.reasoning = tokens or 0, thought
    if finish := meta.get("finish_reason"):
        _finish(res, finish, meta, tokens, thought)


def _finish(res: StreamResult, finish: dict | str, meta: dict, tokens: int | None, thought: int) -> None:
    kind = finish.get("type") if isinstance(finish, dict) else str(finish)
    if kind == "abort":
        fail(res, str(finish.get("message") if isinstance(finish, dict) else "") or "request aborted")
        return
    res.finish_reason = str(kind)
    if tokens is not None:
        res.tokens_source = "meta_info"
        res.usage = openai_usage(tokens, meta.get("prompt_tokens"), meta.get("cached_tokens"), thought)
    sglang_timing(res, meta)


API = Api("sglang", "/generate", build, fold, splits_reasoning=True, server="SGLang")
