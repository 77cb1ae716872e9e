"""summary.md and the CLI's console text, from a `Summary`.

Both lead with the answer (headline, latencies, capacity, verdict); summary.md then lists every
table the report has, as GitHub markdown. The cells come from render/tables.py, so the console,
summary.md and report.html agree figure for figure.
"""

from __future__ import annotations

from pathlib import Path

from analysis import fmt, images
from analysis.render import (
    gatewaypage,
    models,
    reasoning,
    replicas,
    router,
    server,
    spans,
    specdecode,
    tenants,
    uncertainty,
)
from analysis.render.tables import (
    CANCELLED_NOTE,
    ERROR_HEADERS,
    LATENCY_HEADERS,
    VERDICT_HEADERS,
    capacity_cell,
    capacity_text,
    error_rows,
    headline_headers,
    headline_row,
    latency_rows,
    lead_text,
    open_loop_rows,
    startup_text,
    step_headers,
    step_notes,
    step_rows,
    throughput_text,
    verdict_line,
    verdict_rows,
)
from analysis.results import OpenLoop, Summary


def summary_md(s: Summary) -> str:
    """summary.md: run facts, warnings, then headline, latency, throughput, errors, verdicts, steps."""
    r, t = s.run, s.throughput
    lines = [f"# {r.name} — summary", ""]
    facts = [
        ("target", r.target),
        ("model", r.model),
        ("dataset", r.dataset),
        ("shape", r.shape),
        ("images", s.images and images.text(s.images)),
        ("window", f"{fmt.utc(t.t_start_unix)} + {fmt.duration(t.duration_s)}"),
        ("SLO", f"{s.slo.name}: {s.slo.describe()}"),
    ]
    lines += [f"- **{k}**: {v}" for k, v in facts if v]
    for w in s.warnings:
        lines.append(f"\n> **Warning**: {w}")
    if lead := lead_text(s):
        lines += ["", f"**{lead}**", "", capacity_text(s)]
    headline = fmt.md_table(headline_headers(s), [headline_row(s)], right=set(range(8)))
    lines += ["", "## Headline", "", headline, ""]
    if up := startup_text(s):
        lines += [up, ""]
    lines += ["## Latency", "", fmt.md_table(LATENCY_HEADERS, latency_rows(s)), ""]
    lines += reasoning.markdown(s)
    lines += specdecode.markdown(s)
    cancelled = f" {t.cancelled:,} were {CANCELLED_NOTE}" if t.cancelled else ""
    lines += ["## Throughput", "", throughput_text(s) + cancelled, ""]
    lines += ["## Errors", ""]
    lines.append(fmt.md_table(ERROR_HEADERS, error_rows(s)) if s.errors else "None.")
    lines += [
        "",
        "## SLO verdicts",
        "",
        fmt.md_table(VERDICT_HEADERS, verdict_rows(s.verdicts, s.is_ramp), right={2, 3}),
        "",
    ]
    lines += tenants.markdown(s)
    lines += models.markdown(s)
    lines += uncertainty.markdown(s)
    lines += ["## Per step", "", capacity_text(s), ""]
    if s.steps:
        lines += [fmt.md_table(step_headers(s.load_unit), step_rows(s.steps)), ""]
        lines += [f"- {n}" for n in step_notes(s.steps, s.load_unit)]
    if s.open_loop is not None:
        lines += open_loop_md(s.open_loop)
    lines += server.markdown(s)
    lines += router.markdown(s)
    lines += gatewaypage.markdown(s)
    lines += spans.markdown(s)
    lines += ["", "Definitions: README.md § Analysis. Every figure is recomputed from requests.csv.", ""]
    return "\n".join(lines)


def open_loop_md(ol: OpenLoop) -> list[str]:
    return [
        "",
        "## Open loop (latency from the intended send time)",
        "",
        f"Scheduled {fmt.num(ol.scheduled_rate_rps)} req/s, achieved {fmt.num(ol.achieved_rate_rps)} req/s; "
        f"goodput from scheduled time {fmt.num(ol.goodput_from_scheduled_req_per_s)} req/s "
        f"(attainment {fmt.pct(ol.slo_attainment_from_scheduled)}).",
        "",
        fmt.md_table(LATENCY_HEADERS[:-1], open_loop_rows(ol)),
    ]


def console_text(s: Summary, report: Path | None = None) -> str:
    """What the CLI prints: a ramp's answer, the headline, latencies, errors, verdicts with their capacity."""
    t = s.throughput
    out = [f"== {s.run.name}  ({t.requests:,} requests, {fmt.duration(t.duration_s)})"]
    if lead := lead_text(s):
        out.append(lead)
    out += [f"WARNING: {w}" for w in s.warnings]
    out += [fmt.text_table(headline_headers(s), [headline_row(s)]), ""]
    out += [fmt.text_table(LATENCY_HEADERS, latency_rows(s)), ""]
    if up := startup_text(s):
        out.append(up)
    if s.errors:
        note = " (cancelled: cut by the load generator, not counted in attainment)" if t.cancelled else ""
        out.append("errors: " + ", ".join(f"{k} {v:,}" for k, v in s.errors.items()) + note)
    if (line := reasoning.console_line(s)) is not None:
        out.append(line)
    if (line := specdecode.console_line(s)) is not None:
        out.append(line)
    if s.images is not None:
        out.append(f"images: {images.text(s.images)}")
    out.append(capacity_text(s))
    out.append(verdict_line(s.verdict, ramp=s.is_ramp))
    out += tenants.console(s)
    out += models.console(s)
    if s.is_ramp:
        rows = [[v.slo, "PASS" if v.passed else "FAIL", fmt.pct(v.slo_attainment), capacity_cell(v.capacity)]
                for v in s.verdicts]  # fmt: skip
        out.append(fmt.text_table(["SLO", "whole run", "attainment", "capacity: where it breaks"], rows))
    if s.server is not None:
        out.append(server.console_line(s.server))
        if (line := server.lora_line(s.server)) is not None:
            out.append(line)
        if (reps := s.server.get("replicas")) is not None:
            out.append(replicas.line(reps))
    if s.router is not None:
        out.append(router.line(s.router))
    if s.gateway_page is not None:
        out.append(gatewaypage.line(s.gateway_page))
    if (line := spans.console_line(s.server_timing)) is not None:
        out.append(line)
    if report is not None:
        out.append(f"report: {report}")
    return "\n".join(out)
