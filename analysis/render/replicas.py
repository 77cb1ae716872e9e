"""A replica set's figures in summary.md and report.html: one line on the spread, one row per replica.

Nothing is computed here (analysis/replicas.py does); the line leads with the busiest replica because
that is where a router's imbalance shows first, and the table lets the reader find which replica
queued, ran hot on its KV cache, or missed its prefix cache. A run of one replica has no section.
"""

from __future__ import annotations

import html as _html

from analysis import fmt
from analysis.render.page import table
from analysis.results import ReplicaSet

HEADERS = [
    "replica", "requests", "share", "gen tok/s", "running mean", "running max", "queued max", "KV max",
    "prefix hit", "server TTFT mean (ms)", "queue mean (ms)",
]  # fmt: skip


def line(rs: ReplicaSet) -> str:
    """`Replicas (3, by instance): the busiest, 10.0.0.2:8000, finished 41 % of the engine's requests
    (1.23× an even share).`; without finished-request counts, says so."""
    head = f"Replicas ({rs['count']}, by {rs['by'].replace('+', ' and ')})"
    top = next((r for r in rs["by_replica"] if r["replica"] == rs["busiest"]), None)
    if top is None or rs["imbalance"] is None:
        return f"{head}: no finished requests counted by the engine in the window."
    return (
        f"{head}: the busiest, {top['replica']}, finished {fmt.pct(top['requests_share'], 0)} of the "
        f"engine's requests ({rs['imbalance']:.2f}× an even share)."
    )


def rows(rs: ReplicaSet) -> list[list[str]]:
    """One row per replica, in the replicas' order (HEADERS)."""
    return [
        [
            r["replica"],
            fmt.num(r["requests"], 0),
            fmt.pct(r["requests_share"]),
            fmt.num(r["server_gen_tok_per_s"], 1),
            fmt.num(r["running_mean"], 1),
            fmt.num(r["running_max"], 0),
            fmt.num(r["waiting_max"], 0),
            fmt.pct(r["kv_cache_usage_max"]),
            fmt.pct(r["prefix_cache_hit_rate"]),
            fmt.ms(r["server_ttft_mean_s"]),
            fmt.ms(r["server_queue_mean_s"]),
        ]
        for r in rs["by_replica"]
    ]


def markdown(rs: ReplicaSet | None) -> list[str]:
    """summary.md's lines (none without a replica set)."""
    if not rs:
        return []
    return ["", line(rs), "", fmt.md_table(HEADERS, rows(rs))]


def html(rs: ReplicaSet | None) -> str:
    """report.html's paragraph and table (empty without a replica set)."""
    if not rs:
        return ""
    return f'<p>{_html.escape(line(rs))}</p>\n<div class="scroll">{table(HEADERS, rows(rs))}</div>'
