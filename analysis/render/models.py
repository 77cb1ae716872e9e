"""The "Models" section (summary.md, report.html, the console) of a run that sent its requests to
several models — LoRA adapters beside a base model, say.

Shown only when the run has a per-model breakdown (`Summary.models`, analysis/models.py): a sentence
that says which model's requests fared worst and how, and where the first model breaks the SLO; one
row per model, every figure under the run's primary SLO; and each model's attainment per load level.
The same cells feed the markdown, the HTML and the console, so they agree figure for figure.
"""

from __future__ import annotations

from analysis import fmt
from analysis.compare import Comparison, curve_labels
from analysis.modelresults import UNNAMED, ModelFigures, Models
from analysis.render.page import esc, table
from analysis.render.tables import capacity_cell, group_cells
from analysis.results import Summary

HEADERS = [
    "model", "requests", "req/s", "output tok/s", "goodput req/s", "attainment (target)", "TTFT p95 (ms)",
    "TPOT p95 (ms)", "E2E p95 (ms)", "engine queue p50 / p95 (ms)", "capacity",
]  # fmt: skip
QUEUE = HEADERS.index("engine queue p50 / p95 (ms)")
NOTE = (
    "Every model under the run's SLO; rates over the run's window, so the models add up to the run. "
    "Capacity: the run's load at which the model's requests still met the target. Engine queue: the "
    "server's own queue time of each request, where its responses state it (vLLM's per-request metrics)."
)
COMPARE_HEADERS = ["configuration", *HEADERS]
COMPARE_NOTE = (
    "Each run's models under the comparison's SLO (figures over the run's window), one model's runs "
    "side by side: which configuration serves each adapter best."
)
VERB = {"ttft": "waited longest", "tpot": "streamed slowest", "e2e": "took longest"}
LABEL = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}


def row(f: ModelFigures, target: float) -> list[str]:
    queue = fmt.DASH
    if f.engine_queue_p50_s is not None:
        queue = f"{fmt.ms(f.engine_queue_p50_s)} / {fmt.ms(f.engine_queue_p95_s)}"
    return [
        f.name,
        *group_cells(f, target),
        queue,
        capacity_cell(f.capacity),
    ]


def _columns(m: Models) -> list[int]:
    """Every column, less the engine queue when no model's rows state it."""
    stated = any(f.engine_queue_p50_s is not None for f in m.models)
    return [i for i in range(len(HEADERS)) if stated or i != QUEUE]


def worst_phrase(m: Models) -> str:
    """`Requests for b waited longest: TTFT p95 3,581 ms vs 61 ms for a`, or what else set it apart."""
    w = m.worst
    if w is None:
        return "Every request was cancelled by the load generator: no model to judge"
    f = m.of(w.model)
    assert f is not None
    if w.alike:
        names = ", ".join(x.name for x in m.models if x.slo_attainment is not None)
        return (
            f"Requests for {names} fared alike: TTFT p95 {fmt.ms(f.ttft.p95)} ms, attainment "
            f"{fmt.pct(f.slo_attainment)}"
        )
    if not w.completed:
        return f"No request for {w.model} completed ({f.requests:,} sent, none within {m.slo})"
    if w.metric is None:
        best = m.of(w.best) if w.best is not None else None
        vs = "" if best is None else f" vs {fmt.pct(best.slo_attainment)} for {best.name}"
        return f"Requests for {w.model} met {m.slo} least often: attainment {fmt.pct(f.slo_attainment)}{vs}"
    return (
        f"Requests for {w.model} {VERB[w.metric]}: {LABEL[w.metric]} p95 {fmt.ms(w.value_s)} ms vs "
        f"{fmt.ms(w.best_s)} ms for {w.best}"
    )


def capacity_phrase(m: Models) -> str | None:
    """Where the first model breaks the SLO along the run's levels (None: no levels to judge on)."""
    c = m.capacity
    if c is None or c.levels is None:
        return None
    if c.value is not None and not c.bounded:
        return f"every model within {m.slo} at every complete level ({capacity_cell(c)})"
    if c.value is None:
        judged = [f for f in m.models if f.requests > f.cancelled and f.capacity is not None]
        never = [f.name for f in judged if f.capacity is not None and f.capacity.value is None]
        who = "none did" if len(never) == len(judged) > 1 else f"{', '.join(never)} never did"
        return f"no complete load level met {m.slo} for every model ({who})"
    return f"every model within {m.slo} up to {capacity_cell(c)} — {m.limiting} breaks first"


def line(s: Summary) -> str:
    """The sentence above the table: the worst model and how, then where the first model breaks (a
    ramp) or, on one level, the attainment beside the best model's when the latency said it."""
    m = s.models
    text = worst_phrase(m)
    cap = capacity_phrase(m) if s.is_ramp else None
    if cap is not None:
        return f"{text}; {cap}."
    w = m.worst
    if w is not None and w.metric is not None:
        f, others = m.of(w.model), [x for x in m.models if x.name != w.model and x.slo_attainment is not None]
        top = max(others, key=lambda x: x.slo_attainment or 0.0, default=None)
        if f is not None and top is not None and top.slo_attainment != f.slo_attainment:
            text += (
                f"; {m.slo} attainment {fmt.pct(f.slo_attainment)} vs {fmt.pct(top.slo_attainment)} "
                f"for {top.name}"
            )
    return text + "."


def level_headers(s: Summary) -> list[str]:
    return ["step", f"load ({s.load_unit})", *(f"{f.name} attainment" for f in s.models.models)]


def level_rows(s: Summary) -> list[list[str]]:
    """Each model's attainment at each level: where each one breaks."""
    m = s.models
    out = []
    for k, st in enumerate(s.steps):
        cells = [fmt.pct(f.levels[k].slo_attainment) if k < len(f.levels) else fmt.DASH for f in m.models]
        out.append([str(st.step), fmt.level(st.load) + (" (truncated)" if st.truncated else ""), *cells])
    return out


ANSWERED = (
    "Every request named one model, but the answers named {n}: a router's choice or a gateway's "
    "fallback. Each row is in the group of the model its answer named (requests.csv served_model)."
)


def title(m: Models) -> str:
    return "Models (as the answers named them)" if m.by == "served_model" else "Models"


def answered(m: Models) -> list[str]:
    """The sentence that says the groups are the answers' models (none when they are the requests')."""
    named = [f for f in m.models if f.name != UNNAMED]
    return [ANSWERED.format(n=len(named))] if m.by == "served_model" else []


def markdown(s: Summary) -> list[str]:
    """summary.md's section (no lines without a breakdown)."""
    m = s.models
    if m is None:
        return []
    cols = _columns(m)
    body = [[row(f, m.attain_target)[i] for i in cols] for f in m.models]
    lines = [f"## {title(m)}", ""]
    for text in [*answered(m), line(s)]:
        lines += [text, ""]
    lines += [fmt.md_table([HEADERS[i] for i in cols], body, right=set(range(1, len(cols) - 1))), ""]
    if len(s.steps) >= 2:
        lines += [fmt.md_table(level_headers(s), level_rows(s), right=set(range(2, 2 + len(m.models)))), ""]
    return [*lines, NOTE, ""]


def html(s: Summary) -> str:
    """report.html's section ("" without a breakdown)."""
    m = s.models
    if m is None:
        return ""
    cols = _columns(m)
    body = [[row(f, m.attain_target)[i] for i in cols] for f in m.models]
    parts = [
        f"<h2>{esc(title(m))}</h2>",
        *(f'<p class="sub">{esc(a)}</p>' for a in answered(m)),
        f"<p><b>{esc(line(s))}</b></p>",
        f'<div class="scroll">{table([HEADERS[i] for i in cols], body)}</div>',
    ]
    if len(s.steps) >= 2:
        parts.append(f'<div class="scroll">{table(level_headers(s), level_rows(s))}</div>')
    parts.append(f'<p class="sub">{esc(NOTE)}</p>')
    return "".join(parts)


def console(s: Summary) -> list[str]:
    m = s.models
    if m is None:
        return []
    cols = [0, 1, 4, 5, 6, 8, 10]
    return [line(s), fmt.text_table([HEADERS[i] for i in cols], [[row(f, m.attain_target)[i] for i in cols]
                                                                 for f in m.models])]  # fmt: skip


def comparison_rows(labels: list[str], summaries: list[Summary]) -> list[list[str]]:
    """One row per model of every run that sent to several models (runs of one model: none), grouped by
    model in the order the runs first name them, then in the comparison's run order."""
    rows = [
        (f.name, k, [label, *row(f, s.models.attain_target)])
        for k, (label, s) in enumerate(zip(labels, summaries, strict=True))
        if s.models is not None
        for f in s.models.models
    ]
    first = {name: i for i, (name, _, _) in reversed(list(enumerate(rows)))}
    return [r for _, _, r in sorted(rows, key=lambda x: (first[x[0]], x[1]))]


def comparison_markdown(c: Comparison) -> list[str]:
    """comparison.md's Models section (no lines when no run sent to several models)."""
    body = comparison_rows(curve_labels(c.runs), c.summaries)
    if not body:
        return []
    table_md = fmt.md_table(COMPARE_HEADERS, body, right=set(range(2, len(COMPARE_HEADERS) - 1)))
    return ["## Models", "", COMPARE_NOTE, "", table_md, ""]


def comparison_html(c: Comparison) -> str:
    body = comparison_rows(curve_labels(c.runs), c.summaries)
    if not body:
        return ""
    return (
        f'<h2>Models</h2><p class="sub">{esc(COMPARE_NOTE)}</p>'
        f'<div class="scroll">{table(COMPARE_HEADERS, body)}</div>'
    )
