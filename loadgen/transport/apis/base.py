"""What every API module provides, and what they share: the `Api` record, the `Prompt` it is built
from, the conversation-as-text rule, and the folding steps every format has in common.

An API module (loadgen/transport/apis/<name>.py) says how one server API is spoken, in two parts, as
the request functions of vLLM's benchmark do: `build(prompt) → body` (the JSON body of one streamed
request to `path`), and `fold(res, event, data, t)`, which folds one server-sent event (its type,
its data bytes, its arrival stamp) into the request's `StreamResult` (core/result.py). Both
transports cut events with the same parser and call the API's `fold` after each event's stamp was
taken, so decoding never moves a timestamp; core/measure.py then applies the metric definitions to
the result, whatever the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from core.result import EngineTiming, StreamResult
from loadgen.transport import sse
from loadgen.transport.apis.inline import OVER, inline_reasoning
from loadgen.transport.apis.spec import llamacpp_spec, sglang_spec, vllm_spec
from loadgen.transport.eventstream import EventStream

Fold = Callable[[StreamResult, str, "bytes | bytearray", float], None]

# Sampling fields a dataset's extra body may carry (OpenAI's names) that native APIs also take, each
# under its own name (None: the API has no such field). Other extra fields (tools, response_format,
# chat_template_kwargs, …) are OpenAI-only and not sent to a native API.
SAMPLING = ("temperature", "top_p", "top_k", "stop", "seed")


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request's content, before any API shapes it: the conversation, the output cap, the run's flags."""

    model: str
    messages: list[dict]
    max_tokens: int
    ignore_eos: bool = False
    extra: dict | None = None  # the dataset's extra request fields (OpenAI's names)
    usage: bool = True  # ask for the usage chunk (stream_options.include_usage; --stream-usage)
    cap_field: str = "max_tokens"  # the chat field that carries the cap (--max-tokens-field)
    # the model this request names when it is not the run's `model` (`--models`, a mix class's
    # `model=`): mostly a LoRA adapter. Routes with a `model` field name it there (`named`); SGLang's
    # `/generate` (`lora_path`) and TGI's `/generate_stream` (`parameters.adapter_id`) name adapters apart
    adapter: str = ""

    @property
    def named(self) -> str:
        """The `model` field of a route that has one: the adapter when there is one, else the model."""
        return self.adapter or self.model


@dataclass(frozen=True, slots=True)
class Api:
    """One server API: where requests go, how a body is built, how its stream is read."""

    name: str  # the `--api` value and the rows' `api` column
    path: str
    build: Callable[[Prompt], dict]
    fold: Fold
    splits_reasoning: bool  # the stream tells reasoning from the answer (TTFO is defined)
    sdk: str | None = None  # the openai SDK resource that sends it (`chat.completions`); None: raw only
    server: str = ""  # whose API it is, for messages and docs
    # how its stream is cut into events: server-sent events, or one JSON object per line
    # (loadgen/transport/ndjson.py); called with the body buffer the events are cut from
    framing: Callable[[bytearray | None], Any] = EventStream
    media: str = "text/event-stream"  # the stream's media type: the request's Accept
    headers: tuple[tuple[str, str], ...] = ()  # headers the API wants on every request (a version)
    ignore_eos: bool = True  # the API has a field that keeps generating past the end of sequence
    # the images its route takes in a prompt, by URL kind: `data` (base64 inline), `http` (a remote one
    # the server fetches); () for the routes that take text only (loadgen/run/checks.py refuses a
    # workload with images there rather than send its text alone)
    images: tuple[str, ...] = ()


def prompt_text(messages: list[dict]) -> str:
    """A conversation as one plain prompt, for the APIs that take text: the messages' texts, in order,
    separated by a blank line (no chat template: the server applies none on these routes)."""
    return "\n\n".join(content_text(m.get("content")) for m in messages)


def content_text(content: Any) -> str:
    if isinstance(content, list):  # OpenAI content parts: the text ones
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return str(content or "")


def arguments_object(args: Any) -> dict:
    """A tool call's arguments as an object, for the APIs that want one (Anthropic's `input`,
    Ollama's `arguments`): OpenAI's JSON string parsed; empty, broken or not an object → {}."""
    if isinstance(args, str):
        try:
            args = orjson.loads(args) if args.strip() else {}
        except orjson.JSONDecodeError:
            args = {}  # a model's broken arguments
    return args if isinstance(args, dict) else {}


def sampling(extra: dict | None, names: dict[str, str | None]) -> dict:
    """The dataset's sampling fields (SAMPLING) renamed for a native API; `names` maps OpenAI's name → its."""
    if not extra:
        return {}
    out = {}
    for key in SAMPLING:
        target = names.get(key, key)
        if key in extra and target is not None:
            out[target] = extra[key]
    return out


def event_object(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> dict | None:
    """The event's JSON object, the event's arrival noted as the stream's last; None when the event
    was something else (`[DONE]`, an error, not an object), which `not_a_chunk` has recorded."""
    obj = sse.decode(data, event)
    if type(obj) is not dict:
        not_a_chunk(res, obj, t)
        return None
    res.t_last = t
    if not res.served_model and (model := obj.get("model")) and model.__class__ is str:
        res.served_model = model  # the answer's own name for its model (a gateway's choice, a snapshot)
    return obj


def openai_body(p: Prompt, **content: Any) -> dict:
    """An OpenAI-style streamed request (chat, completions): `content` is its messages or prompt."""
    body: dict = {
        "model": p.named,
        **content,
        "max_tokens": p.max_tokens,
        "stream": True,
    }
    if p.usage:  # refused by some gateways (an unknown parameter): --stream-usage off
        body["stream_options"] = {"include_usage": True}
    if p.ignore_eos:
        body["ignore_eos"] = True
    if p.extra:
        body.update(p.extra)
    return body


def not_a_chunk(res: StreamResult, obj: Any, t: float) -> None:
    """An event that decoded to no payload: `[DONE]`, an `error` event, or a keep-alive (None)."""
    if obj is sse.DONE:
        res.done = True
    elif type(obj) is sse.StreamError:
        res.t_last = t
        res.error, res.error_detail = "stream_error", str(obj)


def fail(res: StreamResult, message: str) -> None:
    """The server reported an error inside a 200 stream."""
    res.error, res.error_detail = "stream_error", message[:300]


def answer(res: StreamResult, text: str, t: float) -> None:
    """A chunk of the answer's text (the hot path of every format: kept to a few steps). Reasoning
    written inline in the text (inline.py) is looked for at the answer's first chunk, while inside
    it, and where a `</think>` shows."""
    res.text_times.append(t)
    if (
        res.think != OVER
        and (res.think or res.t_first_answer is None or "think>" in text)
        and inline_reasoning(res, text, t)
    ):
        return
    res.parts.append(text)
    if res.t_first_answer is None:
        res.t_first_answer = t


def reasoning(res: StreamResult, t: float, text: object = None) -> None:
    """A chunk of reasoning only. Its text is kept apart from the answer's (a real client does not
    send it back): `--tokenizer` counts it where the server states no count."""
    res.text_times.append(t)
    res.reasoning_chunks += 1
    if text.__class__ is str:
        res.reasoning_parts.append(text)


def tool_call(res: StreamResult, t: float, deltas: list[tuple[int, str, str, str]]) -> None:
    """One event's tool-call deltas `(index, id, name, arguments)` that carry a name or argument text
    (the caller drops those carrying neither: they are no token).

    The first such event — the function name, as vLLM and OpenAI stream it — is a generated token,
    the first of the answer and of the tool call; every event with argument text is an argument chunk.
    """
    res.text_times.append(t)
    res.tool_events += 1
    if res.t_first_answer is None:
        res.t_first_answer = t
    calls = res.tool_calls
    if calls is None:
        res.t_first_tool = t
        calls = res.tool_calls = []
    with_args = False
    for index, call_id, name, arguments in deltas:
        while len(calls) <= index:
            calls.append({"id": "", "name": "", "arguments": ""})
        call = calls[index]
        if call_id:
            call["id"] = call_id
        if name:
            call["name"] += name
        if arguments:
            call["arguments"] += arguments
            with_args = True
    if with_args:
        res.tool_arg_chunks += 1


def llamacpp_timings(res: StreamResult, timings: Any) -> None:
    """llama-server's `timings` object, which its last event carries on every route it streams
    (`/completion`, `/v1/completions`, `/v1/chat/completions`; server-task.cpp `result_timings`):
    the slot's `prompt_ms` and `predicted_ms` become the row's engine prefill and decode (and its
    draft counts the row's speculative decoding)."""
    if type(timings) is dict:
        llamacpp_spec(res, timings)
        prompt, predicted = timings.get("prompt_ms"), timings.get("predicted_ms")
        if _duration(prompt) and _duration(predicted):
            res.engine = EngineTiming(prompt / 1e3, predicted / 1e3)


def vllm_metrics(res: StreamResult, metrics: Any) -> None:
    """vLLM's own timing of the request (`--enable-per-request-metrics`): the `metrics` object beside
    the last usage (chat, completions) or in `response.completed`'s response, in milliseconds from its
    engine core's stamps (entrypoints/generate/base/serving.py `build_per_request_timing_metrics`,
    the stamps its spans carry): `time_to_first_token_ms` = first token − first scheduled (so its
    wait queue is not in it), `generation_time_ms` = last token − first, `queue_time_ms` = first
    scheduled − queued. A field it cannot fill is left out (`exclude_none`). Its
    `speculative_decoding` object, where it speculates, is the row's (apis/spec.py)."""
    if type(metrics) is not dict:
        return
    vllm_spec(res, metrics)
    prefill, decode = metrics.get("time_to_first_token_ms"), metrics.get("generation_time_ms")
    if _duration(prefill) and _duration(decode):
        queue = metrics.get("queue_time_ms")
        res.engine = EngineTiming(
            prefill / 1e3, decode / 1e3, None, queue / 1e3 if _duration(queue) else None
        )


def usage_timing(res: StreamResult, obj: dict) -> None:
    """The server's own timing of the request on the event that carries its usage: llama-server's
    `timings`, vLLM's `metrics` or mistral.rs's fields inside the usage (read only there: once per
    request, never per token)."""
    llamacpp_timings(res, obj.get("timings"))
    vllm_metrics(res, obj.get("metrics"))
    if res.engine is None:
        mistralrs_usage(res, obj.get("usage"))


def mistralrs_usage(res: StreamResult, usage: Any) -> None:
    """mistral.rs states its timing inside `usage` (mistralrs-core sequence.rs `SequenceGroup::get_usage`,
    seconds at ms resolution): `total_prompt_time_sec` — its prompt step (since 2025: from the step's
    start, so its queue is not in it; before, from the request's arrival, queue included) — and
    `total_completion_time_sec` (the first token → the last). A usage whose `total_time_sec` is 0
    timed nothing (a server that fills the fields with zeros)."""
    if type(usage) is not dict:
        return
    prompt, completion = usage.get("total_prompt_time_sec"), usage.get("total_completion_time_sec")
    total = usage.get("total_time_sec")
    if _duration(prompt) and _duration(completion) and _duration(total) and total > 0:
        res.engine = EngineTiming(prompt, completion)


def ollama_durations(res: StreamResult, done: dict) -> None:
    """Ollama's durations on its last line (nanoseconds; api/types.go `Metrics`). Go omits a zero
    one (`omitempty`: a warm model has no `load_duration`), so a missing one is 0 — once the line
    has at least one of the prefill and decode durations; a server that sends neither has none."""
    prompt, ev = done.get("prompt_eval_duration"), done.get("eval_duration")
    if not (_duration(prompt) or _duration(ev)):
        return
    load = done.get("load_duration")
    res.engine = EngineTiming(
        (prompt if _duration(prompt) else 0) / 1e9,
        (ev if _duration(ev) else 0) / 1e9,
        (load if _duration(load) else 0) / 1e9,
    )


def sglang_timing(res: StreamResult, meta: dict) -> None:
    """SGLang's request timing, on `/generate`'s last meta_info when the server runs with
    `--enable-metrics` (wall-clock stamps in seconds). Two generations of names, read in SGLang's
    source: the scheduler's `forward_entry_time` / `prefill_finished_time` and the HTTP process's
    `request_finished_ts` (`SchedulerReqTimeStats` / `APIServerReqTimeStats.convert_to_output_meta_info`,
    0.5.x), or `prefill_finished_ts` / `decode_finished_ts` with `inference_time` (finish − the
    scheduler's forward entry) in the versions before (tokenizer_manager `_calculate_timing_metrics`).
    prefill = first token − forward entry: it starts when the scheduler first puts the request in a
    batch, as llama-server's starts when a slot takes it, so a request in SGLang's wait queue is
    *waiting*, not prefill; decode = finish − first token. An SGLang with neither the entry stamp nor
    `inference_time`: the request sent to the scheduler + its `queue_time` (the hop to the scheduler
    then counts as prefill). A server without the stamps (no `--enable-metrics`) has none. Its
    speculative decoding counts, where it speculates, are the row's (apis/spec.py)."""
    sglang_spec(res, meta)
    first = _first_of(meta, "prefill_finished_time", "prefill_finished_ts")
    last = _first_of(meta, "request_finished_ts", "decode_finished_ts")
    if first is None or last is None or last < first:
        return
    entry = _first_of(meta, "forward_entry_time")
    if entry is None and _duration(inference := meta.get("inference_time")):
        entry = last - inference
    if entry is None:
        sent, queue = meta.get("request_sent_to_scheduler_ts"), meta.get("queue_time")
        if not (_duration(sent) and _duration(queue)):
            return
        entry = sent + queue
    queue = meta.get("queue_time")  # forward entry − its wait queue's entry
    res.engine = EngineTiming(
        max(first - entry, 0.0), last - first, None, queue if _duration(queue) else None
    )


def _first_of(obj: dict, *keys: str) -> float | None:
    """The first of `keys` that holds a number ≥ 0."""
    for k in keys:
        if _duration(v := obj.get(k)):
            return v
    return None


def _duration(v: Any) -> bool:
    return type(v) in (int, float) and v >= 0


def openai_usage(
    completion: Any, prompt: Any = None, cached: Any = None, reasoning_tokens: Any = None
) -> dict:
    """A server's counts in OpenAI's `usage` shape, the one core/measure.py reads."""
    usage: dict = {"completion_tokens": completion, "prompt_tokens": prompt}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return usage
