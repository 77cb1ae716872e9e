"""Engine metric names → common server series, from the rows of `server_metrics.csv`.

Each engine names the same facts differently (and some do not expose them at all): one `Engine` per
server below says where it keeps each common series — vLLM, SGLang, TGI, llama-server, LMDeploy,
TensorRT-LLM, NVIDIA Dynamo's frontend and NVIDIA NIM; README.md § Engine mappings is the same table for readers, with what each name counts.

llama-server's `prompt_tokens_total` counts only the prompt tokens it computed (its cache's are in
`prompt_tokens_cached_total`, tools/server/server-task.cpp): the prompt tokens are both, as the
other engines count them, and a step's tokens are the computed ones.

Names are the sample names as prometheus_client's parser gives them (loadgen/monitors/servermetrics.py):
counters always end in `_total`, so TGI's `tgi_batch_inference_count` arrives as
`tgi_batch_inference_count_total`. How the samples are read — counters summed over label sets after
correcting resets, histograms, labels — is analysis/samples.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Engine:
    """Where one engine keeps each common series; the first name present on the page wins."""

    name: str
    prefix: str | tuple[str, ...]  # what most of its names start with (str.startswith's argument)
    running: tuple[str, ...]
    waiting: tuple[str, ...]
    kv_usage: tuple[str, ...] = ()
    hits_queries: tuple[tuple[str, str], ...] = ()
    hit_rate_gauge: tuple[str, ...] = ()
    preemptions: tuple[str, ...] = ()
    prompt_tokens: tuple[str, ...] = ()
    generation_tokens: tuple[str, ...] = ()
    step_tokens: tuple[str, ...] = ()  # histogram of tokens per engine step (mean = sum / count)
    step_count: tuple[
        str, ...
    ] = ()  # counter of engine steps: tokens per step = (prompt + generated) / steps
    # a counter of prompt tokens served from the cache that `prompt_tokens` leaves out (llama-server):
    # the hits, and with `prompt_tokens` the queries and the prompt tokens
    cached_prompt: tuple[str, ...] = ()
    # a counter of cached prompt tokens labelled `source` by the cache tier that served them (vLLM: device,
    # host, disk, p2p, external_unspecified): how much of the hit rate a KV connector's tiers brought
    hits_by_tier: tuple[str, ...] = ()
    # the multimodal cache (vLLM): counters of the image items looked up and of those found — the same
    # image sent again (a conversation's history, a repeated set) whose processed form was kept
    mm_hits_queries: tuple[tuple[str, str], ...] = ()
    # speculative decoding: counters of drafts (verify steps with a draft), draft tokens and accepted
    # draft tokens (vLLM); or gauges of the engine's recent acceptance length and rate (SGLang, which
    # sets them from its last logged interval: a window's figure is their mean over its scrapes); or
    # token counters without a count of drafts and a length gauge (TensorRT-LLM)
    spec_drafts: tuple[str, ...] = ()
    spec_draft_tokens: tuple[str, ...] = ()
    spec_accepted: tuple[str, ...] = ()
    spec_length_gauge: tuple[str, ...] = ()
    spec_rate_gauge: tuple[str, ...] = ()
    # … and per draft position (label `spec_pos_label`): the accepted tokens at each (vLLM: over its
    # drafts; each draft has one token at every position), or the accepted and the drafted (TensorRT-LLM)
    spec_accepted_by_pos: tuple[str, ...] = ()
    spec_drafted_by_pos: tuple[str, ...] = ()
    spec_pos_label: str = "position"
    ttft: tuple[str, ...] = ()  # histogram base names (+ _bucket, _sum, _count)
    e2e: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()
    # LoRA adapters (vLLM with --enable-lora): an info gauge whose value is the unix time of its last
    # update and whose labels say the state — `max_lora`, `running_lora_adapters`, `waiting_lora_adapters`
    # (adapter names comma-joined); every label set ever seen stays on the page, the current one is the
    # set with the largest value (analysis/lora.py)
    lora_info: tuple[str, ...] = ()
    # waiting requests by `reason`: `capacity` (no room in the batch) or `deferred` (held back by a
    # transient constraint: the LoRA budget); they sum to `waiting`
    waiting_by_reason: tuple[str, ...] = ()


# vLLM's hit rate: its prompt tokens served from a cache over its prompt tokens, both counted once per
# request when it is prefilled (`prompt_tokens_cached` = its local prefix cache's tokens + those a KV
# connector brought from another tier or instance — CPU offload, LMCache, disk, p2p; v1/metrics/stats.py
# PromptTokenStats), so the rate is the one its usage reports request by request. Without it (older
# vLLM), `prefix_cache_hits` / `prefix_cache_queries`: the local cache only, a preempted request looked
# up again when readmitted, and in releases that recorded lookups before admission (v1's scheduler now
# records "at admission so unscheduled lookups are not counted") every lookup of a waiting request.
VLLM = Engine(
    name="vllm",
    prefix="vllm:",
    running=("vllm:num_requests_running",),
    waiting=("vllm:num_requests_waiting",),
    kv_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    hits_queries=(
        ("vllm:prompt_tokens_cached_total", "vllm:prompt_tokens_total"),
        ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"),
        ("vllm:gpu_prefix_cache_hits_total", "vllm:gpu_prefix_cache_queries_total"),
    ),
    hit_rate_gauge=("vllm:gpu_prefix_cache_hit_rate",),
    hits_by_tier=("vllm:prompt_tokens_cached_by_source_total",),
    mm_hits_queries=(("vllm:mm_cache_hits_total", "vllm:mm_cache_queries_total"),),  # v1/metrics/loggers.py
    spec_accepted_by_pos=("vllm:spec_decode_num_accepted_tokens_per_pos_total",),
    preemptions=("vllm:num_preemptions_total",),
    prompt_tokens=("vllm:prompt_tokens_total",),
    generation_tokens=("vllm:generation_tokens_total",),
    step_tokens=("vllm:iteration_tokens_total",),
    # v1/spec_decode/metrics.py: counted only on a server started with --speculative-config
    spec_drafts=("vllm:spec_decode_num_drafts_total",),
    spec_draft_tokens=("vllm:spec_decode_num_draft_tokens_total",),
    spec_accepted=("vllm:spec_decode_num_accepted_tokens_total",),
    ttft=("vllm:time_to_first_token_seconds",),
    e2e=("vllm:e2e_request_latency_seconds",),
    queue=("vllm:request_queue_time_seconds",),
    lora_info=("vllm:lora_requests_info",),
    waiting_by_reason=("vllm:num_requests_waiting_by_reason",),
)


# SGLang names its metrics `sglang:…`; its router's `/engine_metrics` passes them on as `sglang_…` (the
# colon rewritten, sgl-router PR #11456): both are read. Its `cached_tokens_total` carries a
# `cache_source` label in newer releases (device, host, storage, or `total` without details): one set
# per request, so the sum over label sets is the cached tokens.
def _sglang(name: str) -> tuple[str, str]:
    return "sglang:" + name, "sglang_" + name


SGLANG = Engine(
    name="sglang",
    prefix=("sglang:", "sglang_"),
    running=_sglang("num_running_reqs"),
    waiting=_sglang("num_queue_reqs"),
    kv_usage=_sglang("token_usage"),
    hits_queries=tuple(zip(_sglang("cached_tokens_total"), _sglang("prompt_tokens_total"), strict=True)),
    hit_rate_gauge=_sglang("cache_hit_rate"),
    preemptions=_sglang("num_retracted_requests_total"),
    prompt_tokens=_sglang("prompt_tokens_total"),
    generation_tokens=_sglang("generation_tokens_total"),
    spec_length_gauge=_sglang("spec_accept_length"),
    spec_rate_gauge=_sglang("spec_accept_rate"),
    ttft=_sglang("time_to_first_token_seconds"),
    e2e=_sglang("e2e_request_latency_seconds"),
    queue=_sglang("queue_time_seconds"),
)
TGI = Engine(
    name="tgi",
    prefix="tgi_",
    running=("tgi_batch_current_size",),
    waiting=("tgi_queue_size",),
    prompt_tokens=("tgi_request_input_length_sum",),
    generation_tokens=("tgi_request_generated_tokens_sum",),
    step_count=("tgi_batch_inference_count_total", "tgi_batch_inference_count"),
    e2e=("tgi_request_duration",),
    queue=("tgi_request_queue_duration",),
)
LLAMACPP = Engine(
    name="llamacpp",
    prefix="llamacpp:",
    running=("llamacpp:requests_processing",),
    waiting=("llamacpp:requests_deferred",),
    prompt_tokens=("llamacpp:prompt_tokens_total",),
    generation_tokens=("llamacpp:tokens_predicted_total",),
    step_count=("llamacpp:n_decode_total",),
    # a server with a drafter (`--spec-type`, `-md`): vLLM's counters under its own prefix
    spec_drafts=("llamacpp:spec_decode_num_drafts_total",),
    spec_draft_tokens=("llamacpp:spec_decode_num_draft_tokens_total",),
    spec_accepted=("llamacpp:spec_decode_num_accepted_tokens_total",),
    # … and per draft position, as vLLM's: the drafts whose token there was accepted (server-context.cpp
    # n_accepted_per_pos, over its verify steps: `spec_decode_num_drafts_total`)
    spec_accepted_by_pos=("llamacpp:spec_decode_num_accepted_tokens_per_pos_total",),
    cached_prompt=("llamacpp:prompt_tokens_cached_total",),
)
# LMDeploy (`lmdeploy serve api_server … --enable-metrics`; lmdeploy/metrics/loggers.py) registers vLLM's
# names under its own prefix. Its `iteration_tokens_total` is observed once per request per iteration
# (the request's prompt on its first, its new tokens after: metrics/stats.py IterationStats), not once
# per engine step as vLLM's is, so it is not taken as tokens per step; it exports no prefix-cache
# counter (its log prints a hit rate) and no preemption count.
LMDEPLOY = Engine(
    name="lmdeploy",
    prefix="lmdeploy:",
    running=("lmdeploy:num_requests_running",),
    waiting=("lmdeploy:num_requests_waiting",),
    kv_usage=("lmdeploy:gpu_cache_usage_perc",),
    prompt_tokens=("lmdeploy:prompt_tokens_total",),
    generation_tokens=("lmdeploy:generation_tokens_total",),
    ttft=("lmdeploy:time_to_first_token_seconds",),
    e2e=("lmdeploy:e2e_request_latency_seconds",),
    queue=("lmdeploy:request_queue_time_seconds",),
)


# TensorRT-LLM's trtllm-serve (tensorrt_llm/metrics/collector.py MetricsCollector, the names with its
# `trtllm_` prefix; page /prometheus/metrics, its /metrics being JSON); NVIDIA Dynamo passes the same
# metrics through as `trtllm_…` or, in its 0.7 releases, `trtllm:…`. The request histograms and token
# counters need `return_perf_metrics: true` in its LLM API options and are added when a request
# finishes; the batch, queue, KV and speculative figures come from its iteration statistics and need
# `enable_iter_perf_stats: true`. Its 2026 collector publishes those as `num_requests_running` /
# `num_requests_waiting` (earlier: `num_active_requests` / `server_queue_length`), adds the generated-token
# counter, and, with a drafter, counters of draft and accepted tokens summed over its iterations and an
# acceptance-length gauge (its last iteration's tokens per verify step, the bonus token included) — no
# count of drafts, so the length is the gauge's. No step count, no preemptions. The cached-prompt counter
# appears at the first hit (a labelled counter is created at its first increment): before it, the
# engine's own hit-rate gauge.
def _trtllm(name: str) -> tuple[str, str]:
    return "trtllm_" + name, "trtllm:" + name


TRTLLM = Engine(
    name="trtllm",
    prefix=("trtllm_", "trtllm:"),
    running=_trtllm("num_requests_running") + _trtllm("num_active_requests"),
    waiting=_trtllm("num_requests_waiting") + _trtllm("server_queue_length"),
    kv_usage=_trtllm("kv_cache_utilization"),
    hits_queries=tuple(
        zip(_trtllm("prompt_cached_tokens_total"), _trtllm("prompt_tokens_total"), strict=True)
    ),
    hit_rate_gauge=_trtllm("kv_cache_hit_rate"),
    prompt_tokens=_trtllm("prompt_tokens_total"),
    generation_tokens=_trtllm("generation_tokens_total"),
    spec_draft_tokens=_trtllm("spec_decode_num_draft_tokens_total"),
    spec_accepted=_trtllm("spec_decode_num_accepted_tokens_total"),
    spec_length_gauge=_trtllm("spec_decode_acceptance_length"),
    spec_accepted_by_pos=_trtllm("spec_decode_accepted_tokens_total"),
    spec_drafted_by_pos=_trtllm("spec_decode_drafted_tokens_total"),
    spec_pos_label="token_position",
    ttft=_trtllm("time_to_first_token_seconds"),
    e2e=_trtllm("e2e_request_latency_seconds"),
    queue=_trtllm("request_queue_time_seconds"),
)
# NVIDIA Dynamo's OpenAI frontend (its HTTP port's /metrics; lib/llm/src/http/service/metrics.rs, default
# prefix `dynamo_frontend`, DYN_METRICS_PREFIX changes it): the frontend's own view, not the engines'
# (theirs are on each worker's system port, under their own names, which the mappings above read). No
# running/waiting pair: its `inflight_requests` runs from the handler to the response's end and its
# `queued_requests` until the first token, prefill included — not an engine's batch and queue. Its TTFT
# starts after the request is parsed and ends when the first token passes the frontend, so the
# client-vs-server gap is the network and the HTTP layer. Input tokens and TTFT are observed together at
# the first token (the frontend's own count of the prompt); cached tokens at the end, from the backend's
# usage, only when above 0 (a miss adds nothing, as it should to a sum), so the hit rate is the sum of
# cached tokens over the sum of input tokens.
DYNAMO = Engine(
    name="dynamo",
    prefix="dynamo_frontend_",
    running=(),
    waiting=(),
    hits_queries=(("dynamo_frontend_cached_tokens_sum", "dynamo_frontend_input_sequence_tokens_sum"),),
    prompt_tokens=("dynamo_frontend_input_sequence_tokens_sum",),
    generation_tokens=("dynamo_frontend_output_tokens_total",),
    ttft=("dynamo_frontend_time_to_first_token_seconds",),
    e2e=("dynamo_frontend_request_duration_seconds",),
)
# NVIDIA NIM for LLMs (its `/v1/metrics`, which `--server-metrics auto` finds; `/metrics` in its 2024
# releases): vLLM's families without the `vllm:` prefix, whichever backend serves the model (vLLM,
# TensorRT-LLM, SGLang), as its observability guide lists them — running, waiting (`num_request_max`
# beside them: the concurrency cap), `gpu_cache_usage_perc` (1 = full), prompt and generation tokens, and
# the TTFT, TPOT and E2E histograms. No prefix of its own: its page is told by those exact families.
NIM_FAMILIES = (  # the names that tell its page (generic ones such as `prompt_tokens_total` would not)
    "num_requests_running", "num_requests_waiting", "num_request_max", "gpu_cache_usage_perc",
    "time_to_first_token_seconds", "time_per_output_token_seconds", "e2e_request_latency_seconds",
    "request_prompt_tokens", "request_generation_tokens",
)  # fmt: skip
NIM = Engine(
    name="nim",
    prefix=NIM_FAMILIES,
    running=("num_requests_running",),
    waiting=("num_requests_waiting",),
    kv_usage=("gpu_cache_usage_perc",),
    prompt_tokens=("prompt_tokens_total",),
    generation_tokens=("generation_tokens_total",),
    ttft=("time_to_first_token_seconds",),
    e2e=("e2e_request_latency_seconds",),
)
ENGINES = (VLLM, SGLANG, TGI, LLAMACPP, LMDEPLOY, TRTLLM, DYNAMO, NIM)


def detect(metrics: Iterable[str]) -> Engine | None:
    """The engine most of the page's names belong to (a simulator may add its own prefix beside vLLM's)."""
    names = set(metrics)
    counts = {e.name: sum(1 for m in names if m.startswith(e.prefix)) for e in ENGINES}
    best = max(ENGINES, key=lambda e: counts[e.name])
    return best if counts[best.name] else None
