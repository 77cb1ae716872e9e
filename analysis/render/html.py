"""report.html: one self-contained file — verdicts, tables, plots (embedded PNG), run metadata; no network.

Readable at a glance: the first screen answers "did it meet the SLO, and up to what load?";
the plots and tables below are the evidence. Built from a `Summary`, the run's run.json (the
metadata table) and the plots already drawn (analysis/outputs.py draws them).
"""

from __future__ import annotations

from pathlib import Path

from analysis import fmt, images
from analysis.render import (
    gatewaypage,
    models,
    reasoning,
    router,
    server,
    spans,
    specdecode,
    tenants,
    uncertainty,
)
from analysis.render.page import esc, figure, page, table
from analysis.render.tables import (
    CANCELLED_NOTE,
    LATENCY_HEADERS,
    VERDICT_HEADERS,
    capacity_phrase,
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
    verdict_rows,
)
from analysis.results import OpenLoop, Summary, Verdict

META_KEYS = [
    "run_id", "name", "target", "model", "user_class", "transport", "api", "dataset", "shape", "seed", "git_commit",
    "locust_version", "workers", "t_start_unix", "t_end_unix", "requests_sent", "rows_received", "lost_rows",
]  # fmt: skip
META_LABELS = {
    "run_id": "run id",
    "locust_version": "Locust version",
    "t_start_unix": "start",
    "t_end_unix": "end",
}


def verdict_cards(verdicts: list[Verdict], ramp: bool = False) -> str:
    """One card per SLO: the whole run's verdict and, with load levels, where that SLO breaks."""
    cards = []
    for i, v in enumerate(verdicts):
        cls = ("pass" if v.passed else "fail") + (" primary" if i == 0 else "")
        failed = [c.label for c in v.checks if not c.passed]
        if v.slo_attainment is None or v.slo_attainment < v.attain_target:
            failed.insert(0, "attainment below target")
        why = f"failed: {', '.join(failed)}" if failed else ""
        cap = (
            f'<div class="cap"><b>{esc(capacity_phrase(v.slo, v.capacity))}</b></div>'
            if ramp and v.capacity
            else ""
        )
        scope = " (whole run)" if ramp else ""
        cards.append(
            f'<div class="card {cls}"><div class="name">{esc(v.slo)}{" (primary)" if i == 0 else ""}</div>{cap}'
            f'<div class="big">{"PASS" if v.passed else "FAIL"}{scope}</div>'
            f"<div>attainment <b>{esc(fmt.pct(v.slo_attainment))}</b> (target {esc(fmt.pct(v.attain_target, 0))})</div>"
            f"<div>goodput <b>{esc(fmt.num(v.goodput_req_per_s))}</b> req/s</div>"
            f'<div class="small">{esc(v.describe)}</div><div class="small">{esc(why)}</div></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def meta_table(meta: dict, run_dir: str) -> str:
    """run.json as the reader needs it, plus the run folder and each load generator's lag, CPU and
    read lag (how long its bytes waited in the kernel)."""
    rows = []
    for k in META_KEYS:
        if k in meta and meta[k] not in (None, ""):
            rows.append([META_LABELS.get(k, k.replace("_", " ")), meta_fact(k, meta[k])])
    rows.append(["run folder", run_dir])
    lg = meta.get("loadgen") if isinstance(meta.get("loadgen"), dict) else {}
    for wid, w in (lg.get("workers") or {}).items():
        if isinstance(w, dict):
            lag, cpu = w.get("lag_ms") or {}, w.get("cpu_percent") or {}
            read = w.get("read_lag_ms") if isinstance(w.get("read_lag_ms"), dict) else {}
            reads = f"; read lag p99 {fmt.num(read.get('p99'), 1)} ms" if read.get("p99") is not None else ""
            rows.append(
                [f"load generator {wid}", f"lag p50 {fmt.num(lag.get('p50'), 1)} ms, p99 {fmt.num(lag.get('p99'), 1)} ms, "
                 f"max {fmt.num(lag.get('max'), 1)} ms; CPU mean {fmt.num(cpu.get('mean'), 1)} %, max {fmt.num(cpu.get('max'), 1)} %{reads}"]
            )  # fmt: skip
    return table(["key", "value"], [[str(r[0]), str(r[1])] for r in rows], cls="meta")


def meta_fact(key: str, v: object) -> str:
    """One run.json fact as the report shows it: readable names, rounded figures (analysis/fmt.py)."""
    if key.endswith("_unix") and isinstance(v, int | float):
        return fmt.utc(v)
    if key == "shape" and isinstance(v, dict):
        p = v.get("params")
        detail = fmt.params(p) if isinstance(p, dict) else ""
        return str(v.get("title") or v.get("name") or "") + (f" ({detail})" if detail else "")
    if key == "workers" and v == 0:
        return "none (one local process)"
    return fmt.fact(v)


def throughput_html(s: Summary) -> str:
    t = s.throughput
    text = (
        f"<p>{t.requests:,} sent, {t.ok:,} completed: {esc(fmt.num(t.req_per_s))} req/s, "
        f"{esc(fmt.num(t.output_tok_per_s, 1))} output tok/s, {esc(fmt.num(t.input_tok_per_s, 1))} input tok/s."
    )
    if t.cancelled:
        text += f" {t.cancelled:,} requests were {CANCELLED_NOTE}"
    text += "</p>"
    if s.errors:
        return text + "\n" + table(["error category", "count", "share of sent"], error_rows(s))
    return text + "\n<p>No failed requests.</p>"


def open_loop_html(ol: OpenLoop) -> str:
    return "\n".join(
        [
            "<h2>Open loop: latency from the intended send time</h2>",
            f"<p>Scheduled {esc(fmt.num(ol.scheduled_rate_rps))} req/s, achieved {esc(fmt.num(ol.achieved_rate_rps))} req/s; "
            f"goodput from scheduled time {esc(fmt.num(ol.goodput_from_scheduled_req_per_s))} req/s.</p>",
            table(LATENCY_HEADERS[:-1], open_loop_rows(ol)),
        ]
    )


def render(s: Summary, meta: dict, figs: list[tuple[Path, str]]) -> str:
    """The run's report.html; `meta` is its run.json, `figs` the plots (path, caption) in report order."""
    r, t = s.run, s.throughput
    sub = " · ".join(
        str(x)
        for x in (r.target, r.model, r.dataset and f"dataset {r.dataset}", r.shape and f"shape {r.shape}")
        if x
    )
    parts = [f"<h1>Goodput report — {esc(r.name)}</h1>"]
    window = f"{fmt.utc(t.t_start_unix)}, {fmt.duration(t.duration_s)}, {t.requests:,} requests"
    if s.images is not None:
        window += f"; images: {images.text(s.images)}"
    parts.append(f'<div class="sub">{esc(sub)}<br>{esc(window)}</div>')
    for w in s.warnings:
        own = w.startswith(("load generator saturated", "client reads late"))  # the client's own timing
        parts.append(f'<div class="warn{" sat" if own else ""}">⚠ {esc(w)}</div>')
    if lead := lead_text(s):
        parts.append(f'<div class="capacity lead">{esc(lead)}</div>')
    parts.append(f"<h2>{'Capacity and verdict' if s.is_ramp else 'Verdict'} per SLO profile</h2>")
    parts.append(verdict_cards(s.verdicts, ramp=s.is_ramp))
    parts.append(f'<div class="capacity">{esc(capacity_text(s))}</div>')
    parts.append("<h2>Headline</h2>" + table(headline_headers(s), [headline_row(s)], cls="headline"))
    if up := startup_text(s):
        parts.append(f"<p>{esc(up)}</p>")
    for p, caption in figs[:2]:
        parts.append(figure(p, caption))
    parts.append("<h2>Latency</h2>" + table(LATENCY_HEADERS, latency_rows(s)))
    parts.append(reasoning.html(s))
    parts.append(specdecode.html(s))
    for p, caption in figs[2:]:
        if not spans.owns(p):  # drawn in its own section
            parts.append(figure(p, caption))
    parts.append("<h2>Throughput and errors</h2>")
    parts.append(throughput_html(s))
    parts.append("<h2>SLO checks</h2>" + table(VERDICT_HEADERS, verdict_rows(s.verdicts, s.is_ramp)))
    parts.append(tenants.html(s))
    parts.append(models.html(s))
    parts.append(uncertainty.html(s))
    if s.steps:
        parts.append("<h2>Per step</h2>")
        parts.append(f'<div class="scroll">{table(step_headers(s.load_unit), step_rows(s.steps))}</div>')
        parts.append(
            "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in step_notes(s.steps, s.load_unit)) + "</ul>"
        )
    parts.append(server.html(s))
    parts.append(router.html(s))
    parts.append(gatewaypage.html(s))
    parts.append(spans.html(s, figs))
    if s.open_loop is not None:
        parts.append(open_loop_html(s.open_loop))
    parts.append("<h2>Run</h2>" + meta_table(meta, r.dir))
    return page(f"Goodput report — {r.name}", "\n".join(parts))
