"""The "Reasoning" and "Tool calls" sections of summary.md and report.html, and the console line.

Laid out only (analysis/reasoning.py computes): a run in which no request reasoned or called a tool
has neither section, so its outputs do not change.
"""

from __future__ import annotations

from analysis import fmt
from analysis.reasoning import Reasoning, ToolCalls
from analysis.render.page import esc, table
from analysis.render.tables import LATENCY_HEADERS
from analysis.results import Dist, Summary

EXPLAIN = (
    "TTFT counts the first generated token of any kind, reasoning included; TTFO (time to first output) "
    "the first token of the answer (content or a tool call); reasoning time = TTFO − TTFT. Reasoning "
    "tokens are the server's count (usage.completion_tokens_details.reasoning_tokens), else the reasoning chunks."
)
TOOLS_EXPLAIN = (
    "Tool-call TTFT: send → the first tool-call delta (it carries the function name); argument chunks: "
    "the deltas carrying the arguments."
)


def _six(d: Dist, unit: str = "ms") -> list[str]:
    cells = (d.mean, d.p50, d.p90, d.p95, d.p99, d.max)
    return [fmt.ms(v) if unit == "ms" else fmt.num(v, 1) for v in cells]


def reasoning_text(r: Reasoning) -> str:
    return (
        f"{r.requests:,} completed requests reasoned ({fmt.pct(r.share)}); reasoning tokens are "
        f"{fmt.pct(r.token_share)} of the output tokens."
    )


def reasoning_rows(r: Reasoning) -> list[list[str]]:
    return [
        ["TTFO", *_six(r.ttfo), f"{r.ttfo.n:,}"],
        ["reasoning time (TTFO − TTFT)", *_six(r.reasoning_time), f"{r.reasoning_time.n:,}"],
        ["reasoning tokens (count)", *_six(r.reasoning_tokens, "n"), f"{r.reasoning_tokens.n:,}"],
    ]


def tool_text(t: ToolCalls) -> str:
    return f"{t.requests:,} completed requests were answered with a tool call ({fmt.pct(t.share)})."


def tool_rows(t: ToolCalls) -> list[list[str]]:
    return [
        ["tool-call TTFT", *_six(t.tool_ttft), f"{t.tool_ttft.n:,}"],
        ["argument chunks (count)", *_six(t.argument_chunks, "n"), f"{t.argument_chunks.n:,}"],
    ]


def markdown(s: Summary) -> list[str]:
    """summary.md's sections (no lines when the run neither reasoned nor called tools)."""
    out: list[str] = []
    if (r := s.reasoning) is not None:
        out += ["## Reasoning", "", reasoning_text(r), "", fmt.md_table(LATENCY_HEADERS, reasoning_rows(r))]
        out += ["", EXPLAIN, ""]
    if (t := s.tool_calls) is not None:
        out += ["## Tool calls", "", tool_text(t), "", fmt.md_table(LATENCY_HEADERS, tool_rows(t)), ""]
        out += [TOOLS_EXPLAIN, ""]
    return out


def html(s: Summary) -> str:
    """report.html's sections ("" when the run neither reasoned nor called tools)."""
    parts = []
    if (r := s.reasoning) is not None:
        parts += ["<h2>Reasoning</h2>", f"<p>{esc(reasoning_text(r))}</p>"]
        parts += [table(LATENCY_HEADERS, reasoning_rows(r)), f'<p class="small">{esc(EXPLAIN)}</p>']
    if (t := s.tool_calls) is not None:
        parts += ["<h2>Tool calls</h2>", f"<p>{esc(tool_text(t))}</p>"]
        parts += [table(LATENCY_HEADERS, tool_rows(t)), f'<p class="small">{esc(TOOLS_EXPLAIN)}</p>']
    return "\n".join(parts)


def console_line(s: Summary) -> str | None:
    """One line for the CLI when the run reasoned."""
    r = s.reasoning
    if r is None:
        return None
    return (
        f"reasoning: TTFO p50 {fmt.ms(r.ttfo.p50)} ms, p95 {fmt.ms(r.ttfo.p95)} ms; "
        f"reasoning time p50 {fmt.ms(r.reasoning_time.p50)} ms; {fmt.num(r.reasoning_tokens.mean, 0)} "
        f"reasoning tokens per request ({r.requests:,} requests)"
    )
