"""One request's outcome, as a `requests.csv` row.

The column list here is the run folder's contract (README.md § "requests.csv columns"); analysis reads the
same names. TPOT is defined here, once, at the moment a row is made, so the live view and the
analysis cannot disagree about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

COLUMNS: tuple[str, ...] = (
    "run_id",
    "worker",
    "user",
    "session",
    "turn",
    "request_id",
    "scenario",
    "dataset",
    "step",
    "target_users",
    "t_scheduled_unix",
    "t_start_unix",
    "ttft_s",
    "e2e_s",
    "tpot_s",
    "itl_s",
    "n_chunks",
    "prompt_tokens",
    "output_tokens",
    "cached_tokens",
    "tokens_source",
    "ok",
    "http_status",
    "error",
    "error_detail",
    "finish_reason",
    # appended (never reordered): reasoning and tool calls, failure pacing, tenants, the API used
    "ttfo_s",
    "reasoning_tokens",
    "tool_ttft_s",
    "tool_call_tokens",
    "backoff_s",
    "tenant",
    "api",
    "engine_prefill_s",
    "engine_decode_s",
    "engine_load_s",
    "engine_queue_s",
    "new_connection",
    "spec_draft_tokens",
    "spec_accepted_tokens",
    "spec_steps",
    "model",
    "served_model",
    "gateway_attempts",
    "images",
)


def tpot_s(e2e_s: float | None, ttft_s: float | None, output_tokens: int | None) -> float | None:
    """TPOT = (E2E − TTFT) / (output_tokens − 1); undefined for ≤ 1 token, as vLLM's benchmark."""
    if e2e_s is None or ttft_s is None or not output_tokens or output_tokens <= 1:
        return None
    return (e2e_s - ttft_s) / (output_tokens - 1)


@dataclass(slots=True)
class RequestRecord:
    """Everything measured about one request; `row()` renders it in COLUMNS order."""

    run_id: str = ""
    worker: str = ""
    user: int = 0
    session: str = ""
    turn: int = 0
    request_id: str = ""
    scenario: str = ""
    dataset: str = ""
    step: int = 0
    target_users: int = 0
    t_scheduled_unix: float | None = None
    t_start_unix: float = 0.0
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: list[float] = field(default_factory=list)
    n_chunks: int = 0
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    tokens_source: str = ""
    ok: bool = False
    http_status: int | None = None
    error: str = ""
    error_detail: str = ""
    finish_reason: str = ""
    ttfo_s: float | None = None  # send → first answer token (content or tool call), reasoning models
    reasoning_tokens: int | None = None  # from usage details, else counted reasoning chunks
    tool_ttft_s: float | None = None  # send → first tool-call delta (the function name counts)
    tool_call_tokens: int | None = None  # tool-call argument chunks
    backoff_s: float | None = None  # how long this user paused after failures before sending this request
    tenant: str = ""  # the mix class of the request (`--mix`), empty otherwise
    api: str = ""  # the API the request used (`--api`: chat, completions, responses, messages, sglang, tgi, llamacpp, ollama)
    # the server's own timing carried in its stream (core/result.py EngineTiming), empty where none
    engine_prefill_s: float | None = None
    engine_decode_s: float | None = None
    engine_load_s: float | None = None
    engine_queue_s: float | None = None
    # the request opened its connection: true / false (empty: not said)
    new_connection: bool | None = None
    # the server's speculative decoding of the request (core/result.py SpecDecode), empty where none
    spec_draft_tokens: int | None = None
    spec_accepted_tokens: int | None = None
    spec_steps: int | None = None
    # the model the request named: `--model`, one of `--models`, or its mix class's (a LoRA adapter, say)
    model: str = ""
    # the model that answered, as the answer or a gateway's header named it ("" where neither did)
    served_model: str = ""
    # upstream attempts a gateway made before the answering one: retries and fallbacks (empty: not said)
    gateway_attempts: int | None = None
    # the images the request carried (every image part of every message sent, history included)
    images: int = 0

    @property
    def tpot_s(self) -> float | None:
        return tpot_s(self.e2e_s, self.ttft_s, self.output_tokens)

    def row(self) -> list[str]:
        """Plain strings: cheap to send to the master (msgpack) and to write as CSV."""
        return [
            self.run_id,
            self.worker,
            str(self.user),
            self.session,
            str(self.turn),
            self.request_id,
            self.scenario,
            self.dataset,
            str(self.step),
            str(self.target_users),
            _t(self.t_scheduled_unix),
            _t(self.t_start_unix),
            _s(self.ttft_s),
            _s(self.e2e_s),
            _s(self.tpot_s),
            _gaps(self.itl_s),
            str(self.n_chunks),
            _i(self.prompt_tokens),
            _i(self.output_tokens),
            _i(self.cached_tokens),
            self.tokens_source,
            "true" if self.ok else "false",
            _i(self.http_status),
            self.error,
            self.error_detail.replace("\n", " ")[:300],
            self.finish_reason,
            _s(self.ttfo_s),
            _i(self.reasoning_tokens),
            _s(self.tool_ttft_s),
            _i(self.tool_call_tokens),
            _s(self.backoff_s),
            self.tenant,
            self.api,
            _s(self.engine_prefill_s),
            _s(self.engine_decode_s),
            _s(self.engine_load_s),
            _s(self.engine_queue_s),
            "" if self.new_connection is None else "true" if self.new_connection else "false",
            _i(self.spec_draft_tokens),
            _i(self.spec_accepted_tokens),
            _i(self.spec_steps),
            self.model,
            self.served_model,
            _i(self.gateway_attempts),
            str(self.images),
        ]


def _gaps(itl_s: list[float]) -> str:
    """`;`-joined gaps, µs resolution, in one C-level format call (a row can carry thousands)."""
    return ("%.6f;" * len(itl_s))[:-1] % tuple(itl_s)


def _t(v: float | None) -> str:
    """Wall-clock seconds with µs resolution."""
    return "" if v is None else f"{v:.6f}"


def _s(v: float | None) -> str:
    return "" if v is None else f"{v:.6f}"


def _i(v: int | None) -> str:
    return "" if v is None else str(v)
