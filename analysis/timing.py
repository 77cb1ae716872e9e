"""Where each request's time went, as typed results: summary.json `server_timing` (analysis/spans.py computes it).

Kept apart from analysis/results.py (which holds the `Summary` field typed with `ServerTiming`)
so that module stays small; like it, this one imports nothing heavy, and the renderers read the
fields, never a string key. Every duration is in seconds.

Components (`COMPONENTS`, README.md § Where the time went) — for one request they add up to the
client's own latency exactly, because `client` is what the engine did not account for:

    client        client latency − the engine's (network, HTTP server, request parsing, the SSE
                  path out and the client's own reading: everything outside the engine's span)
    engine_other  the engine's latency − queue − prefill (− decode): in vLLM its input processing
                  (chat template, tokenization) before the queue and the hand-off of outputs after
    queue         waiting for a batch slot: first scheduled − queued
    prefill       first scheduled → first token (preemptions during prefill included)
    decode        first token → last token (preemptions during decode included)

TTFT = client + engine_other + queue + prefill; E2E = the five; TPOT = (E2E − TTFT)/(tokens − 1)
splits into client, engine_other and decode, each divided by (tokens − 1).

Where no spans came but the server's stream stated its own timing (`source` "stream":
analysis/enginetiming.py — llama-server's `timings`, Ollama's durations, SGLang's and vLLM's
stamps), the components are `STREAM_COMPONENTS`, which add up to the client's latency the same way:

    waiting       client latency − load − queue − prefill (− decode): queueing for a slot,
                  tokenization, network and HTTP, which these servers do not state apart; named
                  `other` where the server states its queue (vLLM, SGLang), which it then leaves out
    load          the model loaded (or waited for) inside the request: Ollama's load_duration; only
                  where the server states it
    queue         the wait for the server's scheduler to take the request (vLLM's queue_time_ms,
                  SGLang's queue_time); only where the server states it
    prefill       the server's prompt processing (on Ollama it also holds its runner's slot wait)
    decode        first sampled token → last
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

COMPONENTS = ("client", "engine_other", "queue", "prefill", "decode")
METRIC_COMPONENTS = {
    "ttft": ("client", "engine_other", "queue", "prefill"),
    "tpot": ("client", "engine_other", "decode"),
    "e2e": COMPONENTS,
}
STREAM_COMPONENTS = ("waiting", "load", "queue", "prefill", "decode")
STREAM_METRIC_COMPONENTS = {
    "ttft": ("waiting", "load", "queue", "prefill"),
    "tpot": ("waiting", "decode"),
    "e2e": STREAM_COMPONENTS,
}


def metric_components(
    source: str, has_load: bool = False, has_queue: bool = False
) -> dict[str, tuple[str, ...]]:
    """Each metric's components for a source: the spans' five, or the stream's — without `load` or
    `queue` where no row stated one (llama-server has no such figure, and a column of zeros would say
    it had), and with the rest named `other` where the queue is stated (it is then no longer in it)."""
    if source == "spans":
        return METRIC_COMPONENTS
    rest = "other" if has_queue else "waiting"
    dropped = {c for c, stated in (("load", has_load), ("queue", has_queue)) if not stated}
    return {
        m: tuple(rest if c == "waiting" else c for c in cs if c not in dropped)
        for m, cs in STREAM_METRIC_COMPONENTS.items()
    }


@dataclass(frozen=True)
class Decomposition:
    """The mean of each component over `n` joined completed requests; `parts_s` adds up to `total_s`,
    the same requests' mean client latency."""

    n: int
    total_s: float
    parts_s: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "total_s": self.total_s, "parts_s": dict(self.parts_s)}


@dataclass(frozen=True)
class Misses:
    """Requests over one SLO limit and the component each is attributed to (analysis/spans.py `attribute`).

    `by_component` counts every miss once, under the component that exceeded its share of the
    limit by the most; `top` is the most frequent one and `top_share` its fraction of `missed`.
    """

    metric: str
    limit_s: float
    judged: int  # joined completed requests with this metric defined
    missed: int
    by_component: dict[str, int]
    top: str | None
    top_share: float | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class Shares:
    """Each component's share of one SLO limit: its fraction of the latency of the `n` reference
    requests (joined, completed, within that limit); `reference` says which requests those were."""

    metric: str
    limit_s: float
    reference: str
    n: int
    fractions: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class TimingStep:
    """One load step (warm-up/cool-down excluded): the mean decomposition and the misses' attribution."""

    step: int
    label: str
    load: float
    ok: int  # completed requests of the step
    joined: int
    ttft: Decomposition | None
    e2e: Decomposition | None
    misses: list[Misses]

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "label": self.label,
            "load": self.load,
            "ok": self.ok,
            "joined": self.joined,
            "ttft": None if self.ttft is None else self.ttft.to_dict(),
            "e2e": None if self.e2e is None else self.e2e.to_dict(),
            "misses": [m.to_dict() for m in self.misses],
        }


@dataclass(frozen=True)
class ServerTiming:
    """summary.json `server_timing`: the engine's spans joined with the rows (or, without spans, the
    server's own timing its stream carried: `source` "stream"), and what they say.

    Counts are over every row of requests.csv; the figures over the requests the headline counts
    (warm-up, cool-down and, unless included, the start-up left out) and, per step, the step table's. `joined`: completed rows whose request id has
    exactly one span; `unjoined`: completed rows with none; `ambiguous`: completed rows whose id
    has several (not joined: nothing is guessed); `failed_with_span`: failed or cancelled rows
    the engine still reported; `spans_without_row`: spans of requests not in this run. With
    `source` "stream" a row "joins" when it carries the server's timing: `spans` counts those rows,
    `ambiguous` and `spans_without_row` are 0.
    """

    spans: int
    ok: int
    joined: int
    unjoined: int
    ambiguous: int
    failed_with_span: int
    spans_without_row: int
    joined_share: float | None
    ttft: Decomposition | None
    e2e: Decomposition | None
    shares: list[Shares]
    misses: list[Misses]
    steps: list[TimingStep]
    warnings: list[str]
    source: str = "spans"  # spans (server_spans.csv) | stream (the rows' engine_*_s)
    components: tuple[str, ...] = COMPONENTS  # E2E's parts in order; TTFT's are these without decode

    def parts_of(self, metric: str) -> tuple[str, ...]:
        """The components `metric` splits into, in this timing's source."""
        return metric_components(self.source, "load" in self.components, "queue" in self.components)[metric]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key in ("ttft", "e2e"):
            out[key] = None if out[key] is None else out[key].to_dict()
        for key in ("shares", "misses", "steps"):
            out[key] = [x.to_dict() for x in out[key]]
        out["warnings"] = list(self.warnings)
        return out
