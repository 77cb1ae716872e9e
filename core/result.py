"""`StreamResult`: what one streamed request produced, whatever the server's API.

Every transport and every API parser (loadgen/transport/apis/) fills this same object (in
perf_counter seconds; errors are short categories plus the server's message, never exceptions), and
core/measure.py turns it into the row's figures — so a metric is defined once, not once per server
format. A parser sorts each generated chunk into one of three kinds: reasoning (a reasoning model's
thinking, in its own stream field or inline in the text: `<think>` tags, gpt-oss's channels),
answer text, or a tool call; `text_times` holds every generated chunk's arrival whatever its kind,
the other fields say which were which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class EngineTiming(NamedTuple):
    """The server's own timing of one request, as its stream's last event states it (seconds).

    Where no engine spans come (llama-server, Ollama and SGLang export none a row can join; vLLM's
    need a collector), these are the only view inside the server: `prefill_s` — llama-server's
    `timings.prompt_ms` (its slot's prompt processing, from the slot taking the task to the first
    sampled token), SGLang's (with `--enable-metrics`) from its scheduler batching the request to the
    first token, vLLM's `metrics.time_to_first_token_ms` (with `--enable-per-request-metrics`: first
    scheduled → first token), TensorRT-LLM's `server_ttft` − `server_queue` (its event after `[DONE]`,
    asked per request), Ollama's `prompt_eval_duration` (which starts before its runner waits
    for a free sequence slot, so under load it includes that queue); `decode_s` — `predicted_ms` /
    SGLang's stamps / vLLM's `generation_time_ms` / `eval_duration` (first token → last); `load_s` —
    Ollama's `load_duration` (the model loaded, or waited for, inside this request); `queue_s` — the
    wait for the scheduler to take the request, where the server states it apart (vLLM's
    `queue_time_ms`, SGLang's `queue_time`, TensorRT-LLM's `server_queue`); None where not reported.
    """

    prefill_s: float
    decode_s: float
    load_s: float | None = None
    queue_s: float | None = None


class SpecDecode(NamedTuple):
    """The server's speculative decoding of one request, as its stream's last event states it.

    `draft_tokens` the tokens its drafter proposed, `accepted_tokens` how many of them the target
    model accepted, `steps` the verify steps that had a draft (None where the server does not say):
    vLLM's `metrics.speculative_decoding` (`--per-request-spec-decode-metrics summary`:
    num_draft_tokens, num_accepted_draft_tokens, num_spec_steps), SGLang's meta_info
    (spec_draft_token_num, spec_accept_token_num, spec_verify_ct), llama-server's `timings`
    (draft_n, draft_n_accepted; no step count). A step streams its verified token plus the accepted
    ones in one chunk, so these say why a chunk carries several tokens.
    """

    draft_tokens: int
    accepted_tokens: int
    steps: int | None = None


@dataclass(slots=True)
class StreamResult:
    t_send: float = 0.0
    status: int | None = None
    text_times: list[float] = field(default_factory=list)  # arrival of each chunk of generated tokens
    t_last: float | None = None  # arrival of the last data event (usage chunk included)
    n_events: int = 0
    n_bytes: int = 0
    parts: list[str] = field(
        default_factory=list
    )  # the answer's text (reasoning and tool calls not included)
    usage: dict | None = (
        None  # the server's counts in OpenAI's `usage` shape (each API parser converts to it)
    )
    tokens_source: str = "usage"  # where `usage` came from: usage, meta_info (SGLang), details (TGI), timings (llama.cpp), eval_count (Ollama)
    finish_reason: str = ""
    done: bool = False
    # the body was read to its end (its end marker, an error event or the message's end); a user
    # stopped after that, before its greenlet resumed, keeps the complete row (loadgen/request.py)
    read_to_end: bool = False
    error: str = ""
    error_detail: str = ""
    # -- what kind each chunk was ----------------------------------------------------------------
    t_first_answer: float | None = None  # first chunk of the answer: content or a tool call
    reasoning_chunks: int = 0  # chunks that carried reasoning only
    # the reasoning's text, never sent back (a real client does not); `--tokenizer` counts it where the
    # server stated no count (loadgen/tokencount.py)
    reasoning_parts: list[str] = field(default_factory=list)
    splits_reasoning: bool = True  # False: this API streams reasoning as plain text (no TTFO to tell)
    t_first_tool: float | None = None  # first tool-call delta (it carries the function name)
    tool_arg_chunks: int = 0  # tool-call deltas carrying argument fragments
    tool_events: int = 0  # events carrying tool-call deltas (a name, argument fragments or both)
    tool_calls: list[dict] | None = None  # the calls: [{id, name, arguments}] by index, when any
    think: int = 0  # where the answer text stands against inline reasoning (loadgen/transport/apis/inline.py)
    markup_tail: str = ""  # the last characters of inline reasoning, where a split end marker is sought
    scratch: Any = None  # an API parser's own state between events (e.g. SGLang's cumulative text length)
    engine: EngineTiming | None = None  # the server's own durations, where its stream carries them
    spec: SpecDecode | None = None  # the server's speculative decoding of the request, where stated
    # the request opened its connection (none was kept alive for it: its TTFT holds the connect);
    # None where the client did not say
    new_connection: bool | None = None
    # the model that answered, as the answer names it (its `model` field, or a gateway's header: a
    # fallback's or a router's choice); "" where neither says (loadgen/transport/gateway.py)
    served_model: str = ""
    # upstream attempts a gateway made before the one that answered (retries, fallbacks; None: not said)
    gateway_attempts: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)
