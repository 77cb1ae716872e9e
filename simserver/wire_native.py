"""The native generate APIs of SGLang, TGI and llama.cpp, served by the same engine.

Formats as their servers write them (the fixtures in tests/fixtures/ say where each was read):

- SGLang `POST /generate` (python/sglang/srt/entrypoints/http_server.py, managers/tokenizer_manager.py):
  `data: {"text", "output_ids", "meta_info"}` per token, `text` and `output_ids` cumulative (the
  default, non-incremental streaming), meta_info {id, finish_reason (null, or {"type": "stop",
  "matched": EOS id} / {"type": "length", "length": N}), prompt_tokens, weight_version,
  num_retractions (= preemptions), [the scheduler's timing], reasoning_tokens, completion_tokens,
  cached_tokens}, the last event adds e2e_latency and the HTTP process's timing; then `data: [DONE]`.
  Without `stream`: the last event's object. The timing is what SGLang 0.5 states with
  `--enable-metrics` (this engine always exports metrics; the time-stats classes'
  `convert_to_output_meta_info`): on every event forward_entry_time and prefill_finished_time
  (wall-clock stamps of the request's first batch and first token), queue_time, prefill_waiting_latency,
  prefill_launch_latency; at the end request_received_ts, api_server_dispatch_finish_ts,
  response_sent_to_client_ts, request_finished_ts, inference_time (finish − forward entry),
  decode_throughput. Stamps are the engine's own instants (perf_counter) moved to the wall clock by one
  offset per response, so prefill and decode read from them are the engine's to float precision.
- TGI `POST /generate_stream` (router/src/lib.rs StreamResponse, server.rs; axum's `data:` without
  a space): `data:{"index", "token": {id, text, logprob, special}, "generated_text": null,
  "details": null}` per token; the last has generated_text and, when parameters.details is true,
  details {finish_reason: length | eos_token, generated_tokens, seed, input_length}. No [DONE].
- llama.cpp `POST /completion` (tools/server/server-task.cpp): `data: {index, content, tokens,
  stop: false, id_slot, tokens_predicted, tokens_evaluated}` per token, then a final event with
  stop: true, content "", stop_type (eos | limit), timings {cache_n, prompt_n, prompt_ms, …,
  predicted_n, predicted_ms, …}, tokens_cached, generation_settings (the sampling defaults of
  llama.cpp 0.5.0-dev, as a real capture shows: tests/fixtures/llamacpp-completion-stream.txt). No [DONE].
  Without `stream`: the final object with the whole `content`.

None of these has a reasoning field on this route: reasoning tokens are text here (SGLang does
count them, in meta_info.reasoning_tokens). Token ids are vocabulary indices; EOS_ID is outside it.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from simserver.answer import Answer
from simserver.reqparse import ApiError, GenRequest, check_lengths, get_bool, get_dict, get_int
from simserver.specdecode import llamacpp_draft, sglang_spec
from simserver.tokenizer import VOCAB_JSON, VOCAB_TEXT, V, prompt_tokens
from simserver.wire import Emit, Tally, Wire, frame, joined_json

# llama-server's generation_settings around the request's own values, in its order (a real 0.5.0-dev
# capture: tests/fixtures/llamacpp-completion-stream.txt): the sampling defaults first …
LLAMACPP_SAMPLING: dict[str, Any] = {
    "temperature": 0.8, "dynatemp_range": 0.0, "dynatemp_exponent": 1.0, "top_k": 40, "top_p": 0.95,
    "min_p": 0.05, "top_n_sigma": -1.0, "xtc_probability": 0.0, "xtc_threshold": 0.1, "typical_p": 1.0,
    "repeat_last_n": 64, "repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
    "dry_multiplier": 0.0, "dry_base": 1.75, "dry_allowed_length": 2, "dry_penalty_last_n": 64,
    "dry_sequence_breakers": ["\n", ":", "\"", "*"], "mirostat": 0, "mirostat_tau": 5.0,
    "mirostat_eta": 0.1, "adaptive_target": -1.0, "adaptive_decay": 0.9,
}  # fmt: skip
# … and the rest after `stream`.
LLAMACPP_SETTINGS_TAIL: dict[str, Any] = {
    "logit_bias": [], "n_probs": 0, "min_keep": 0, "grammar": "", "grammar_lazy": False,
    "grammar_triggers": [], "preserved_tokens": [], "chat_format": "Content-only",
    "reasoning_format": "deepseek", "reasoning_in_content": False, "generation_prompt": "",
    "samplers": ["penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc", "temperature"],
    "speculative.types": "none", "timings_per_token": False, "post_sampling_probs": False,
    "backend_sampling": False, "lora": [],
}  # fmt: skip


EOS_ID = V
DONE = b"data: [DONE]\n\n"
LOGPROB = tuple(
    b"%.4f" % -(0.05 + (i * 37 % 101) / 40) for i in range(V)
)  # a fixed, plausible logprob per token


def _text(indices: list[int]) -> str:
    return "".join(VOCAB_TEXT[i] for i in indices)


def _prompt(body: dict[str, Any], key: str) -> list[str]:
    try:
        return prompt_tokens(body.get(key))
    except ValueError as e:
        raise ApiError(400, str(e).replace("'prompt'", f"'{key}'"), key) from None


# -- SGLang ---------------------------------------------------------------------------------------


def parse_sglang(body: dict[str, Any], model: str, max_model_len: int) -> GenRequest:
    key = "text" if body.get("text") is not None else "input_ids"
    prompt = _prompt(body, key)
    sp = get_dict(body, "sampling_params")
    given = get_int(sp, "max_new_tokens", 128, "sampling_params.max_new_tokens")  # SGLang's default
    max_tokens = max_model_len - len(prompt) if given is None else given
    min_tokens = get_int(sp, "min_new_tokens", 0, "sampling_params.min_new_tokens") or 0
    check_lengths(prompt, max_tokens, min_tokens, max_model_len, "max_new_tokens", key)
    rid = body.get("rid")
    if rid is not None and not isinstance(rid, str):
        raise ApiError(400, "'rid' must be a string (batched requests are not supported)", "rid")
    seed = get_int(sp, "sampling_seed", None, "sampling_params.sampling_seed")
    ignore_eos = get_bool(sp, "ignore_eos", "sampling_params.ignore_eos")
    return GenRequest(
        prompt, max_tokens, min_tokens, ignore_eos, get_bool(body, "stream"), seed=seed, opts={"rid": rid}
    )


def sglang_error(status: int, kind: str, message: str, param: str | None = None) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": {"message": message}})


class SGLangWire(Wire):
    def __init__(self, rid: str, answer: Answer) -> None:
        self.rid_json, self.answer = orjson.dumps(rid), answer
        self.text = bytearray()  # the JSON-escaped text so far
        self.ids = bytearray()  # "12,34," so far
        self.indices: list[int] = []
        self.sched = b""  # the scheduler's timing fields, fixed once the first token is out
        self.to_wall = 0.0  # wall clock − the engine's perf_counter, taken once per response

    def _sched(self) -> bytes:
        if self.sched:
            return self.sched
        seq = self.seq
        assert seq is not None
        if seq.t_first_sched < 0:
            return b""
        self.to_wall = self.to_wall or time.time() - time.perf_counter()
        out = b',"forward_entry_time":%r' % (seq.t_first_sched + self.to_wall)
        first = seq.t_first_token > 0
        if first:
            out += b',"prefill_finished_time":%r' % (seq.t_first_token + self.to_wall)
        prefill = seq.t_first_token - seq.t_first_sched if first else 0.0
        out += b',"queue_time":%r,"prefill_waiting_latency":0.0,"prefill_launch_latency":%r' % (
            seq.t_first_sched - seq.arrival, prefill,
        )  # fmt: skip
        if first:
            self.sched = out
        return out

    def _meta(self, n: int, finish: bytes = b"null", tail: bytes = b"") -> bytes:
        seq = self.seq
        assert seq is not None
        return b'{"id":%b,"finish_reason":%b,"prompt_tokens":%d,"weight_version":"default","num_retractions":%d%b,"reasoning_tokens":%d,"completion_tokens":%d,"cached_tokens":%d%b}' % (
            self.rid_json, finish, seq.prompt_len, seq.preemptions, self._sched(),
            min(n, self.answer.reasoning), n, max(seq.num_cached, 0), tail,
        )  # fmt: skip

    def _event(self, n: int, index: int, meta: bytes) -> bytes:
        self.indices.append(index)
        self.text += VOCAB_JSON[index][1:-1]
        self.ids += b"%d," % index
        return b'data: {"text":"%b","output_ids":[%b],"meta_info":%b}\n\n' % (self.text, self.ids[:-1], meta)

    def _events(self, indices: list[int], meta: bytes) -> bytes:
        """A speculative step's tokens in one event (the cumulative text and ids grow by all of them)."""
        self.indices += indices
        self.text += joined_json(indices)[1:-1]
        self.ids += b"".join([b"%d," % i for i in indices])
        return b'data: {"text":"%b","output_ids":[%b],"meta_info":%b}\n\n' % (self.text, self.ids[:-1], meta)

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        return [], Emit(
            fmt=lambda k, index: frame(self._event(k, index, self._meta(k))),
            many=lambda k, indices: frame(self._events(indices, self._meta(k))),
        )

    def _finish(self, t: Tally) -> bytes:
        if t.finish == "length":
            return b'{"type":"length","length":%d}' % t.completion_tokens
        return b'{"type":"stop","matched":%d}' % EOS_ID

    def _timing(self, t: Tally, tokens: bool = True) -> bytes:
        """The HTTP process's timing on the last meta_info, in SGLang's order. The finish is the engine's
        (first token + decode), so finish − prefill_finished_time is the engine's decode."""
        seq = self.seq
        assert seq is not None
        head = b',"e2e_latency":%r,"request_received_ts":%r,"api_server_dispatch_finish_ts":%r'
        if not (tokens and self._sched() and seq.t_first_token > 0):
            return (head + b',"request_finished_ts":%r') % (
                t.e2e_s, t.received_ts, t.received_ts, t.received_ts + t.e2e_s,
            )  # fmt: skip
        first = seq.t_first_token + self.to_wall
        finished = first + t.decode_s
        out = (head + b',"response_sent_to_client_ts":%r,"request_finished_ts":%r,"inference_time":%r') % (
            finished - t.received_ts, t.received_ts, t.received_ts, first, finished, t.prefill_s + t.decode_s,
        )  # fmt: skip
        if t.decode_s > 0:
            out += b',"decode_throughput":%r' % (t.completion_tokens / t.decode_s)
        return out

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        meta = self._meta(n, self._finish(tally), sglang_spec(self.seq, n) + self._timing(tally))
        return [self._events(indices, meta), DONE]

    def empty(self, tally: Tally) -> list[bytes]:
        meta = self._meta(0, self._finish(tally), self._timing(tally, tokens=False))
        return [b'data: {"text":"","output_ids":[],"meta_info":%b}\n\n' % meta, DONE]

    def body(self, indices: list[int], tally: Tally) -> bytes:
        n = len(indices)
        meta = self._meta(
            n, self._finish(tally), sglang_spec(self.seq, n) + self._timing(tally, tokens=n > 0)
        )
        ids = b",".join(b"%d" % i for i in indices)
        return b'{"text":%b,"output_ids":[%b],"meta_info":%b}' % (orjson.dumps(_text(indices)), ids, meta)


# -- TGI ------------------------------------------------------------------------------------------


def parse_tgi(body: dict[str, Any], model: str, max_model_len: int) -> GenRequest:
    inputs = body.get("inputs")
    if not isinstance(inputs, str) or not inputs:
        raise ApiError(400, "Input validation error: `inputs` cannot be empty", "inputs")
    prompt = _prompt(body, "inputs")
    params = get_dict(body, "parameters")
    given = get_int(params, "max_new_tokens", 100, "parameters.max_new_tokens")  # TGI's default
    max_tokens = max_model_len - len(prompt) if given is None else given
    if max_tokens < 1:
        raise ApiError(
            400, "Input validation error: `max_new_tokens` must be strictly positive", "max_new_tokens"
        )
    check_lengths(prompt, max_tokens, 0, max_model_len, "max_new_tokens", "inputs")
    seed = get_int(params, "seed", None, "parameters.seed")
    opts = {"details": get_bool(params, "details", "parameters.details"), "seed": seed}
    return GenRequest(prompt, max_tokens, stream=True, seed=seed, opts=opts)


def tgi_error(status: int, kind: str, message: str, param: str | None = None) -> tuple[int, bytes]:
    """TGI answers a validation error with 422 and {"error", "error_type"}."""
    if status == 400:
        return 422, orjson.dumps({"error": message, "error_type": "validation"})
    error_type = {429: "overloaded", 503: "overloaded"}.get(status, "generation")
    return status, orjson.dumps({"error": message, "error_type": error_type})


class TGIWire(Wire):
    TOKEN = b'data:{"index":%d,"token":{"id":%d,"text":%b,"logprob":%b,"special":false},"generated_text":%b,"details":%b}\n\n'

    def __init__(self, answer: Answer, opts: dict[str, Any]) -> None:
        self.answer, self.details, self.seed = answer, opts.get("details", False), opts.get("seed")
        self.indices: list[int] = []

    def _event(self, n: int, index: int, text: bytes = b"null", details: bytes = b"null") -> bytes:
        self.indices.append(index)
        return self.TOKEN % (n, index, VOCAB_JSON[index], LOGPROB[index], text, details)

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        return [], Emit(fmt=lambda k, index: frame(self._event(k, index)))

    def _details(self, t: Tally) -> bytes:
        if not self.details:
            return b"null"
        reason = "length" if t.finish == "length" else "eos_token"
        d = {
            "finish_reason": reason,
            "generated_tokens": t.completion_tokens,
            "seed": self.seed,
            "input_length": t.prompt_tokens,
        }
        return orjson.dumps(d)

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        first = n - len(indices) + 1  # TGI writes one event per token, a speculative step's too
        events = [self._event(first + i, index) for i, index in enumerate(indices[:-1])]
        text = orjson.dumps(_text([*self.indices, indices[-1]]))
        return [*events, self._event(n, indices[-1], text, self._details(tally))]

    def empty(self, tally: Tally) -> list[bytes]:
        token = b'{"id":%d,"text":"","logprob":0.0,"special":true}' % EOS_ID
        return [
            b'data:{"index":1,"token":%b,"generated_text":"","details":%b}\n\n'
            % (token, self._details(tally))
        ]

    def body(self, indices: list[int], tally: Tally) -> bytes:  # /generate_stream always streams
        raise AssertionError("TGI's /generate_stream has no non-streaming form")


# -- llama.cpp ------------------------------------------------------------------------------------


def parse_llamacpp(body: dict[str, Any], model: str, max_model_len: int) -> GenRequest:
    prompt = _prompt(body, "prompt")
    n_predict = get_int(body, "n_predict", None)
    if n_predict is None:  # llama.cpp: n_predict, else max_completion_tokens, else max_tokens, else -1
        n_predict = get_int(body, "max_completion_tokens", None) or get_int(body, "max_tokens", -1)
    assert n_predict is not None
    if n_predict == 0 or n_predict < -1:
        raise ApiError(
            400,
            f"n_predict must be -1 (until EOS or the context is full) or >= 1, got {n_predict}",
            "n_predict",
        )
    max_tokens = max_model_len - len(prompt) if n_predict == -1 else n_predict
    check_lengths(prompt, max_tokens, 0, max_model_len, "n_predict", "prompt")
    raw = body.get("prompt")
    opts = {
        "n_predict": n_predict,
        "prompt": raw if isinstance(raw, str) else " ".join(prompt),
        "seed": get_int(body, "seed", None),
        "ignore_eos": get_bool(body, "ignore_eos"),
        "stream": get_bool(body, "stream"),
    }
    return GenRequest(prompt, max_tokens, 0, opts["ignore_eos"], opts["stream"], seed=opts["seed"], opts=opts)


def llamacpp_error(status: int, kind: str, message: str, param: str | None = None) -> tuple[int, bytes]:
    """llama.cpp's format_error_response: {"error": {code, message, type}}."""
    kinds = {400: "invalid_request_error", 404: "not_found_error", 503: "unavailable_error"}
    return status, orjson.dumps(
        {"error": {"code": status, "message": message, "type": kinds.get(status, "server_error")}}
    )


class LlamaCppWire(Wire):
    # one event per token, a speculative step's too: llama-server sends each accepted token on its own
    # (a real capture with a drafter: tests/fixtures/llamacpp-draft-chat-stream.txt, 40 tokens in 40 events)
    PARTIAL = b'data: {"index":0,"content":%b,"tokens":[%d],"stop":false,"id_slot":0,"tokens_predicted":%d,"tokens_evaluated":%d}\n\n'

    def __init__(self, answer: Answer, model: str, opts: dict[str, Any]) -> None:
        self.answer, self.model, self.opts = answer, model, opts

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        evaluated = self.seq.prompt_len if self.seq is not None else 0
        return [], Emit(fmt=lambda k, index: frame(self.PARTIAL % (VOCAB_JSON[index], index, k, evaluated)))

    def _final(self, content: str, t: Tally) -> dict[str, Any]:
        n, p = t.completion_tokens, t.prompt_tokens
        prompt_n, prompt_ms, predicted_ms = p - t.cached_tokens, t.prefill_s * 1e3, t.decode_s * 1e3
        timings = {
            "cache_n": t.cached_tokens,
            "prompt_n": prompt_n,
            "prompt_ms": round(prompt_ms, 3),
            "prompt_per_token_ms": round(prompt_ms / prompt_n, 3) if prompt_n else 0.0,
            "prompt_per_second": round(1e3 * prompt_n / prompt_ms, 3) if prompt_ms else 0.0,
            "predicted_n": n,
            "predicted_ms": round(predicted_ms, 3),
            "predicted_per_token_ms": round(predicted_ms / n, 3) if n else 0.0,
            "predicted_per_second": round(1e3 * n / predicted_ms, 3) if predicted_ms else 0.0,
            **llamacpp_draft(self.seq),
        }
        o = self.opts
        settings = {"seed": o["seed"] if o["seed"] is not None else 4294967295, **LLAMACPP_SAMPLING}
        settings.update(
            stop=[],
            max_tokens=o["n_predict"],
            n_predict=o["n_predict"],
            n_keep=0,
            n_discard=0,
            ignore_eos=o["ignore_eos"],
            stream=o["stream"],
            **LLAMACPP_SETTINGS_TAIL,
        )
        if o["ignore_eos"]:  # llama-server lists the end-of-generation tokens it suppresses
            settings["logit_bias"] = [{"bias": None, "token": EOS_ID}]
        return {
            "index": 0,
            "content": content,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": self.model,
            "tokens_predicted": n,
            "tokens_evaluated": p,
            "generation_settings": settings,
            "prompt": o["prompt"],
            "has_new_line": "\n" in content,
            "truncated": False,
            "stop_type": "limit" if t.finish == "length" else "eos",
            "stopping_word": "",
            "tokens_cached": p + n,
            "timings": timings,
        }

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        first, p = n - len(indices) + 1, tally.prompt_tokens
        partials = [
            self.PARTIAL % (VOCAB_JSON[index], index, first + i, p) for i, index in enumerate(indices)
        ]
        return [*partials, b"data: " + orjson.dumps(self._final("", tally)) + b"\n\n"]

    def empty(self, tally: Tally) -> list[bytes]:
        return [b"data: " + orjson.dumps(self._final("", tally)) + b"\n\n"]

    def body(self, indices: list[int], tally: Tally) -> bytes:
        return orjson.dumps(self._final(_text(indices), tally))
