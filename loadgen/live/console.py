"""The headless console's LLM table, printed beside Locust's own every few seconds."""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust.runners import WorkerRunner

from loadgen import context
from loadgen.state.livestats import LiveStats

log = logging.getLogger("goodput")


def console_table(snap: dict, slo_name: str) -> str:
    lines = [f"{'LLM metric':<10} {'count':>8} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}"]
    reasoned = bool(snap.get("REASONING", {}).get("count"))
    for name in ("TTFT", "TTFO", "TPOT", "ITL", "E2E"):
        d = snap.get(name) or {"count": 0}
        if not d["count"] or (name == "TTFO" and not reasoned):  # without reasoning TTFO is TTFT
            continue
        lines.append(
            f"{name:<10} {d['count']:>8} {d['p50_ms']:>9.0f} {d['p95_ms']:>9.0f} {d['p99_ms']:>9.0f}"
        )
    att = snap["slo_attainment"]
    lines.append(
        f"sent {snap['sent']}  output tok/s {snap['output_tok_per_s']:.0f}  "
        f"SLO[{slo_name}] attainment {'-' if att is None else f'{att:.1%}'}  goodput {snap['goodput_rps']:.2f} req/s"
    )
    if reasoned and snap.get("reasoning_tokens_mean") is not None:
        d = snap["REASONING"]
        lines.append(
            f"reasoning: {d['count']} requests, {snap['reasoning_tokens_mean']:.0f} tokens per request, "
            f"reasoning time p50 {d['p50_ms']:.0f} ms p95 {d['p95_ms']:.0f} ms"
        )
    return "\n".join(lines)


def print_loop(stats: LiveStats, slo_name: str, interval_s: float = 10.0) -> None:
    """Headless runs: a compact LLM table beside Locust's own periodic table."""
    while True:
        gevent.sleep(interval_s)
        snap = stats.snapshot()
        if snap["sent"]:
            log.info("\n%s", console_table(snap, slo_name))


def install(events: Any) -> None:
    """Headless master/local runner: print the table every 10 s while the process lives."""

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        ctx = context.find(environment)
        opts = environment.parsed_options
        if ctx is None or isinstance(runner, WorkerRunner) or not getattr(opts, "headless", False):
            return
        gevent.spawn(print_loop, ctx.live, ctx.slo.name)
