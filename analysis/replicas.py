"""Per-replica server figures: one target served by several engine replicas, each read on its own.

The summed figures (analysis/server.py) answer for the replica set as a whole — counters summed over
label sets, gauges summed or averaged per scrape. What they hide is the question an engineer asks of
a router: did it spread the load evenly, which replica queued where the SLO broke, and did
prefix-aware routing keep each replica's cache warm (a per-replica hit rate, not the set's mean).

A replica is told apart by a label of `server_metrics.csv` that takes two values or more in the file:
- `instance` (`host:port`): the load generator scraped several /metrics URLs (the replicas behind a
  router or a Kubernetes Service), one scrape round sharing one `t`;
- `engine`: one URL serves a replica set — vLLM data-parallel ranks, the simulated engine's
  `--replicas N`. A single vLLM engine labels `engine="0"` alone: one value, no replica set.
Both varying (several URLs, each data-parallel) make `"{instance} engine={engine}"` the replica.
Samples without the label (a family the page does not label per replica) belong to no replica.

Each replica's samples go through the same `server.build` and `server.window_figures` as the whole
page — one definition of every figure — and are built once per run (`build`), then read per window.
A replica's `requests` is its engine's finished requests over the window: the increase of the E2E
histogram's count (the TTFT histogram's where the engine has no E2E one). `imbalance` is the
busiest replica's share × the replica count: 1.0 is an even spread, 2.0 on two replicas is all on one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import server
from analysis.samples import parse_labels
from analysis.serverfigures import ReplicaFigures, ReplicaSet

KEYS = ("instance", "engine")  # the labels that can tell replicas apart, in the id's order


def natural_key(text: str) -> list[str | int]:
    """`engine 10` after `engine 9`: digit runs compare as numbers (re.split alternates text and digits,
    so positions always compare like with like)."""
    return [int(x) if i % 2 else x for i, x in enumerate(re.split(r"(\d+)", text))]


def _replica_id(labels: dict[str, str], keys: list[str]) -> str | None:
    """The replica a label set belongs to; None when it lacks one of the replica labels."""
    if any(k not in labels for k in keys):
        return None
    if len(keys) == 2:
        return f"{labels['instance']} engine={labels['engine']}"
    return labels[keys[0]]


def split(df: pd.DataFrame) -> tuple[str, dict[str, pd.DataFrame]] | None:
    """The replica label (`by`: "instance", "engine" or "instance+engine") and each replica's samples,
    in natural order; None with fewer than 2 replicas. Each distinct label string is parsed once (the
    file can hold a million rows and only a few hundred distinct sets)."""
    if "labels" not in df or df.empty:
        return None
    codes, uniques = pd.factorize(df["labels"].astype(str))
    parsed = [parse_labels(str(x)) for x in uniques]
    keys = [k for k in KEYS if len({p[k] for p in parsed if k in p}) >= 2]
    if not keys:
        return None
    ids = np.array([_replica_id(p, keys) for p in parsed], dtype=object)
    rows = ids[codes]
    groups = {str(r): g for r, g in df.groupby(rows, sort=False, dropna=True)}
    if len(groups) < 2:
        return None
    return "+".join(keys), {r: groups[r] for r in sorted(groups, key=natural_key)}


@dataclass
class Replicas:
    """A run's replicas, each its own server series (built once; `figures` reads them per window)."""

    by: str
    data: dict[str, server.ServerData]


def build(df: pd.DataFrame | None) -> Replicas | None:
    """Each replica's `ServerData`; None with fewer than 2 replicas (or fewer than 2 whose samples name
    an engine's series)."""
    found = split(df) if df is not None else None
    if found is None:
        return None
    by, frames = found
    data = {}
    for rid, frame in frames.items():
        d, _ = server.build(frame.reset_index(drop=True))
        if d is not None:
            data[rid] = d
    return Replicas(by, data) if len(data) >= 2 else None


def finished(d: server.ServerData, span: list[float] | None) -> float | None:
    """The replica's finished requests over its counter window: Δ E2E count, else Δ TTFT count."""
    if span is None:
        return None
    col = next((c for c in ("e2e_count", "ttft_count") if c in d.counters), None)
    return None if col is None else server.increase(d, col, span[0], span[1])


def replica_figures(rid: str, d: server.ServerData, t0: float, t1: float) -> ReplicaFigures:
    """One replica's figures over [t0, t1] (`requests_share` is set by `figures`, over all of them)."""
    f = server.window_figures(d, t0, t1)
    return ReplicaFigures(
        replica=rid,
        requests=finished(d, f["counter_window"]),
        requests_share=None,
        generation_tokens=f["generation_tokens"],
        server_gen_tok_per_s=f["server_gen_tok_per_s"],
        running_mean=f["running_mean"],
        running_max=f["running_max"],
        waiting_max=f["waiting_max"],
        kv_cache_usage_max=f["kv_cache_usage_max"],
        prefix_cache_hit_rate=f["prefix_cache_hit_rate"],
        server_ttft_mean_s=f["server_ttft_mean_s"],
        server_queue_mean_s=f["server_queue_mean_s"],
    )


def figures(reps: Replicas | None, t0: float, t1: float) -> ReplicaSet | None:
    """summary.json `server.replicas` (and each level's) over [t0, t1]; None without a replica set.
    Shares are of the replicas' summed requests; without any finished request there is no busiest
    replica and no imbalance (None), rather than a tie among zeros."""
    if reps is None:
        return None
    rows = [replica_figures(rid, d, t0, t1) for rid, d in reps.data.items()]
    _, busiest, imbalance = spread(rows, "replica")
    return ReplicaSet(by=reps.by, count=len(rows), by_replica=rows, busiest=busiest, imbalance=imbalance)


def spread(rows: list, key: str) -> tuple[float, str | None, float | None]:
    """Sets each row's `requests_share` (of the counted rows' sum) and returns (that sum, the busiest row's
    `key`, its share × the row count). The first of equals is the busiest; without any request there is
    no busiest and no imbalance (None), rather than a tie among zeros. A router's backends share it."""
    counted = [r for r in rows if r["requests"] is not None]
    total = sum(r["requests"] or 0.0 for r in counted)
    if total <= 0:
        return total, None, None
    for r in counted:
        r["requests_share"] = (r["requests"] or 0.0) / total
    top = max(counted, key=lambda r: r["requests"] or 0.0)  # max keeps the first of equals
    return total, top[key], (top["requests_share"] or 0.0) * len(rows)


STARVED = 0.5  # a replica below this fraction of an even share gets a warning line


def starved(rs: ReplicaSet | None) -> list[ReplicaFigures]:
    """The replicas that finished less than STARVED of an even share of the run's requests."""
    if rs is None or rs["imbalance"] is None:
        return []
    even = 1.0 / rs["count"]
    return [
        r
        for r in rs["by_replica"]
        if r["requests_share"] is not None and r["requests_share"] < STARVED * even
    ]


def starved_warnings(rs: ReplicaSet | None, explained: dict[str, str] | None = None) -> list[str]:
    """One line per starved replica: a replica that is slow (a shared core, a throttled GPU, a cold cache)
    or failing gets fewer requests back from a router that spreads connections, and the set's figures are
    then mostly the others'. `explained`: replica → the line that says better why (the router's own page
    shows its policy sent it little: analysis/router.py `policy_starved`)."""
    even = 1.0 / rs["count"] if rs else 1.0
    return [
        (explained or {}).get(r["replica"])
        or f"replica {r['replica']} finished {r['requests_share']:.1%} of the engine's requests where an even "
        f"share is {even:.0%}: a slow or failing replica gets its users back late — check its placement "
        "(cores, GPU), its health and the router; the server's figures are mostly the other replicas'"
        for r in starved(rs)
    ]
