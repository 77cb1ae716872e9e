"""A router's own page in summary.md, report.html and the console: one line on its spread, one row per backend.

Nothing is computed here (analysis/router.py does). The line names the busiest backend first, as the
replicas' line does, then what the router hid from the client: failures at a backend, retries. The
per-level table follows the spread as the load rises: a cache-aware policy that sends most of the
load to one backend shows there before the SLO breaks.
"""

from __future__ import annotations

import html as _html

from analysis import fmt
from analysis.render.page import table
from analysis.results import RouterFigures, Summary

HEADERS = [
    "backend", "requests", "share", "failed", "in flight max", "unhealthy scrapes", "circuit opened",
    "engine finished", "queue max",
]  # fmt: skip
STEP_HEADERS = ["step", "load", "requests", "busiest backend", "its share", "× an even share"]
# a router that answers or holds requests itself (the EPP): per level, where its admission control set in
OWN_HEADERS = ["its own errors", "held in its queue (ms)"]


def line(rf: RouterFigures) -> str:
    """`Router (vllm-router, 2 backends): the busiest, http://10.0.0.2:8000, got 52 % of 1,204 requests
    (1.04× an even share); 16 failed at a backend, 16 retried.`"""
    n = len(rf["by_backend"])
    policy = f", policy {rf['policy']}" if rf.get("policy") else ""
    head = f"Router ({rf['router']}{policy}, {n} backend{'s' if n != 1 else ''})"
    top = next((r for r in rf["by_backend"] if r["backend"] == rf["busiest"]), None)
    if top is None or rf["imbalance"] is None:
        return f"{head}: no request passed to a backend in the window."
    decided = rf.get("prefix_decisions")
    how = (
        ", ".join(f"{v:.0f} {k.replace('_', ' ')}" for k, v in decided.items() if round(v)) if decided else ""
    )
    return (
        f"{head}: the busiest, {top['backend']}, got {fmt.pct(top['requests_share'], 0)} of "
        f"{fmt.num(rf['requests'], 0)} requests ({rf['imbalance']:.2f}× an even share); "
        + "; ".join(_counted(rf))
        + (f"; its cache-aware placements: {how}." if how else ".")
    )


def _counted(rf: RouterFigures) -> list[str]:
    """What the router counted of its own beside the spread — failures and retries where it counts them
    (vllm-router, the gateway), its own error answers and the time it took (the EPP)."""
    out = []
    if any(r["failures"] is not None for r in rf["by_backend"]) or rf["retries"] is not None:
        failed = sum(r["failures"] or 0.0 for r in rf["by_backend"])
        out.append(f"{failed:.0f} failed at a backend, {fmt.num(rf['retries'], 0)} retried")
    errors = {k: v for k, v in (rf.get("errors") or {}).items() if round(v)}
    if rf.get("errors") is not None:
        each = f" ({', '.join(f'{k} {v:.0f}' for k, v in errors.items())})" if errors else ""
        out.append(f"it counted {sum(errors.values()):.0f} errors{each}")
    if rf.get("pick_s") is not None:
        out.append(f"picking took {fmt.ms(rf['pick_s'])} ms a request")
    if rf.get("held_s") is not None:
        out.append(f"its queue held each {fmt.ms(rf['held_s'])} ms")
    split = {k: v for k, v in (rf.get("disagg_decisions") or {}).items() if round(v)}
    if split:
        out.append("its disaggregation decisions: " + ", ".join(f"{v:.0f} {k}" for k, v in split.items()))
    return out


def rows(rf: RouterFigures) -> list[list[str]]:
    return [
        [
            r["backend"],
            fmt.num(r["requests"], 0),
            fmt.pct(r["requests_share"]),
            fmt.num(r["failures"], 0),
            fmt.num(r["running_max"], 0),
            fmt.num(r["unhealthy_scrapes"], 0),
            "—" if r["circuit_opened"] is None else ("yes" if r["circuit_opened"] else "no"),
            fmt.num(r["engine_finished"], 0),
            fmt.num(r.get("queue_max"), 0),
        ]
        for r in rf["by_backend"]
    ]


def _own(rf: RouterFigures) -> bool:
    return rf.get("errors") is not None or rf.get("held_s") is not None


def _errors(errors: dict[str, float] | None) -> str:
    return fmt.num(sum(errors.values()), 0) if errors is not None else fmt.num(None)


def step_headers(rf: RouterFigures) -> list[str]:
    return STEP_HEADERS + (OWN_HEADERS if _own(rf) else [])


def step_rows(rf: RouterFigures, s: Summary) -> list[list[str]]:
    """Per level: the router's requests, its busiest backend and that one's share (and, for a router that
    answers or holds requests itself, what it did so there)."""
    loads = {x.step: fmt.level(x.load) for x in s.steps}
    own = _own(rf)
    out = []
    for st in rf["steps"]:
        top = next((r for r in st.get("by_backend", []) if r["backend"] == st.get("busiest")), None)
        out.append(
            [
                str(st["step"]),
                loads.get(st["step"], "—"),
                fmt.num(st.get("requests"), 0),
                top["backend"] if top else "—",
                fmt.pct(top["requests_share"]) if top else "—",
                fmt.num(st.get("imbalance"), 2),
            ]
            + ([_errors(st.get("errors")), fmt.ms(st.get("held_s"))] if own else [])
        )
    return out


def markdown(s: Summary) -> list[str]:
    """summary.md's `## Router` section (none without a router's page)."""
    rf = s.router
    if not rf:
        return []
    out = ["", "## Router (its own metrics page)", "", line(rf), "", fmt.md_table(HEADERS, rows(rf))]
    if len(rf["steps"]) > 1:
        out += ["", fmt.md_table(step_headers(rf), step_rows(rf, s))]
    return out


def html(s: Summary) -> str:
    rf = s.router
    if not rf:
        return ""
    parts = ["<h2>Router (its own metrics page)</h2>", f"<p>{_html.escape(line(rf))}</p>"]
    parts.append(f'<div class="scroll">{table(HEADERS, rows(rf))}</div>')
    if len(rf["steps"]) > 1:
        parts.append(f'<div class="scroll">{table(step_headers(rf), step_rows(rf, s))}</div>')
    return "\n".join(parts)
