"""Engine statistics and their Prometheus exposition under vLLM's metric names.

The hot path only bumps plain ints and bucket lists (`Hist.observe` is one bisect); a custom
collector turns them into prometheus_client metric families at scrape time, so a /metrics scrape
costs the scraper, not every token. Names, labels (`engine`, `model_name`), types and buckets
follow vLLM 0.32 (see tests/e2e/test_simserver_e2e.py for the check against the real sample).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

if TYPE_CHECKING:
    from simserver.lora import LoraSlots

TOKENS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
TTFT = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
LONG = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
ITERATION = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PREEMPTIONS = (1, 2, 3, 4, 5, 10, 20)
LAG = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")


class Hist:
    """A Prometheus-style histogram as plain lists; `observe_n` records n equal values at once."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_n(self, value: float, n: int) -> None:
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n

    @property
    def count(self) -> int:
        return sum(self.counts)

    def buckets(self) -> list[tuple[str, float]]:
        out, acc = [], 0
        for bound, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            acc += c
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(acc)))
        return out


def _h(bounds: tuple[float, ...]) -> Callable[[], Hist]:
    return lambda: Hist(bounds)


@dataclass
class EngineStats:
    """Everything the engine counts. Plain attributes: the engine updates them inline."""

    prompt_tokens: int = 0
    prompt_tokens_cached: int = 0
    generation_tokens: int = 0
    prefix_queries: int = 0
    prefix_hits: int = 0
    mm_cache_queries: int = 0  # image items looked up in the multimodal cache (simserver/images.py)
    mm_cache_hits: int = 0
    preemptions: int = 0
    steps: int = 0
    busy_s: float = 0.0
    finished: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FINISH_REASONS, 0))
    ttft: Hist = field(default_factory=_h(TTFT))
    itl: Hist = field(default_factory=_h(ITL))
    tpot: Hist = field(default_factory=_h(ITL))
    e2e: Hist = field(default_factory=_h(LONG))
    queue: Hist = field(default_factory=_h(LONG))
    inference: Hist = field(default_factory=_h(LONG))
    prefill: Hist = field(default_factory=_h(LONG))
    decode: Hist = field(default_factory=_h(LONG))
    req_prompt: Hist = field(default_factory=_h(TOKENS))
    req_generation: Hist = field(default_factory=_h(TOKENS))
    req_max_tokens: Hist = field(default_factory=_h(TOKENS))
    req_prefill_computed: Hist = field(default_factory=_h(TOKENS))
    req_preemptions: Hist = field(default_factory=_h(PREEMPTIONS))
    iteration_tokens: Hist = field(default_factory=_h(ITERATION))
    host_step: Hist = field(default_factory=_h(LAG))
    cpu_step: Hist = field(default_factory=_h(LAG))
    created: float = field(default_factory=time.time)
    # speculative decoding (simserver/specdecode.py); spec_per_pos has K entries when it is on
    spec_drafts: int = 0
    spec_draft_tokens: int = 0
    spec_accepted: int = 0
    spec_per_pos: list[int] = field(default_factory=list)


class LagWindow:
    """Schedule lag of recent steps: a histogram since start plus a sliding window for quantiles."""

    def __init__(self, window_s: float = 60.0, max_items: int = 20000) -> None:
        self.hist = Hist(LAG)
        self.window_s = window_s
        self.recent: deque[tuple[float, float]] = deque(maxlen=max_items)
        self.last = 0.0

    def record(self, now: float, lag: float) -> None:
        self.hist.observe(lag)
        self.recent.append((now, lag))
        self.last = lag

    def quantiles(self, now: float) -> dict[str, float]:
        while self.recent and self.recent[0][0] < now - self.window_s:
            self.recent.popleft()
        values = sorted(v for _, v in self.recent)
        if not values:
            return {"0.5": 0.0, "0.99": 0.0, "1.0": 0.0}

        def q(p: float) -> float:
            return values[min(len(values) - 1, int(p * len(values)))]

        return {"0.5": q(0.5), "0.99": q(0.99), "1.0": values[-1]}


@dataclass
class Gauges:
    """Instantaneous engine state, read at scrape time."""

    running: int
    waiting: int
    kv_usage: float
    open_streams: int
    connections: int
    deferred: int = 0  # of `waiting`: held back by the LoRA adapter budget, not by capacity


# vLLM 0.32's histograms: name, help text, the EngineStats field that holds it.
HISTOGRAMS: tuple[tuple[str, str, str], ...] = (
    ("vllm:request_prompt_tokens", "Number of prefill tokens processed.", "req_prompt"),
    ("vllm:request_generation_tokens", "Number of generation tokens processed.", "req_generation"),
    ("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.", "iteration_tokens"),
    ("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", "req_max_tokens"),
    ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", "ttft"),
    ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", "itl"),
    (
        "vllm:request_time_per_output_token_seconds",
        "Histogram of time_per_output_token_seconds per request.",
        "tpot",
    ),
    ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", "e2e"),
    ("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", "queue"),
    (
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        "inference",
    ),
    ("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", "prefill"),
    ("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", "decode"),
    (
        "vllm:request_num_preemptions",
        "Histogram of the number of times a request was preempted.",
        "req_preemptions",
    ),
    (
        "vllm:request_prefill_kv_computed_tokens",
        "Histogram of new KV tokens computed during prefill (excluding cached tokens).",
        "req_prefill_computed",
    ),
)


class EngineCollector:
    """prometheus_client collector over EngineStats; `gauges` is called once per scrape."""

    def __init__(
        self,
        model: str,
        stats: EngineStats,
        lag: LagWindow,
        gauges: Callable[[], Gauges],
        cache_info: dict[str, str],
        engine: int = 0,
        lora: LoraSlots | None = None,
        replicated: bool = False,
    ) -> None:
        # `engine` is vLLM's data-parallel rank label: replica i of a replica set reports engine="i".
        self.labels = {"engine": str(engine), "model_name": model}
        self.stats, self.lag, self.gauges, self.cache_info = stats, lag, gauges, cache_info
        # vLLM's lora_requests_info has no engine label; a replica set's pages must tell replicas apart
        self.lora, self.lora_engine = lora, replicated

    def _gauge(self, name: str, doc: str, value: float) -> Metric:
        g = GaugeMetricFamily(name, doc, labels=list(self.labels))
        g.add_metric(list(self.labels.values()), value)
        return g

    def _counter(self, name: str, doc: str, values: dict[tuple[str, str] | None, float]) -> Metric:
        extra = next((k[0] for k in values if k), None)
        c = CounterMetricFamily(name, doc, labels=[*self.labels, *([extra] if extra else [])])
        for key, v in values.items():
            c.add_metric([*self.labels.values(), *([key[1]] if key else [])], v, created=self.stats.created)
        return c

    def _hist(self, name: str, doc: str, h: Hist) -> Metric:
        m = HistogramMetricFamily(name, doc, labels=list(self.labels))
        m.add_metric(list(self.labels.values()), h.buckets(), h.sum)
        m.samples.append(Sample(name + "_created", dict(self.labels), h.created, None, None))
        return m

    def collect(self) -> Iterator[Metric]:
        s, g = self.stats, self.gauges()
        yield from self._engine_gauges(g)
        yield from self._counters(s)
        for name, doc, attr in HISTOGRAMS:
            yield self._hist(name, doc, getattr(s, attr))
        info = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig",
            labels=[*self.cache_info, "engine"],
        )
        info.add_metric([*self.cache_info.values(), self.labels["engine"]], 1.0)
        yield info
        if self.lora is not None:
            yield from self._lora(self.lora)
        yield from self._own(g)

    def _engine_gauges(self, g: Gauges) -> Iterator[Metric]:
        yield self._gauge(
            "vllm:num_requests_running", "Number of requests in model execution batches.", g.running
        )
        yield self._gauge(
            "vllm:num_requests_waiting", "Number of requests waiting to be processed.", g.waiting
        )
        by_reason = GaugeMetricFamily(
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason. Sum of all reasons equals vllm:num_requests_waiting.",
            labels=[*self.labels, "reason"],
        )
        by_reason.add_metric([*self.labels.values(), "capacity"], g.waiting - g.deferred)
        by_reason.add_metric([*self.labels.values(), "deferred"], g.deferred)
        yield by_reason
        yield self._gauge(
            "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", g.kv_usage
        )

    def _counters(self, s: EngineStats) -> Iterator[Metric]:
        yield self._counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.", {None: s.prefix_queries})  # fmt: skip
        yield self._counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", {None: s.prefix_hits})  # fmt: skip
        yield self._counter("vllm:mm_cache_queries", "Multi-modal cache queries, in terms of number of queried items.", {None: s.mm_cache_queries})  # fmt: skip
        yield self._counter("vllm:mm_cache_hits", "Multi-modal cache hits, in terms of number of cached items.", {None: s.mm_cache_hits})  # fmt: skip
        yield self._counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", {None: s.preemptions})  # fmt: skip
        yield self._counter(
            "vllm:prompt_tokens", "Number of prefill tokens processed.", {None: s.prompt_tokens}
        )
        yield self._counter(
            "vllm:prompt_tokens_by_source",
            "Number of prompt tokens by source.",
            {
                ("source", "local_compute"): s.prompt_tokens - s.prompt_tokens_cached,
                ("source", "local_cache_hit"): s.prompt_tokens_cached,
                ("source", "external_kv_transfer"): 0,
            },
        )
        yield self._counter("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", {None: s.prompt_tokens_cached})  # fmt: skip
        yield self._counter("vllm:generation_tokens", "Number of generation tokens processed.", {None: s.generation_tokens})  # fmt: skip
        yield self._counter(
            "vllm:request_success",
            "Count of successfully processed requests.",
            {("finished_reason", r): v for r, v in s.finished.items()},
        )
        if s.spec_per_pos:  # vLLM shows these only with --speculative-config
            yield self._counter("vllm:spec_decode_num_drafts", "Number of spec decoding drafts.", {None: s.spec_drafts})  # fmt: skip
            yield self._counter("vllm:spec_decode_num_draft_tokens", "Number of draft tokens.", {None: s.spec_draft_tokens})  # fmt: skip
            yield self._counter("vllm:spec_decode_num_accepted_tokens", "Number of accepted tokens.", {None: s.spec_accepted})  # fmt: skip
            yield self._counter(
                "vllm:spec_decode_num_accepted_tokens_per_pos",
                "Accepted tokens per draft position.",
                {("position", str(i)): v for i, v in enumerate(s.spec_per_pos)},
            )

    def _lora(self, lora: LoraSlots) -> Iterator[Metric]:
        """vLLM's LoRA gauge: one series per label set ever seen, its value the unix time it was last
        true (the current state is the latest); and the simulator's own count of adapter loads."""
        extra = ["engine"] if self.lora_engine else []
        info = GaugeMetricFamily(
            "vllm:lora_requests_info",
            "Running stats on lora requests.",
            labels=["max_lora", "running_lora_adapters", "waiting_lora_adapters", *extra],
        )
        for (running, waiting), unix in lora.info.items():
            info.add_metric([str(lora.max_loras), running, waiting, *(self.labels[e] for e in extra)], unix)
        yield info
        yield self._counter(
            "simserver:lora_adapter_loads",
            "LoRA adapters loaded into a GPU slot (each adds --lora-load-ms to its step).",
            {None: lora.loads},
        )

    def _own(self, g: Gauges) -> Iterator[Metric]:
        """The simulator's own health: if the lag grows, the simulator (not the model) is the bottleneck."""
        s = self.stats
        yield self._hist(
            "simserver:schedule_lag_seconds",
            "How late the engine loop woke for a step's end (actual − planned wake).",
            self.lag.hist,
        )
        yield self._hist(
            "simserver:step_host_seconds",
            "Host CPU time the simulator spent scheduling and emitting one step (must stay below the step time).",
            s.host_step,
        )
        yield self._hist(
            "simserver:step_cpu_seconds",
            "CPU time (this thread's) of the same work: what it costs on a core of its own, contention aside.",
            s.cpu_step,
        )
        q = GaugeMetricFamily(
            "simserver:schedule_lag_recent_seconds",
            f"Schedule lag quantiles over the last {self.lag.window_s:.0f} s of steps (quantile 1.0 = max).",
            labels=[*self.labels, "quantile"],
        )
        for quantile, v in self.lag.quantiles(time.perf_counter()).items():
            q.add_metric([*self.labels.values(), quantile], v)
        yield q
        yield self._counter("simserver:steps", "Engine steps executed.", {None: s.steps})
        yield self._counter(
            "simserver:busy_seconds", "Simulated time the engine spent in steps.", {None: s.busy_s}
        )
        yield self._gauge("simserver:open_streams", "Streaming responses in progress.", g.open_streams)
        yield self._gauge("simserver:open_connections", "Open HTTP connections.", g.connections)


def make_registry(collector: EngineCollector) -> CollectorRegistry:
    """A registry of our own (not the global one), so tests can run several engines in one process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
