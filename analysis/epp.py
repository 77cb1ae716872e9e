"""The llm-d router's endpoint picker (EPP): its own page read as a router's (analysis/router.py).

In an llm-d (or Gateway API Inference Extension) deployment the client's requests go to a gateway
(Envoy, kgateway, Istio, GKE's), which asks the EPP — over ext_proc — which model server of the
InferencePool takes each one. The EPP answers from the servers' own metrics (queue, KV cache, prefix
index) and keeps a Prometheus page of its own (port 9090, behind a bearer token by default:
`--metrics-endpoint-auth`; pass one with `--server-metrics-header`). Scraped beside the replicas, it says
what no engine's page can: where it sent each request, the requests it refused before any engine saw
them (a saturated pool sheds sheddable requests with 429, `InferencePoolResourceExhausted`), the time it
held requests in its own flow-control queue and spent picking — both in the client's TTFT —, the
scorers that made the choice and, with prefill/decode disaggregation, how many requests it split.

Names, from llm-d-router's `pkg/epp/metrics` (2026) and the Inference Extension's before it: v0.10 on
serve `llm_d_epp_*` (a short-lived `llm_d_router_epp_*` before) beside the deprecated names of the
Inference Extension (`inference_objective_*`, once `inference_model_*`; `inference_pool_*`;
`inference_extension_*`) with the same values. Each family is read under one name only — the newest
the page has — or every figure would count twice. Per endpoint: `scheduler_attempts_total{status,
endpoint_name}` (`pod_name` before) counts the requests it placed on each (the first target endpoint;
`status="failure"` with no endpoint: none could be picked), `per_endpoint_queue_size{model_server_endpoint}`
(`inference_pool_per_pod_queue_size{model_server_pod}`) the queue the EPP last read from each server, and
`inflight_requests{endpoint_name}` its own count of requests in flight there (in-flight load producer).
An endpoint is named by its pod (or endpoint) name, not a URL, so its engine's finished requests are not
joined to it; the replicas' own section (analysis/replicas.py) gives those by URL.
"""

from __future__ import annotations

import pandas as pd

from analysis.replicas import natural_key
from analysis.samples import Samples

NAME = "llm-d EPP"
PREFIXES = ("llm_d_epp_", "llm_d_router_epp_")  # newest first
# each family's Inference Extension names, newest first (served beside the new ones while deprecated)
LEGACY = {
    "request_total": ("inference_objective_request_total", "inference_model_request_total"),
    "request_error_total": ("inference_objective_request_error_total", "inference_model_request_error_total"),
    "scheduler_attempts_total": ("inference_extension_scheduler_attempts_total",),
    "scheduler_e2e_duration_seconds": ("inference_extension_scheduler_e2e_duration_seconds",),
    "plugin_duration_seconds": (
        "inference_extension_plugin_duration_seconds",
        "inference_extension_scheduler_plugin_duration_seconds",
    ),
    "per_endpoint_queue_size": ("inference_pool_per_pod_queue_size",),
    "ready_endpoints": ("inference_pool_ready_pods",),
    "flow_control_request_queue_duration_seconds": (
        "inference_extension_flow_control_request_queue_duration_seconds",
    ),
    "inflight_requests": (),
    "disagg_decision_total": ("llm_d_inference_scheduler_disagg_decision_total",),
    "pd_decision_total": ("llm_d_inference_scheduler_pd_decision_total",),  # the P/D handler before it
}
ENDPOINT = ("endpoint_name", "pod_name")  # the scheduler attempts' and in-flight gauge's endpoint label
QUEUE_ENDPOINT = ("model_server_endpoint", "model_server_pod", "endpoint_name")
SHED = "InferencePoolResourceExhausted"  # its error code for a request it refused: the client gets 429
DISPATCHED = "Dispatched"  # the flow-control outcome of a request it let through
SCORER = "Scorer"  # the extension point whose plugins rank the endpoints


class Names:
    """The one name each EPP family has on this page (None: not there)."""

    def __init__(self, s: Samples) -> None:
        present = s.metrics
        prefix = next((p for p in PREFIXES if any(m.startswith(p) for m in present)), None)
        self._s, self._prefix = s, prefix

    def __call__(self, stem: str, suffix: str = "") -> str | None:
        candidates = ([self._prefix + stem] if self._prefix else []) + list(LEGACY.get(stem, ()))
        return next((n for n in candidates if self._s.has(n + suffix)), None)


def is_epp(df: pd.DataFrame) -> bool:
    """The page has the EPP's per-endpoint placements or its request counter, under any of its names."""
    metrics = set(df["metric"].unique())
    stems = ("scheduler_attempts_total", "request_total")
    names = {p + s for p in PREFIXES for s in stems} | {n for s in stems for n in LEGACY[s]}
    return bool(names & metrics)


def _label(s: Samples, name: str, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if s.label_values(name, k)), None)


def placed(s: Samples, n: Names) -> tuple[dict[str, pd.Series], pd.Series | None]:
    """Per endpoint, the requests it placed there (increase since the first scrape), and those it could
    place nowhere (`status="failure"`), from the scheduler's attempts."""
    name = n("scheduler_attempts_total")
    if name is None:
        return {}, None
    key = _label(s, name, ENDPOINT) or ENDPOINT[0]
    by = s.counter_by(name, ("status", key))
    ok = {ep: v for (status, ep), v in by.items() if status == "success" and ep}
    failed = [v for (status, _), v in by.items() if status == "failure"]
    order = sorted(ok, key=natural_key)
    return {ep: ok[ep] for ep in order}, (sum(failed[1:], failed[0]) if failed else None)


def per_endpoint(s: Samples, n: Names, stem: str, keys: tuple[str, ...]) -> dict[str, pd.Series]:
    """A per-endpoint gauge (queue, in flight) at every scrape, by endpoint name."""
    name = n(stem)
    key = _label(s, name, keys) if name else None
    if name is None or key is None:
        return {}
    return {ep: s.gauge_where(name, key, ep).reindex(s.times) for ep in s.label_values(name, key) if ep}


def errors(s: Samples, n: Names) -> dict[str, pd.Series]:
    """Its own error answers by code (the request never reached an engine, or an engine failed it)."""
    name = n("request_error_total")
    return s.counter_by(name, "error_code") if name else {}


def disaggregation(s: Samples, n: Names) -> dict[str, pd.Series]:
    """How it split the requests it placed (llm-d's P/D and E/PD profile handlers), by `decision_type`:
    `decode-only`, `prefill-decode`, `encode-decode`, `encode-prefill-decode`."""
    name = n("disagg_decision_total") or n("pd_decision_total")
    return s.counter_by(name, "decision_type") if name else {}


def mean_parts(
    s: Samples, n: Names, stem: str, where: str | None = None
) -> tuple[pd.Series, pd.Series] | None:
    """A histogram's sum and count (increase since the first scrape), over the label sets whose
    `outcome` is `where` where the family has one."""
    name = n(stem, "_count")
    if name is None:
        return None
    if where and s.label_values(name + "_count", "outcome"):
        total = s.counter_by(name + "_sum", "outcome").get(where)
        count = s.counter_by(name + "_count", "outcome").get(where)
        return (total, count) if total is not None and count is not None else None
    return s.counter(name + "_sum"), s.counter(name + "_count")


def scorers(s: Samples, n: Names) -> str | None:
    """The scorers that ranked the endpoints (the EPP's policy: its weighted plugins), from the plugin
    latency family's label sets."""
    name = n("plugin_duration_seconds", "_count")
    if name is None:
        return None
    found = []
    for labels in s.latest_labels(name + "_count", by=("plugin_type", "plugin_name")).iloc[-1]:
        if labels.get("extension_point") == SCORER:  # llm-d-router: the plugin's type names the scorer
            found.append(labels.get("plugin_type", ""))
        elif "extension_point" not in labels and labels.get("plugin_type") == SCORER:  # before: its name
            found.append(labels.get("plugin_name", ""))
    kept = sorted({f for f in found if f})
    return "+".join(kept) or None
