"""The "Speculative decoding" section of summary.md and report.html, and its console line.

Laid out only (analysis/specdecode.py computes): a run whose server neither stated nor counted
speculative decoding has no section, so its outputs do not change. The per-level table is the point:
acceptance falls as the batch grows, and whether the tokens it bought still pay shows beside the
TPOT and throughput of the same level. A mixed run adds a table per class: the tenants' texts draft
differently, and the pooled figure is no one's.
"""

from __future__ import annotations

from analysis import fmt
from analysis.render.page import esc, table
from analysis.results import Summary
from analysis.specdecode import SpecFigures, Speculative

EXPLAIN = (
    "Acceptance = accepted draft tokens / draft tokens; length = 1 + accepted / verify steps (the "
    'tokens one step yields: its verified token and the accepted ones). "stated": pooled over the '
    "completed requests from what the server said of each (requests.csv spec_ columns: vLLM "
    "--per-request-spec-decode-metrics, SGLang's meta_info, llama-server's timings); \"server\": its "
    "counters over the level's window (vLLM spec_decode_num_*, TensorRT-LLM's counters and length gauge, "
    "SGLang's gauges). Tokens/chunk is the client's own view: with one chunk per step, the length seen "
    "from outside. A mix's classes: their completed requests in the run's window."
)


def headers(unit: str) -> list[str]:
    return [
        "step", f"load ({unit})", "requests", "acceptance (stated)", "length (stated)", "acceptance (server)",
        "length (server)", "tokens/chunk", "output tok/s", "TPOT p50 (ms)",
    ]  # fmt: skip


def rows(sp: Speculative) -> list[list[str]]:
    out = []
    for s in sp.steps:
        r = s.requests
        out.append(
            [
                str(s.step), fmt.level(s.load), f"{r.requests:,}" if r else "–",
                fmt.pct(r.acceptance_rate if r else None), fmt.num(r.acceptance_length if r else None),
                fmt.pct(s.server_acceptance_rate), fmt.num(s.server_acceptance_length),
                fmt.num(s.tokens_per_chunk), fmt.num(s.output_tok_per_s, 0), fmt.ms(s.tpot_p50_s),
            ]
        )  # fmt: skip
    return out


CLASS_HEADERS = ["class", "requests", "acceptance (stated)", "length (stated)", "tokens/chunk"]


def class_rows(sp: Speculative) -> list[list[str]]:
    out = []
    for c in sp.classes:
        r = c.requests
        out.append(
            [
                c.name, f"{r.requests:,}" if r else "–", fmt.pct(r.acceptance_rate if r else None),
                fmt.num(r.acceptance_length if r else None), fmt.num(c.tokens_per_chunk),
            ]
        )  # fmt: skip
    return out


def _by_class(sp: Speculative) -> str | None:
    """`accepted by class: chat 41.0 %, code 72.0 %` — the stated acceptance, else the tokens per chunk."""
    stated = [c for c in sp.classes if c.requests is not None and c.requests.acceptance_rate is not None]
    if stated:
        return "accepted by class: " + ", ".join(
            f"{c.name} {fmt.pct(c.requests.acceptance_rate)}" for c in stated
        )
    chunked = [c for c in sp.classes if c.tokens_per_chunk is not None]
    if chunked:
        return "tokens per chunk by class: " + ", ".join(
            f"{c.name} {fmt.num(c.tokens_per_chunk)}" for c in chunked
        )
    return None


def _stated(r: SpecFigures) -> str:
    length = f", {fmt.num(r.acceptance_length)} tokens per verify step" if r.acceptance_length else ""
    return (
        f"the server accepted {fmt.pct(r.acceptance_rate)} of {r.draft_tokens:,} draft tokens{length} "
        f"(stated for {r.requests:,} completed requests)"
    )


def text(sp: Speculative) -> str:
    """The section's sentence: the run's acceptance, each source as it said it."""
    parts = []
    if (r := sp.requests) is not None:
        parts.append(_stated(r))
    if sp.server_acceptance_rate is not None or sp.server_acceptance_length is not None:
        positions = sp.server_acceptance_by_position
        at = f" (by draft position: {', '.join(fmt.pct(x) for x in positions)})" if positions else ""
        parts.append(
            f"its counters say {fmt.pct(sp.server_acceptance_rate)} accepted{at}, "
            f"{fmt.num(sp.server_acceptance_length)} tokens per verify step"
        )
    if sp.tokens_per_chunk is not None:
        parts.append(f"the client received {fmt.num(sp.tokens_per_chunk)} tokens per chunk")
    if (classes := _by_class(sp)) is not None:
        parts.append(classes)
    return "Speculative decoding: " + "; ".join(parts) + "."


def markdown(s: Summary) -> list[str]:
    if (sp := s.speculative) is None:
        return []
    out = ["## Speculative decoding", "", text(sp), ""]
    if sp.steps:
        out += [fmt.md_table(headers(s.load_unit), rows(sp)), ""]
    if sp.classes:
        out += [fmt.md_table(CLASS_HEADERS, class_rows(sp)), ""]
    return [*out, EXPLAIN, ""]


def html(s: Summary) -> str:
    if (sp := s.speculative) is None:
        return ""
    parts = ["<h2>Speculative decoding</h2>", f"<p>{esc(text(sp))}</p>"]
    if sp.steps:
        parts.append(f'<div class="scroll">{table(headers(s.load_unit), rows(sp))}</div>')
    if sp.classes:
        parts.append(f'<div class="scroll">{table(CLASS_HEADERS, class_rows(sp))}</div>')
    parts.append(f'<p class="small">{esc(EXPLAIN)}</p>')
    return "\n".join(parts)


def console_line(s: Summary) -> str | None:
    return None if s.speculative is None else text(s.speculative)
