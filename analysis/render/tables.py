"""The tables summary.md, the console and report.html share: headers and rows of text cells from a `Summary`.

Each output lays the same rows out its own way (markdown, aligned text, HTML); building the
cells once here keeps a figure reading the same in all three.
"""

from __future__ import annotations

from analysis import fmt
from analysis.render import gatewaypage
from analysis.render.timingtext import breaks_because
from analysis.results import (
    Capacity,
    Dist,
    OpenLoop,
    ReplicaSet,
    RouterFigures,
    Step,
    StepPercentiles,
    Summary,
    Verdict,
)
from analysis.tenantresults import GroupFigures

HEADLINE = ["Latency p95 (ms)", "TPOT p95 (ms)", "TTFT p50 (ms)", "TTFT p95 (ms)", "req/s", "output tok/s"]
LATENCY_HEADERS = ["metric (ms)", "mean", "p50", "p90", "p95", "p99", "max", "samples"]
VERDICT_HEADERS = [
    "SLO", "limits", "attainment", "goodput req/s", "percentile checks", "verdict (whole run)", "capacity: where it breaks",
]  # fmt: skip
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
            f"{s.step} (truncated)" if s.truncated else str(s.step),
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


def step_notes(steps: list[Step], unit: str) -> list[str]:
    """What the step table's figures are over, and why a truncated step is left out of capacity."""
    out = [
        "Each level's requests are those sent in it; its rates divide by its own window (the stage's span, "
        "warm-up/cool-down and the start-up excluded); output tok/s counts the tokens that arrived in that window."
    ]
    achieved = [s for s in steps if s.load_basis == "achieved_rps"]
    if achieved:
        out.append(
            "Closed-loop stages on this req/s axis sit at the rate they achieved: "
            + ", ".join(f"{s.label or s.step} at {s.load:.3g} req/s" for s in achieved)
            + "."
        )
    for s in steps:
        if s.truncated:
            out.append(
                f"Step {s.step} ({fmt.level(s.load)} {unit}) is truncated, left out of capacity: {s.truncated}."
            )
    return out


def verdict_rows(verdicts: list[Verdict], ramp: bool = True) -> list[list[str]]:
    """One row per SLO; the capacity cell only on a ramp (with one level there is nothing to break)."""
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
                capacity_cell(v.capacity) if ramp else fmt.DASH,
            ]
        )
    return rows


def verdict_line(v: Verdict, ramp: bool = False) -> str:
    """`SLO chat: FAIL (attainment 40.0 %, target 90 %)`; on a ramp, said to be the whole run's."""
    head = f"SLO {v.slo} over the whole run" if ramp else f"SLO {v.slo}"
    tail = (
        " — a ramp passes its knee by design: the capacity above is the answer"
        if ramp and not v.passed
        else ""
    )
    return (
        f"{head}: {'PASS' if v.passed else 'FAIL'} (attainment {fmt.pct(v.slo_attainment)}, "
        f"target {fmt.pct(v.attain_target, 0)}){tail}"
    )


def group_cells(f: GroupFigures, attain_target: float) -> list[str]:
    """A group's (a mix class's, a model's) shared cells: requests, req/s, output tok/s, goodput,
    attainment (target), TTFT / TPOT / E2E p95 (ms)."""
    return [
        f"{f.requests:,}",
        fmt.num(f.req_per_s),
        fmt.num(f.output_tok_per_s, 1),
        fmt.num(f.goodput_req_per_s),
        f"{fmt.pct(f.slo_attainment)} ({fmt.pct(attain_target, 0)})",
        fmt.ms(f.ttft.p95),
        fmt.ms(f.tpot.p95),
        fmt.ms(f.e2e.p95),
    ]


def capacity_cell(c: Capacity | None) -> str:
    """`7.25 users (breaks at 8)`, `≥ 12 users`, `none`; a dash without load levels."""
    if c is None or (c.value is None and c.levels is None and not c.excluded):
        return fmt.DASH
    if c.value is None:
        return "none"
    iv = f" {_span(c)}" if _span(c) else ""
    if not c.bounded:
        return f"≥ {c.value:.3g} {c.unit}{iv}"
    return f"{c.value:.3g} {c.unit}{iv} (breaks at {fmt.level(c.breaks_at)})"


def _span(c: Capacity) -> str:
    """A capacity's 95 % interval, `[6.9–7.6]` (`…`: open), "" without one."""
    if c.interval is None or (c.interval.low is None and c.interval.high is None):
        return ""
    lo = "…" if c.interval.low is None else f"{c.interval.low:.3g}"
    hi = "…" if c.interval.high is None else f"{c.interval.high:.3g}"
    return f"[{lo}–{hi}]"


def capacity_phrase(slo: str, c: Capacity) -> str:
    """The answer of a ramp in words: `serves 7.25 users within chat at 90 %; breaks at 8`."""
    at = f"within {slo} at {fmt.pct(c.target, 0)}"
    if c.value is None:
        return f"no complete load level was served {at}"
    sure = f" (95 % interval {_span(c)})" if _span(c) else ""
    if not c.bounded:
        return f"serves ≥ {c.value:.3g} {c.unit} {at}{sure} (every complete level tested; it did not break)"
    return f"serves {c.value:.3g} {c.unit} {at}{sure}; breaks at {fmt.level(c.breaks_at)}"


def capacity_text(s: Summary) -> str:
    """`Capacity at SLO (chat, attainment ≥ 90 %): 7.25 users (interpolated between 7 and 8)`, with its notes."""
    c = s.capacity
    head = f"Capacity at SLO ({s.slo.name}, attainment ≥ {fmt.pct(c.target, 0)}): "
    left = f"left out (truncated): step {', '.join(str(x) for x in c.excluded)}" if c.excluded else ""
    if c.value is None:
        return f"{head}none — {'; '.join(x for x in (c.note, left) if x)}"
    how = f"interpolated between {fmt.level(c.between[0])} and {fmt.level(c.between[1])}" if c.between else ""
    text = f"{head}{'≥ ' if not c.bounded else ''}{c.value:.3g} {c.unit}"
    notes = [x for x in (how, c.note, left) if x]
    sure = f"; 95 % interval {_span(c)} {c.unit}" if _span(c) else ""
    return text + (f" ({'; '.join(notes)})" if notes else "") + sure


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


def startup_text(s: Summary) -> str | None:
    """The start-up in one paragraph, beside the steady part's TTFT (None: the run records none)."""
    u = s.startup
    if u is None:
        return None
    how = (
        "included in the headline (--include-startup)"
        if u.included
        else "reported apart: left out of the headline and the first level (--include-startup keeps it)"
    )
    took = f"{fmt.ms(u.duration_s)} ms" if u.duration_s < 1 else fmt.duration(u.duration_s)
    rest = "headline, start-up included" if u.included else "steady part"
    return (
        f"Start-up: {took} until {_plural(u.users, 'user', every=True)} spawned and had sent "
        f"{'its' if u.users == 1 else 'their'} first request; {_plural(u.requests, 'request')} sent in it "
        f"({u.ok:,} completed), TTFT p50 {fmt.ms(u.ttft.p50)} / "
        f"p99 {fmt.ms(u.ttft.p99)} ms, E2E p50 {fmt.ms(u.e2e.p50)} / p99 {fmt.ms(u.e2e.p99)} ms "
        f"({rest}: TTFT p50 {fmt.ms(s.ttft.p50)} / p99 {fmt.ms(s.ttft.p99)} ms) — {how}."
    )


def lead_text(s: Summary) -> str | None:
    """A ramp's answer first: where the primary SLO breaks and, where the run has the engine's timing
    or its metrics, what the misses were there and how the server ran (None when the run is not a ramp)."""
    if not s.is_ramp:
        return None
    c = s.capacity
    named = c.value is None  # the lowest level already missed: what happened there
    if named:
        load = min(x.load for x in c.levels) if c.levels else None
    else:
        load = c.breaks_at if c.bounded else None
    why = breaks_because(s.server_timing, load, named)
    step = next((x for x in s.steps if x.load == load), None)
    ran = server_ran(step) if step is not None else None
    if ran:
        why = f"{why}; {ran}" if why else f"{'at ' + step.label if named else 'there'}, {ran}"
    if step is not None and (hid := router_hid(s.router, step.step)):
        why = f"{why}; {hid}" if why else f"{'at ' + step.label if named else 'there'}, {hid}"
    if step is not None and (gw := gatewaypage.at_level(s.gateway_page, step.step)):
        why = f"{why}; {gw}" if why else f"{'at ' + step.label if named else 'there'}, {gw}"
    return f"Answer: {capacity_phrase(s.slo.name, c)}{' — ' + why if why else ''}."


def server_ran(step: Step) -> str | None:
    """How the server ran at a level, from its own metrics (the scrapes inside the level's window):
    `the server ran up to 8 requests at once and queued up to 8` tells a full batch with a queue
    behind it from a batch with room; `, and deferred up to 3 for an adapter slot` adds the queued
    requests vLLM held back for the LoRA budget; `; the most queued replica, X, up to 5 (the others up
    to 1)` names the replica that queued most where the replicas differ (a router's imbalance). They
    are maxima over the scrapes, not one instant's. None without the server's running series there."""
    f = step.server
    if f is None or f["running_max"] is None:
        return None
    ran = f"the server ran up to {_plural(round(f['running_max']), 'request')} at once"
    waiting = f["waiting_max"]
    if waiting is not None:
        ran += " and queued none" if waiting == 0 else f" and queued up to {round(waiting):,}"
    deferred = f.get("waiting_deferred_max")
    if deferred:  # of the queued: held back by a transient constraint (with LoRA: no adapter slot free)
        why = "for an adapter slot" if f.get("lora_running_max") is not None else "by a transient constraint"
        ran += f"{',' if waiting is not None else ''} and deferred up to {round(deferred):,} {why}"
    return ran + _most_queued(f.get("replicas"))


HELD_SAID_S = 0.001  # a router's own queue time said at the breaking level from a millisecond on


def router_hid(rf: RouterFigures | None, step_no: int) -> str | None:
    """`the router retried 12 requests there (9 failed at http://10.0.0.3:8000)`: what the router's own page
    says it hid from the client at a level — retries whose failed try and backoff are in the client's
    TTFT; the errors it answered itself and the time it held requests in its own queue (the EPP). None
    where it did none of that there (or no router's page was scraped)."""
    level = next((x for x in (rf or {}).get("steps", []) if x.get("step") == step_no), None)  # type: ignore[union-attr]
    if not level:
        return None
    parts = []
    retried = round(level.get("retries") or 0)
    if retried >= 1:
        failed = [r for r in level["by_backend"] if round(r["failures"] or 0) >= 1]
        worst = max(failed, key=lambda r: r["failures"]) if failed else None
        at = f" ({round(worst['failures']):,} failed at {worst['backend']})" if worst else ""
        parts.append(f"the router retried {_plural(retried, 'request')} there{at}")
    errors = {k: round(v) for k, v in (level.get("errors") or {}).items() if round(v) >= 1}
    if errors:
        codes = ", ".join(errors)
        parts.append(f"the router counted {_plural(sum(errors.values()), 'error')} there ({codes})")
    if (level.get("held_s") or 0.0) >= HELD_SAID_S:
        parts.append(f"the router held each request {fmt.ms(level['held_s'])} ms in its own queue there")
    return "; ".join(parts) or None


def _most_queued(rs: ReplicaSet | None) -> str:
    """`; the most queued replica, 10.0.0.2:8000, up to 5 (the others up to 1)`, or "" where the
    replicas' queue maxima are the same (or fewer than two replicas say)."""
    queued = [(r["replica"], r["waiting_max"]) for r in (rs["by_replica"] if rs else [])]
    known = [(rid, w) for rid, w in queued if w is not None]
    if len(known) < 2 or len({w for _, w in known}) < 2:
        return ""
    top = max(known, key=lambda x: x[1])  # the first of equals
    others = max(w for rid, w in known if rid != top[0])
    return (
        f"; the most queued replica, {top[0]}, up to {round(top[1]):,} (the others up to {round(others):,})"
    )


def _plural(n: int, noun: str, every: bool = False) -> str:
    """`1 request`, `4 requests`; with `every`: `the 1 user was`, `all 4 users were`."""
    if every:
        return f"the {n:,} {noun} was" if n == 1 else f"all {n:,} {noun}s were"
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
