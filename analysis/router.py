"""A router's own page: where it sent the requests, which backends failed, what it retried.

In front of replicas stands a router — vllm-router, sglang-router, the SGLang Model Gateway (`smg`) —
that picks a backend for each request and keeps its own Prometheus page (`--prometheus-port`, 29000
by default), separate from the backends'. Scraped with them (`--server-metrics ROUTER,REPLICA,…`),
or alone where the replicas cannot be reached from the client, it answers what the engines' pages
cannot: how the policy spread the load, which backend failed and how often the router hid that by
retrying — a retry's backoff is in the client's TTFT and no engine counts it.

Each router's names, from its source and a real page (tests/fixtures: vllm-router 0.1.17, smg 0.3.2):
- vllm-router, and the sglang-router it was forked from (`sgl_router_`): `*_processed_requests_total
  {worker}` counts the requests passed to each backend (retries again, and whatever else the router
  forwards: `/tokenize`, `/metrics`), `*_cb_outcomes_total{worker,outcome}` each one's success or
  failure as the circuit breaker saw it, `*_running_requests{worker}` (cache-aware policy only),
  `*_worker_health{worker}` (1 healthy), `*_cb_state{worker}` (0 closed, 1 open, 2 half-open), and
  `*_retries_total{route}` with `*_retry_backoff_duration_seconds`; vllm-router's cache-aware policy also
  counts how it placed each request, `vllm_router_prefix_routing_decisions_total{outcome}` (`prefix_hit`,
  `prefix_miss`, `load_imbalance`, `missing_tokens`: 0.1.17 matches prefixes on token ids, which it does
  not compute for HTTP backends — every request of a run through it there was `missing_tokens`, placed
  by load, never by prefix, with `VLLM_ROUTER_TOKENIZER` set to the model's tokenizer or not);
- smg (0.2 on): no per-backend request counter — the circuit breaker's outcomes are it —,
  `smg_worker_requests_active{worker}`, `smg_worker_health`, `smg_worker_cb_state`,
  `smg_worker_retries_total{worker,…}`, `smg_worker_retry_backoff_seconds`.
A backend is its `worker` label (the URL the router was given); where one of the replicas' pages was
scraped under the same `host:port`, its engine's finished requests stand beside the router's count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from analysis import epp, fmt
from analysis.replicas import STARVED, natural_key, spread, starved
from analysis.samples import Samples
from analysis.serverfigures import ReplicaSet, RouterBackend, RouterFigures

OPEN, HALF_OPEN = 1.0, 2.0  # the circuit breaker's state gauge
NO_TOKENS = "missing_tokens"  # vllm-router's decision outcome: no token ids to match, placed by load


@dataclass(frozen=True)
class RouterNames:
    """Where one router keeps each per-backend series (None: it has none)."""

    name: str
    prefix: str  # every one of its names starts so
    requests: str | None  # counter {worker}
    outcomes: str  # counter {worker, outcome=success|failure}
    running: str
    health: str
    circuit: str
    retries: str
    backoff: str  # histogram base: the backoff slept before retries
    decisions: str | None = None  # counter {outcome}: how a cache-aware policy placed each request


def _forked(name: str, prefix: str) -> RouterNames:
    return RouterNames(
        name, prefix, f"{prefix}processed_requests_total", f"{prefix}cb_outcomes_total", f"{prefix}running_requests",
        f"{prefix}worker_health", f"{prefix}cb_state", f"{prefix}retries_total",
        f"{prefix}retry_backoff_duration_seconds", f"{prefix}prefix_routing_decisions_total",
    )  # fmt: skip


SMG = RouterNames(
    name="SGLang Model Gateway",
    prefix="smg_",
    requests=None,
    outcomes="smg_worker_cb_outcomes_total",
    running="smg_worker_requests_active",
    health="smg_worker_health",
    circuit="smg_worker_cb_state",
    retries="smg_worker_retries_total",
    backoff="smg_worker_retry_backoff_seconds",
)
ROUTERS = (_forked("vllm-router", "vllm_router_"), _forked("sglang-router", "sgl_router_"), SMG)
# measured (examples/arena-router-tuning.yaml): agent sessions over two replicas, 2.00× imbalance as shipped,
# 1.12× at 0.8 and 1.08× at 0.9, while shared prefixes still followed their replica (hit 92.7 / 93.2 %, as shipped 93.2 %)
SMG_MEND = (
    " (`--cache-threshold` 0.8 or 0.9 did so in measured runs and kept shared prefixes on their replica)"
)


@dataclass
class RouterData:
    """One run's router series on the scrape times (built once; `figures` reads them per window)."""

    names: RouterNames
    times: np.ndarray
    requests: dict[str, pd.Series]  # backend → increase since the first scrape
    failures: dict[str, pd.Series]
    gauges: dict[str, dict[str, pd.Series]]  # "running" / "health" / "circuit" → backend → value per scrape
    retries: pd.Series | None
    backoff_s: pd.Series | None
    decisions: dict[str, pd.Series]  # outcome → increase since the first scrape (a cache-aware policy's)
    policy: str | None  # the one `policy` label value on its page, if it names one
    errors: dict[str, pd.Series] = field(default_factory=dict)  # its own error answers by code (the EPP's)
    unplaced: pd.Series | None = None  # requests it could place on no backend (the EPP's failed attempts)
    pick: tuple[pd.Series, pd.Series] | None = None  # its picking time: sum and count (the EPP's scheduler)
    held: tuple[pd.Series, pd.Series] | None = None  # time in its own queue before a pick: sum and count
    ready: pd.Series | None = None  # the backends it counted ready, per scrape
    disagg: dict[str, pd.Series] = field(
        default_factory=dict
    )  # decision type → requests (the EPP's P/D split)


def build(df: pd.DataFrame | None) -> RouterData | None:
    """The router's series in `df`, or None when no router's page was scraped."""
    if df is None or df.empty:
        return None
    present = set(df["metric"].unique())
    names = next((r for r in ROUTERS if r.outcomes in present or r.requests in present), None)
    if names is None:
        return _build_epp(df) if epp.is_epp(df) else None
    s = Samples(df[df["metric"].str.startswith(names.prefix)])  # the router's page alone
    if names.requests and s.has(names.requests):
        requests = s.counter_by(names.requests, "worker")
    else:  # every outcome the circuit breaker saw, per backend
        requests = s.counter_by(names.outcomes, "worker")
    requests.pop("", None)
    outcomes = s.counter_by(names.outcomes, ("worker", "outcome")) if s.has(names.outcomes) else {}
    failures = {w: outcomes.get((w, "failure"), 0.0 * v) for w, v in requests.items()}
    gauges = {
        key: {w: s.gauge_where(name, "worker", w).reindex(s.times) for w in _values(s, name, "worker")}
        for key, name in (("running", names.running), ("health", names.health), ("circuit", names.circuit))
        if s.has(name)
    }
    retries = s.counter(names.retries) if s.has(names.retries) else None
    backoff = s.counter(names.backoff + "_sum") if s.has(names.backoff + "_sum") else None
    decisions = s.counter_by(names.decisions, "outcome") if names.decisions and s.has(names.decisions) else {}
    order = sorted(requests, key=natural_key)
    policies = {p for name in s.metrics for p in s.label_values(name, "policy")}
    return RouterData(
        names, s.times, {w: requests[w] for w in order}, failures, gauges, retries, backoff, decisions,
        policies.pop() if len(policies) == 1 else None,
    )  # fmt: skip


EPP = RouterNames(epp.NAME, "", None, "", "", "", "", "", "")  # its names vary: analysis/epp.py reads them


def _build_epp(df: pd.DataFrame) -> RouterData:
    """The EPP's page (analysis/epp.py) as a router's: its placements per endpoint, its queue there and
    what it refused or held before any engine saw the request."""
    s = Samples(df)
    n = epp.Names(s)
    requests, unplaced = epp.placed(s, n)
    gauges = {
        "queue": epp.per_endpoint(s, n, "per_endpoint_queue_size", epp.QUEUE_ENDPOINT),
        "running": epp.per_endpoint(s, n, "inflight_requests", epp.ENDPOINT),
    }
    ready = n("ready_endpoints")
    return RouterData(
        EPP, s.times, requests, {}, {k: v for k, v in gauges.items() if v}, None, None, {}, epp.scorers(s, n),
        errors=epp.errors(s, n), unplaced=unplaced, pick=epp.mean_parts(s, n, "scheduler_e2e_duration_seconds"),
        held=epp.mean_parts(s, n, "flow_control_request_queue_duration_seconds", epp.DISPATCHED),
        ready=s.gauge(ready).reindex(s.times) if ready else None, disagg=epp.disaggregation(s, n),
    )  # fmt: skip


def _values(s: Samples, name: str, key: str) -> list[str]:
    return sorted(s.label_values(name, key), key=natural_key)


def _inc(series: pd.Series | None, times: np.ndarray, a: float, b: float) -> float | None:
    if series is None:
        return None
    v = series.to_numpy(dtype=float)
    return float(np.interp(b, times, v) - np.interp(a, times, v))


def _inside(series: pd.Series | None, times: np.ndarray, a: float, b: float) -> np.ndarray:
    if series is None:
        return np.array([])
    v = series.to_numpy(dtype=float)
    return v[(times >= a) & (times <= b) & ~np.isnan(v)]


def host_port(url: str) -> str:
    """A backend's URL as the replicas' `instance` label names it (`HOST:PORT`)."""
    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


def figures(
    rd: RouterData | None, a: float, b: float, reps: ReplicaSet | None = None
) -> RouterFigures | None:
    """summary.json `router` over [a, b] (the router's counters interpolated at the window's edges, as the
    engines'); `reps` (the same window's replica set) joins each backend's engine-finished requests."""
    if rd is None:
        return None
    finished = {r["replica"]: r["requests"] for r in (reps or {}).get("by_replica", [])}  # type: ignore[union-attr]
    rows = []
    for w, series in rd.requests.items():
        running = _inside(rd.gauges.get("running", {}).get(w), rd.times, a, b)
        health = _inside(rd.gauges.get("health", {}).get(w), rd.times, a, b)
        circuit = _inside(rd.gauges.get("circuit", {}).get(w), rd.times, a, b)
        queue = _inside(rd.gauges.get("queue", {}).get(w), rd.times, a, b)
        rows.append(
            RouterBackend(
                backend=w,
                requests=_inc(series, rd.times, a, b),
                requests_share=None,
                failures=_inc(rd.failures.get(w), rd.times, a, b),
                running_max=float(running.max()) if running.size else None,
                unhealthy_scrapes=int((health < 1).sum()) if health.size else None,
                circuit_opened=bool((circuit == OPEN).any() or (circuit == HALF_OPEN).any())
                if circuit.size
                else None,
                engine_finished=finished.get(host_port(w)),
                queue_max=float(queue.max()) if queue.size else None,
            )
        )
    total, busiest, imbalance = spread(rows, "backend")
    return RouterFigures(
        router=rd.names.name,
        window=[a, b],
        requests=total,
        retries=_inc(rd.retries, rd.times, a, b),
        retry_backoff_s=_inc(rd.backoff_s, rd.times, a, b),
        by_backend=rows,
        busiest=busiest,
        imbalance=imbalance,
        steps=[],
        prefix_decisions={k: _inc(v, rd.times, a, b) or 0.0 for k, v in sorted(rd.decisions.items())} or None,
        policy=rd.policy,
        errors={k: _inc(v, rd.times, a, b) or 0.0 for k, v in sorted(rd.errors.items())} or None,
        unplaced=_inc(rd.unplaced, rd.times, a, b),
        pick_s=_mean(rd.pick, rd.times, a, b),
        held_s=_mean(rd.held, rd.times, a, b),
        held=_inc(rd.held[1], rd.times, a, b) if rd.held else None,
        ready_endpoints=_span(rd.ready, rd.times, a, b),
        disagg_decisions={k: _inc(v, rd.times, a, b) or 0.0 for k, v in sorted(rd.disagg.items())} or None,
    )


def _mean(parts: tuple[pd.Series, pd.Series] | None, times: np.ndarray, a: float, b: float) -> float | None:
    """A histogram's mean over [a, b]: its sum's increase over its count's (None: nothing observed)."""
    if parts is None:
        return None
    count = _inc(parts[1], times, a, b) or 0.0
    return (_inc(parts[0], times, a, b) or 0.0) / count if count > 0 else None


def _span(series: pd.Series | None, times: np.ndarray, a: float, b: float) -> list[float] | None:
    """[least, most] of a gauge over the scrapes in [a, b]."""
    v = _inside(series, times, a, b)
    return [float(v.min()), float(v.max())] if v.size else None


def warnings(rf: RouterFigures | None) -> list[str]:
    """What the router hid from the client over the run's window: backends that failed (each failure it
    retried is a request the client saw succeed, later), its retries and their backoff, a circuit that
    opened, a backend its health check took out."""
    if rf is None:
        return []
    out = []
    failed = [
        (r["backend"], r["failures"], r["requests"]) for r in rf["by_backend"] if round(r["failures"] or 0)
    ]
    if failed:
        each = ", ".join(f"{w} {f:.0f} of {n:.0f}" for w, f, n in failed)
        out.append(f"the router ({rf['router']}) counted failed requests at its backends: {each}")
    if round(rf["retries"] or 0):
        backoff = f" after {rf['retry_backoff_s']:.2f} s of backoff in all" if rf["retry_backoff_s"] else ""
        out.append(
            f"the router ({rf['router']}) retried {rf['retries']:.0f} requests{backoff}: the client's TTFT of "
            "a retried request holds the failed try and the backoff, which no engine's page counts"
        )
    decided = rf.get("prefix_decisions") or {}
    untokenized = decided.get(NO_TOKENS, 0.0)
    if round(untokenized) and untokenized >= 0.5 * sum(decided.values()):
        out.append(
            f"the router ({rf['router']}) placed {untokenized:.0f} of {sum(decided.values()):.0f} requests "
            f"without their token ids (`{NO_TOKENS}`): its cache-aware policy matches prefixes on tokens, which "
            "it does not compute for HTTP backends (VLLM_ROUTER_TOKENIZER does not change that in 0.1.17), so it "
            "sent them by load, not by prefix — this run measures that fallback, not cache-aware routing"
        )
    out += _refused(rf)
    for r in rf["by_backend"]:
        if r["circuit_opened"] or r["unhealthy_scrapes"]:
            why = ["its circuit breaker opened"] if r["circuit_opened"] else []
            why += (
                [f"its health check failed at {r['unhealthy_scrapes']} scrapes"]
                if r["unhealthy_scrapes"]
                else []
            )
            out.append(
                f"the router ({rf['router']}) stopped sending to {r['backend']} for a while: {' and '.join(why)}"
            )
    return out


def _refused(rf: RouterFigures) -> list[str]:
    """What the router answered itself or held (the EPP): errors no engine counted, requests it could place
    nowhere, time in its own queue, backends that left its ready set."""
    out, name = [], rf["router"]
    errors = {k: v for k, v in (rf.get("errors") or {}).items() if round(v)}
    if errors:
        each = ", ".join(f"{k} {v:.0f}" for k, v in errors.items())
        shed = (
            f" ({epp.SHED}: it shed the request with 429, judging the pool saturated, or found no endpoint "
            "for it — refused before any engine saw it)"
            if epp.SHED in errors
            else ""
        )
        out.append(
            f"the router ({name}) counted {sum(errors.values()):.0f} failed requests by its error code: {each}{shed}"
        )
    if round(rf.get("unplaced") or 0):
        out.append(
            f"the router ({name}) could place {rf['unplaced']:.0f} requests on no backend (its scheduler failed)"
        )
    if rf.get("held_s") and rf.get("held"):
        out.append(
            f"the router ({name}) held the {rf['held']:.0f} requests it let through {fmt.ms(rf['held_s'])} ms on "
            "average in its own flow-control queue before picking a backend: part of the client's TTFT that no "
            "engine's page counts"
        )
    ready = rf.get("ready_endpoints")
    if ready and ready[0] != ready[1]:
        out.append(
            f"the router ({name}) counted {ready[0]:.0f} to {ready[1]:.0f} ready backends during the window"
        )
    return out


def policy_starved(rf: RouterFigures | None, rs: ReplicaSet | None) -> dict[str, str]:
    """Replica → a line for each starved replica (analysis/replicas.py) that the router itself sent less
    than STARVED of an even share while nothing failed there: its policy, not the replica, kept the load
    away (a cache-aware policy does so when most prompts share a prefix, one system prompt, until its
    load-balance threshold trips). Without this the report would point at the replica's placement."""
    if rf is None or not rf["requests"]:
        return {}
    by = {host_port(r["backend"]): r for r in rf["by_backend"]}
    if rs and not set(by) & {rep["replica"] for rep in rs["by_replica"]}:
        return {}  # its backends are not the scraped replicas' URLs (the EPP names pods): no join
    even = 1.0 / rs["count"] if rs else 1.0
    out = {}
    for rep in starved(rs):
        r = by.get(rep["replica"])
        sent = (r["requests"] or 0.0) if r else 0.0  # smg lists a backend once it has an outcome
        healthy = r is None or not (
            round(r["failures"] or 0) or r["circuit_opened"] or r["unhealthy_scrapes"]
        )
        if healthy and sent < STARVED * even * rf["requests"]:
            out[rep["replica"]] = (
                f"the router ({_named(rf)}) sent replica {rep['replica']} {sent / rf['requests']:.1%} of the "
                f"requests where an even share is {even:.0%}, and nothing failed there: its policy put the load "
                f"on the other backends{_why_starved(rf)}; the server's figures are mostly the busiest replica's"
            )
    return out


def _named(rf: RouterFigures) -> str:
    """The router as a line names it: with its policy where its page names one."""
    return f"{rf['router']}, policy {rf['policy']}" if rf.get("policy") else rf["router"]


def _why_starved(rf: RouterFigures) -> str:
    """Why a policy starves a replica — said for a cache-aware one (or one the page does not name), with
    the gateway's measured mend; another policy's reasons are its own."""
    policy = rf.get("policy")
    if policy and "cache" not in policy:
        return ""
    mend = SMG_MEND if rf["router"] == SMG.name else ""
    return (
        " — a cache-aware policy does so when most prompts share a prefix (one system prompt, one tool list) "
        "until its load-balance threshold trips; a cache threshold above the share every prompt has in common "
        f"spreads new sessions{mend}"
    )
