"""The "Tenants" section of a mixed run (summary.md, report.html, the console), and of a comparison.

Shown only when the run had a mix (`Summary.tenants`): one row per class, every figure against that
class's own SLO; then the mix as a whole (each request judged by its class's SLO) and where the first
class breaks. The same cells feed the markdown, the HTML and the console, so they agree figure for figure.
"""

from __future__ import annotations

from analysis import fmt, interference
from analysis.compare import Comparison, curve_labels
from analysis.interference import METRICS, ClassInterference, Delta
from analysis.render.page import esc, table
from analysis.render.tables import capacity_cell, group_cells
from analysis.results import Summary
from analysis.tenantresults import TenantFigures, Tenants

HEADERS = [
    "class", "share", "SLO", "requests", "req/s", "output tok/s", "goodput req/s", "attainment (target)",
    "TTFT p95 (ms)", "TPOT p95 (ms)", "E2E p95 (ms)", "verdict", "capacity at its SLO",
]  # fmt: skip
COMPARE_HEADERS = ["configuration", *HEADERS]
NOTE = (
    "Each class against its own SLO; rates over the run's window, so the classes add up to the run. "
    "Capacity: the load of the whole mix at which the class still met its target."
)


def row(f: TenantFigures) -> list[str]:
    v = f.verdict
    share = fmt.DASH if f.share_pct is None else f"{f.share_pct:g} %"
    return [
        f.name,
        share,
        v.slo,
        *group_cells(f, v.attain_target),
        "PASS" if v.passed else "FAIL",
        capacity_cell(f.capacity),
    ]


def mix_line(t: Tenants) -> str:
    """`The mix (each request against its class's SLO): goodput 9.7 req/s, attainment 96 %; …`."""
    text = (
        f"The mix ({t.label}), each request against its class's SLO: goodput "
        f"{fmt.num(t.goodput_req_per_s)} req/s, attainment {fmt.pct(t.slo_attainment)}"
    )
    if t.capacity is not None and t.limiting is not None:
        if t.capacity.levels is None:
            text += "; no complete load level to judge capacities on"
        elif t.capacity.value is None:
            text += f"; no complete load level met every class's SLO ({t.limiting} never did)"
        else:
            text += (
                f"; every class within its SLO up to {capacity_cell(t.capacity)} — {t.limiting} breaks first"
            )
    return text + "."


def markdown(s: Summary) -> list[str]:
    """summary.md's section (no lines without a mix)."""
    t = s.tenants
    if t is None:
        return []
    body = [row(f) for f in t.classes]
    return [
        "## Tenants",
        "",
        mix_line(t),
        "",
        fmt.md_table(HEADERS, body, right=set(range(3, 11))),
        "",
        NOTE,
        "",
    ]


def html(s: Summary) -> str:
    """report.html's section ("" without a mix)."""
    t = s.tenants
    if t is None:
        return ""
    body = [row(f) for f in t.classes]
    return (
        f"<h2>Tenants</h2><p><b>{esc(mix_line(t))}</b></p>"
        f'<div class="scroll">{table(HEADERS, body)}</div><p class="sub">{esc(NOTE)}</p>'
    )


def console(s: Summary) -> list[str]:
    t = s.tenants
    if t is None:
        return []
    cols = [0, 2, 6, 7, 8, 9, 11, 12]
    return [
        mix_line(t),
        fmt.text_table([HEADERS[i] for i in cols], [[row(f)[i] for i in cols] for f in t.classes]),
    ]


def comparison_rows(labels: list[str], summaries: list[Summary]) -> list[list[str]]:
    """One row per class of every mixed run of a comparison (runs without a mix: none)."""
    return [
        [label, *row(f)]
        for label, s in zip(labels, summaries, strict=True)
        if s.tenants
        for f in s.tenants.classes
    ]


COMPARE_NOTE = "Each mixed run's classes, each against its own SLO (figures over the run's window)."
INTERFERENCE_HEADERS = ["mixed run", "class", "SLO", *(label for _, label, _ in METRICS), "alone runs"]


def _cell(d: Delta) -> str:
    """`812 ms (alone 632; +180 ms)`: in the mix, alone, and the change."""
    show = fmt.pct if d.kind == "pp" else (lambda v: fmt.ms(v) + " ms") if d.kind == "ms" else fmt.num
    if d.in_mix is None and d.alone is None:
        return fmt.DASH
    return f"{show(d.in_mix)} (alone {show(d.alone)}; {d.change()})"


def comparison_markdown(c: Comparison) -> list[str]:
    """The comparison's Tenants and Interference sections (no lines without a mixed run)."""
    labels = curve_labels(c.runs)
    body = comparison_rows(labels, c.summaries)
    if not body:
        return []
    lines = [
        "## Tenants",
        "",
        COMPARE_NOTE,
        "",
        fmt.md_table(COMPARE_HEADERS, body, right=set(range(4, 12))),
        "",
    ]
    found = interference.of_comparison(c)
    if found:
        lines += ["## Interference: each class in the mix vs alone at its share of the load", ""]
        lines += [f"- {x.mix}: {x.phrase()}" for x in found]
        lines += ["", fmt.md_table(INTERFERENCE_HEADERS, _interference_rows(found)), ""]
    return lines


def comparison_html(c: Comparison) -> str:
    labels = curve_labels(c.runs)
    body = comparison_rows(labels, c.summaries)
    if not body:
        return ""
    parts = ["<h2>Tenants</h2>", f'<p class="sub">{esc(COMPARE_NOTE)}</p>',
             f'<div class="scroll">{table(COMPARE_HEADERS, body)}</div>']  # fmt: skip
    found = interference.of_comparison(c)
    if found:
        parts.append("<h2>Interference: each class in the mix vs alone at its share of the load</h2>")
        parts.append(
            "<ul>" + "".join(f"<li><b>{esc(x.mix)}</b>: {esc(x.phrase())}</li>" for x in found) + "</ul>"
        )
        parts.append(f'<div class="scroll">{table(INTERFERENCE_HEADERS, _interference_rows(found))}</div>')
    return "\n".join(parts)


def _interference_rows(found: list[ClassInterference]) -> list[list[str]]:
    return [[x.mix, x.tenant, x.slo, *(_cell(d) for d in x.deltas), str(len(x.alone_runs))] for x in found]
