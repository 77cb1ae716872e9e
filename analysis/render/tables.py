"""The tables summary.md, the console and report.html share: headers and rows of text cells from a `Summary`.

Each output lays the same rows out its own way (markdown, aligned text, HTML); building the
cells once here keeps a figure reading the same in all three.
"""

from __future__ import annotations

from analysis import fmt
from analysis.results import Dist, OpenLoop, Step, StepPercentiles, Summary, Verdict

HEADLINE = ["Latency p95 (ms)", "TPOT p95 (ms)", "TTFT p50 (ms)", "TTFT p95 (ms)", "req/s", "output tok/s"]
LATENCY_HEADERS = ["metric (ms)", "mean", "p50", "p90", "p95", "p99", "max", "samples"]
VERDICT_HEADERS = ["SLO", "limits", "attainment", "goodput req/s", "percentile checks", "verdict"]
ERROR_HEADERS = ["category", "count", "share of sent"]


def headline_headers(s: Summary) -> list[str]:
    return [*HEADLINE, f"goodput req/s [{s.slo.name}]", "SLO attainment"]


def headline_row(s: Summary) -> list[str]:
    """The research's Table 4.2 columns (+ throughput, goodput, attainment)."""
    t = s.throughput
    return [
        fmt.ms(s.e2e.p95),
        fmt.ms(s.tpot.p95),
        fmt.ms(s.ttft.p50),
        fmt.ms(s.ttft.p95),
        fmt.num(t.req_per_s),
        fmt.num(t.output_tok_per_s, 1),
        fmt.num(t.goodput_req_per_s),
        fmt.pct(t.slo_attainment),
    ]


def _six(d: Dist | None) -> list[str]:
    if d is None:  # only while ITL is still parsing; every renderer runs after Analysis.finish()
        return [fmt.DASH] * 6
    return [fmt.ms(v) for v in (d.mean, d.p50, d.p90, d.p95, d.p99, d.max)]


def latency_rows(s: Summary) -> list[list[str]]:
    dists = (("TTFT", s.ttft), ("TPOT", s.tpot), ("ITL", s.itl), ("E2E latency", s.e2e))
    return [[name, *_six(d), f"{d.n:,}" if d is not None else fmt.DASH] for name, d in dists]


def open_loop_rows(ol: OpenLoop) -> list[list[str]]:
    dists = (
        ("send lag", ol.send_lag_s),
        ("TTFT from scheduled", ol.ttft_from_scheduled_s),
        ("E2E from scheduled", ol.e2e_from_scheduled_s),
    )
    return [[name, *_six(d)] for name, d in dists]


def error_rows(s: Summary) -> list[list[str]]:
    """Failed requests by category with their share of all sent requests."""
    return [[k, f"{v:,}", fmt.pct(v / s.throughput.requests)] for k, v in s.errors.items()]


def step_headers(unit: str) -> list[str]:
    return [
        "step", f"load ({unit})", "requests", "ok", "req/s", "out tok/s", "goodput/s", "attainment",
        "TTFT p50/p95/p99 (ms)", "TPOT p50/p95/p99 (ms)", "E2E p50/p95/p99 (ms)",
    ]  # fmt: skip


def _trio(p: StepPercentiles) -> str:
    return " / ".join(fmt.ms(v) for v in (p.p50, p.p95, p.p99))


def step_rows(steps: list[Step]) -> list[list[str]]:
    return [
        [
            str(s.step),
            fmt.level(s.load),
            f"{s.requests:,}",
            f"{s.ok:,}",
            fmt.num(s.req_per_s),
            fmt.num(s.output_tok_per_s, 1),
            fmt.num(s.goodput_req_per_s),
            fmt.pct(s.slo_attainment),
            _trio(s.ttft),
            _trio(s.tpot),
            _trio(s.e2e),
        ]
        for s in steps
    ]


def verdict_rows(verdicts: list[Verdict]) -> list[list[str]]:
    rows = []
    for v in verdicts:
        checks = "; ".join(f"{c.label}: {fmt.ms(c.value_s)} ms {'✓' if c.passed else '✗'}" for c in v.checks)
        rows.append(
            [
                v.slo,
                v.describe,
                fmt.pct(v.slo_attainment),
                fmt.num(v.goodput_req_per_s),
                checks or fmt.DASH,
                "PASS" if v.passed else "FAIL",
            ]
        )
    return rows


def verdict_line(v: Verdict) -> str:
    """`SLO chat: FAIL (attainment 40.0 %, target 90 %)`."""
    return (
        f"SLO {v.slo}: {'PASS' if v.passed else 'FAIL'} (attainment {fmt.pct(v.slo_attainment)}, "
        f"target {fmt.pct(v.attain_target, 0)})"
    )


def capacity_text(s: Summary) -> str:
    c = s.capacity
    head = f"Capacity at SLO ({s.slo.name}, attainment ≥ {fmt.pct(c.target, 0)}): "
    if c.value is None:
        return f"{head}none — {c.note}"
    how = f"interpolated between {fmt.level(c.between[0])} and {fmt.level(c.between[1])}" if c.between else ""
    text = f"{head}{'≥ ' if not c.bounded else ''}{c.value:.3g} {c.unit}"
    notes = [x for x in (how, c.note) if x]
    return text + (f" ({'; '.join(notes)})" if notes else "")


def throughput_text(s: Summary) -> str:
    """`10 requests sent, 7 completed; 0.70 req/s, …` (summary.md's throughput paragraph)."""
    t = s.throughput
    return (
        f"{t.requests:,} requests sent, {t.ok:,} completed; "
        f"{fmt.num(t.req_per_s)} req/s, {fmt.num(t.output_tok_per_s, 1)} output tok/s, "
        f"{fmt.num(t.input_tok_per_s, 1)} input tok/s over {fmt.duration(t.duration_s)}."
    )


CANCELLED_NOTE = (
    "cancelled by the load generator (in flight at the end or when users stopped): "
    "listed as errors, not counted in SLO attainment."
)
