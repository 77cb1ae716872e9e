"""The server figures as typed dicts: every key `analysis/server.py` fills, as summary.json writes them.

They are `TypedDict`s rather than dataclasses: a pass-through of the engine's series (whichever of
them the engine exposes; analysis/server.py fills them with one loop over a window's keys), tests
and benches read them by key, and summary.json writes them as they are. The TypedDicts still name
and type every key. analysis/results.py re-exports them beside the other result types. A replica
set's per-replica figures (`ReplicaSet`, analysis/replicas.py) hang under `replicas`; a router's own
page's (`RouterFigures`, analysis/router.py) are summary.json `router`.
"""

from __future__ import annotations

from typing import TypedDict


class TtftCompare(TypedDict):
    """Client vs engine mean TTFT over the same span of first tokens."""

    window: list[float]
    client_mean_s: float
    server_mean_s: float


class ServerFigures(TypedDict):
    """Every server figure over one time window (analysis/server.py `window_figures`); None: not measured."""

    scrapes: int
    running_mean: float | None
    running_max: float | None
    waiting_mean: float | None
    waiting_max: float | None
    kv_cache_usage_mean: float | None
    kv_cache_usage_max: float | None
    prefix_cache_hit_rate: float | None
    prefix_cache_hit_source: str | None
    prefix_cache_queried_tokens: float | None
    prefix_cache_hit_tiers: dict[str, float] | None  # each cache tier's share of the hits (vLLM)
    # the engine's multimodal cache (vLLM's `mm_cache_*`): images looked up, and the share found there
    image_cache_queries: float | None
    image_cache_hit_rate: float | None
    preemptions: float | None
    prompt_tokens: float | None
    generation_tokens: float | None
    server_gen_tok_per_s: float | None
    tokens_per_step: float | None
    server_ttft_mean_s: float | None
    server_ttft_p50_s: float | None
    server_ttft_p90_s: float | None
    server_ttft_p99_s: float | None
    server_ttft_count: float | None
    server_e2e_mean_s: float | None
    server_queue_mean_s: float | None
    # speculative decoding (analysis/server.py `_spec_figures`): draft tokens, accepted / drafted, and
    # 1 + accepted / drafts; None on a server that does not speculate (or does not say)
    spec_draft_tokens: float | None
    spec_acceptance_rate: float | None
    spec_acceptance_length: float | None
    # each draft position's acceptance: accepted there / drafts (vLLM) or / drafted there (TensorRT-LLM)
    spec_acceptance_by_position: list[float] | None
    counter_window: list[float] | None
    # LoRA adapters (analysis/lora.py; vLLM with --enable-lora): its --max-loras, the most adapters
    # running at one scrape and which; the share of scrapes with a request deferred (waiting for an
    # adapter slot) and the most deferred at one scrape. None where the engine does not say
    lora_max_loras: float | None
    lora_running_max: float | None
    lora_running_max_adapters: list[str] | None
    waiting_deferred_share: float | None
    waiting_deferred_max: float | None


class ReplicaFigures(TypedDict):
    """One replica's figures over a window (analysis/replicas.py): its own series, read alone."""

    replica: str  # the instance (`host:port`), the engine (DP rank), or `instance engine=N`
    requests: float | None  # its engine's finished requests (Δ E2E histogram count, else TTFT's)
    requests_share: float | None  # of the replicas' sum
    generation_tokens: float | None
    server_gen_tok_per_s: float | None
    running_mean: float | None
    running_max: float | None
    waiting_max: float | None
    kv_cache_usage_max: float | None
    prefix_cache_hit_rate: float | None
    server_ttft_mean_s: float | None
    server_queue_mean_s: float | None


class ReplicaSet(TypedDict):
    """The replicas behind one target over a window: how evenly the requests were spread among them."""

    by: str  # the label that tells them apart: "instance", "engine" or "instance+engine"
    count: int
    by_replica: list[ReplicaFigures]  # in replica order (natural: engine 10 after 9)
    busiest: str | None  # the replica that finished the most requests (ties: the first); None without counts
    imbalance: float | None  # the busiest's share × count: 1.0 is an even spread; None without counts


class ServerSummary(ServerFigures):
    """summary.json `server`: the engine, where each series came from, the run window's figures."""

    engine: str
    simulated: bool
    scrape_interval_s: float | None
    sources: dict[str, str]
    client_minus_server_ttft_s: float | None
    ttft_compare: TtftCompare | None
    client_cached_share: float | None
    replicas: ReplicaSet | None  # None: fewer than 2 replicas on the page(s)


class StepServer(ServerFigures):
    """A step's `server`: the figures over its stage (warm-up/cool-down excluded) and the TTFT gap."""

    client_minus_server_ttft_s: float | None
    ttft_compare: TtftCompare | None
    client_cached_share: float | None
    window: list[float]
    replicas: ReplicaSet | None


class RouterBackend(TypedDict):
    """One backend as the router's own page tells it over a window (analysis/router.py)."""

    backend: str  # the router's `worker` label: the URL it was given
    requests: float | None  # the requests it passed to this backend (each retry again)
    requests_share: float | None  # of the router's sum over its backends
    failures: float | None  # of those, the ones its circuit breaker counted as failed
    running_max: float | None  # the most in flight at one scrape (where the router says)
    unhealthy_scrapes: int | None  # scrapes at which its health check had it unhealthy
    circuit_opened: bool | None  # its circuit breaker was open or half-open at some scrape
    engine_finished: float | None  # the same backend's engine page: its finished requests (a replica scraped)
    queue_max: float | None  # the most waiting there at one scrape, as the router read it (the EPP's)


class RouterFigures(TypedDict):
    """summary.json `router`: the router's spread of the requests over the run's window, and per level."""

    router: str  # vllm-router, sglang-router, SGLang Model Gateway
    window: list[float]
    requests: float  # the sum over its backends
    retries: float | None
    retry_backoff_s: float | None  # the backoff it slept before those retries, in all
    by_backend: list[RouterBackend]  # in the backends' natural order
    busiest: str | None  # the backend that got the most requests (ties: the first)
    imbalance: float | None  # the busiest's share × the backend count: 1.0 is an even spread
    steps: list[dict]  # per level: these keys (`steps` empty) and `step`
    # how a cache-aware policy placed the requests, by its own outcome names (vllm-router: prefix_hit,
    # prefix_miss, load_imbalance, missing_tokens); None: the router counts no such thing
    prefix_decisions: dict[str, float] | None
    # the routing policy its page names (a `policy` label: smg's worker selections, vllm-router's cache-aware
    # decisions; the EPP's scorers, joined by +); None where it names none or several
    policy: str | None
    # the router's own error answers by code over the window (the EPP's `request_error_total`: a shed request
    # is InferencePoolResourceExhausted, a 429); None where it counts none
    errors: dict[str, float] | None
    unplaced: float | None  # requests it could place on no backend (the EPP's failed scheduling attempts)
    pick_s: float | None  # the mean time it took to pick a backend (the EPP's scheduler e2e)
    held_s: float | None  # the mean time a request it let through waited in its own queue (EPP flow control)
    held: float | None  # how many it let through that queue in the window
    ready_endpoints: list[float] | None  # [least, most] backends it counted ready at a scrape in the window
    # how it split the requests it placed, by decision type (the EPP's prefill/decode disaggregation:
    # decode-only, prefill-decode, encode-decode, encode-prefill-decode); None where it counts no such thing
    disagg_decisions: dict[str, float] | None


class GatewayLevel(TypedDict):
    """One window's cut of the TTFT at a gateway that times it itself (analysis/gatewaypage.py)."""

    requests: float | None  # first tokens the gateway timed in the window (its histogram's count)
    ttft_mean_s: float | None  # the gateway's TTFT: its headers in → the first token back through it
    ttft_p50_s: float | None  # histogram_quantile, bucket resolution
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    e2e_mean_s: float | None  # its request duration: headers in → the last byte back
    compare_window: list[float] | None  # the span the three means are taken over (as `ttft_compare`)
    client_ttft_mean_s: float | None  # the client's, requests whose first token came in the span
    gateway_ttft_compared_s: float | None  # the gateway's over the same span
    engine_ttft_mean_s: float | None  # the engine's over the same span (an engine page scraped)
    client_minus_gateway_ttft_s: float | None  # the client and the network up to the gateway
    gateway_minus_engine_ttft_s: float | None  # the gateway and what stands behind it up to the engine


class GatewayFigures(GatewayLevel):
    """summary.json `gateway_page`: the run window's cut and each level's."""

    source: str  # the convention its names follow (OpenTelemetry GenAI metrics)
    metric: str  # the TTFT histogram read
    window: list[float]
    steps: list[dict]  # per level: GatewayLevel's keys and `step`
