"""A gateway's own TTFT in summary.md, report.html and the console: one line cutting the client's TTFT
in three, one row per level.

Nothing is computed here (analysis/gatewaypage.py does). The line gives the three means over the same
span — the client's, the gateway's, the engine's — and the two differences between them; the per-level
table shows which of them grows with the load: a gap between the gateway and the engine that grows is
queueing in front of the engine (the gateway, an endpoint picker, a second hop), not in it.
"""

from __future__ import annotations

import html as _html

from analysis import fmt
from analysis.render.page import table
from analysis.results import GatewayFigures, GatewayLevel, Summary

STEP_HEADERS = [
    "step", "load", "gateway requests", "client TTFT mean (ms)", "gateway TTFT mean (ms)", "engine TTFT mean (ms)",
    "client − gateway (ms)", "gateway − engine (ms)",
]  # fmt: skip


def cut(g: GatewayLevel) -> str | None:
    """`the client's TTFT 426 ms: 14.0 ms up to the gateway, 32.0 ms from it to the engine, 380 ms in the
    engine` (the engine's part only where its page was scraped); None without a compared span."""
    client, gateway = g["client_ttft_mean_s"], g["gateway_ttft_compared_s"]
    if client is None or gateway is None:
        return None
    out = f"the client's TTFT {fmt.ms(client)} ms: {fmt.ms(g['client_minus_gateway_ttft_s'])} ms up to the gateway"
    if g["engine_ttft_mean_s"] is None:
        return f"{out}, {fmt.ms(gateway)} ms from there on"
    return (
        f"{out}, {fmt.ms(g['gateway_minus_engine_ttft_s'])} ms from it to the engine and back, "
        f"{fmt.ms(g['engine_ttft_mean_s'])} ms in the engine"
    )


def line(g: GatewayFigures) -> str:
    """`Gateway (OpenTelemetry GenAI metrics, 1,204 requests): TTFT mean 412 ms, p90 620 ms at the
    gateway; the client's TTFT 426 ms: …`."""
    head = f"Gateway ({g['source']}, {fmt.num(g['requests'], 0)} requests)"
    if g["ttft_mean_s"] is None:
        return f"{head}: no first token timed in the window."
    p90 = f", p90 {fmt.ms(g['ttft_p90_s'])} ms" if g["ttft_p90_s"] is not None else ""  # where it has buckets
    parts = f"{head}: TTFT mean {fmt.ms(g['ttft_mean_s'])} ms{p90} at the gateway"
    said = cut(g)
    return f"{parts}; {said}." if said else f"{parts}."


def step_rows(g: GatewayFigures, s: Summary) -> list[list[str]]:
    loads = {x.step: fmt.level(x.load) for x in s.steps}
    return [
        [
            str(st["step"]), loads.get(st["step"], "—"), fmt.num(st["requests"], 0), fmt.ms(st["client_ttft_mean_s"]),
            fmt.ms(st["gateway_ttft_compared_s"]), fmt.ms(st["engine_ttft_mean_s"]),
            fmt.ms(st["client_minus_gateway_ttft_s"]), fmt.ms(st["gateway_minus_engine_ttft_s"]),
        ]
        for st in g["steps"]
    ]  # fmt: skip


def markdown(s: Summary) -> list[str]:
    """summary.md's `## Gateway` section (none without a gateway's page)."""
    g = s.gateway_page
    if not g:
        return []
    out = ["", "## Gateway (its own metrics page)", "", line(g)]
    if len(g["steps"]) > 1:
        out += ["", fmt.md_table(STEP_HEADERS, step_rows(g, s))]
    return out


def html(s: Summary) -> str:
    g = s.gateway_page
    if not g:
        return ""
    parts = ["<h2>Gateway (its own metrics page)</h2>", f"<p>{_html.escape(line(g))}</p>"]
    if len(g["steps"]) > 1:
        parts.append(f'<div class="scroll">{table(STEP_HEADERS, step_rows(g, s))}</div>')
    return "\n".join(parts)


def at_level(g: GatewayFigures | None, step_no: int) -> str | None:
    """The breaking level's cut, for the answer: `at the gateway, the client's TTFT 2,140 ms: …`."""
    level = next((x for x in (g or {}).get("steps", []) if x.get("step") == step_no), None)  # type: ignore[union-attr]
    said = cut(level) if level else None  # type: ignore[arg-type]
    return f"by the gateway's page, {said}" if said else None
