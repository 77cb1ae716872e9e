"""Every figure of the analysis against a hand computation on tiny fixtures (tests/fixtures/run_*).

tests/fixtures/run_small/requests.csv (closed loop, T0 = 1767225600):
  #  step users  send   ttft   e2e    out  tpot   ok   notes
  1   0    1     0.0    0.10   1.00   10   0.10  yes  9 gaps of 0.1
  2   0    1     1.0    0.20   2.00   10   0.20  yes  9 gaps of 0.2
  3   0    1     3.0    0.30   0.30    1   –     yes  one token: TPOT undefined
  4   0    1     4.0    –      0.05    –   –     no   http_429
  5   1    2     5.0    0.40   4.00   10   0.40  yes  9 gaps of 0.4
  6   1    2     5.5    0.60   1.50    4   0.30  yes  0.30;0.25;0.35
  7   1    2     6.0    0.50   2.50    5   0.50  yes  0.5;0.4;0.6;0.5
  8   1    2     7.0    0.20   3.00    –   –     no   timeout after 2 gaps (excluded: not ok)
  9   1    2     8.0    0.25   1.25   11   0.10  yes  10 gaps of 0.1
 10   1    2     9.0    –      0.01    –   –     no   http_429
Percentiles: numpy "linear": position q/100·(n−1) between order statistics.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from analysis.itl import ItlFormatError, itl_distribution
from analysis.load import load_run
from analysis.metrics import good_mask
from analysis.results import Dist, Step, StepPercentiles
from analysis.steps import capacity_at_slo
from analysis.summary import analyze
from core.slo import PROFILES, parse_slo

FIX = Path(__file__).resolve().parents[2] / "fixtures"
approx = pytest.approx


def six(d: Dist) -> dict:
    """A distribution's six figures by name (what summary.json writes)."""
    return {"mean": d.mean, "p50": d.p50, "p90": d.p90, "p95": d.p95, "p99": d.p99, "max": d.max}


def trio(step: Step, metric: str) -> tuple:
    p = getattr(step, metric)
    return (p.p50, p.p95, p.p99)


@pytest.fixture(scope="module")
def small():
    return analyze(load_run(FIX / "run_small"), PROFILES["chat"])


def test_counts_window_throughput(small) -> None:
    s = small.summary
    t = s.throughput
    assert (t.requests, t.ok) == (10, 7)
    assert s.errors == {"http_429": 2, "timeout": 1}
    # window: first send 0.0 → last completion max(send + e2e) = row 8: 7.0 + 3.0 = 10.0
    assert t.duration_s == approx(10.0)
    assert t.req_per_s == approx(7 / 10)
    # output tokens of completed requests: 10+10+1+10+4+5+11 = 51; prompt: 100+200+50+400+100+100+150 = 1100
    assert t.output_tok_per_s == approx(5.1)
    assert t.input_tok_per_s == approx(110.0)
    assert t.total_tok_per_s == approx(115.1)


def test_goodput_and_attainment_chat(small) -> None:
    # chat: TTFT ≤ 0.5 and TPOT ≤ 0.25. Good: 1, 2, 3 (TPOT undefined passes), 9.
    # 5 (TPOT 0.4), 6 (TTFT 0.6), 7 (TPOT 0.5; TTFT 0.5 passes: inclusive) are not; failures never are.
    s = small.summary
    assert s.throughput.good == 4
    assert s.throughput.goodput_req_per_s == approx(0.4)
    assert s.throughput.slo_attainment == approx(0.4)
    assert s.slo.name == "chat" and s.slo.ttft_s == 0.5


def test_latency_distributions(small) -> None:
    s = small.summary
    # TTFT of completed requests, sorted: .1 .2 .25 .3 .4 .5 .6 (n=7; row 8's 0.2 is a failure)
    assert six(s.ttft) == approx(
        {"mean": 2.35 / 7, "p50": 0.3, "p90": 0.54, "p95": 0.57, "p99": 0.594, "max": 0.6}
    )
    # TPOT where defined: .1 .1 .2 .3 .4 .5 (n=6): p50 pos 2.5 → .25; p90 pos 4.5 → .45
    assert six(s.tpot) == approx(
        {"mean": 1.6 / 6, "p50": 0.25, "p90": 0.45, "p95": 0.475, "p99": 0.495, "max": 0.5}
    )
    # E2E: .3 1 1.25 1.5 2 2.5 4 (n=7): p90 pos 5.4 → 2.5 + .4·1.5 = 3.1
    assert six(s.e2e) == approx(
        {"mean": 12.55 / 7, "p50": 1.5, "p90": 3.1, "p95": 3.55, "p99": 3.91, "max": 4.0}
    )
    # ITL, 44 gaps: 0.1×19, 0.2×9, .25, .3, .35, 0.4×10, 0.5×2, .6; sum 10.2
    # p50 pos 21.5 → .2; p90 pos 38.7 → .4; p95 pos 40.85 → .4 + .85·.1 = .485; p99 pos 42.57 → .557
    assert six(s.itl) == approx(
        {"mean": 10.2 / 44, "p50": 0.2, "p90": 0.4, "p95": 0.485, "p99": 0.557, "max": 0.6}
    )
    assert (s.ttft.n, s.tpot.n, s.itl.n, s.e2e.n) == (7, 6, 44, 7)


def test_per_step_table(small) -> None:
    s0, s1 = small.summary.steps
    assert small.summary.load_unit == "users"
    # step 0: rows 1-4 sent in its stage, window = the stage's span 0.0 → 5.0 (run.json), not the
    # requests' span; tokens arriving in [0, 5): rows 1, 2, 3 (10 + 10 + 1), all before 3.3
    assert (s0.step, s0.load, s0.requests, s0.ok, s0.good) == (0, 1.0, 4, 3, 3)
    assert (s0.t_start_unix, s0.t_end_unix) == (1767225600.0, 1767225605.0)
    assert s0.duration_s == approx(5.0)
    assert s0.req_per_s == approx(3 / 5)
    assert s0.output_tok_per_s == approx(21 / 5)
    assert s0.goodput_req_per_s == approx(3 / 5)
    assert s0.slo_attainment == approx(0.75)
    assert s0.truncated is None and s1_truncated(small) is None
    # TTFT .1 .2 .3: p95 pos 1.9 → .29; TPOT .1 .2: p50 .15; E2E .3 1 2: p95 pos 1.9 → 1.9
    assert trio(s0, "ttft") == approx((0.2, 0.29, 0.298))
    assert trio(s0, "tpot") == approx((0.15, 0.195, 0.199))
    assert trio(s0, "e2e") == approx((1.0, 1.9, 1.98))
    # step 1: rows 5-10, window = its stage 5.0 → 10.0; ok 5, 6, 7, 9 (30 tokens, all arrived by 9.25); good: 9 only
    assert (s1.step, s1.load, s1.requests, s1.ok, s1.good) == (1, 2.0, 6, 4, 1)
    assert s1.duration_s == approx(5.0)
    assert (s1.req_per_s, s1.output_tok_per_s, s1.goodput_req_per_s) == approx((0.8, 6.0, 0.2))
    assert s1.slo_attainment == approx(1 / 6)
    # TTFT .25 .4 .5 .6 → p50 .45, p95 pos 2.85 → .585; TPOT .1 .3 .4 .5 → .35, .485; E2E 1.25 1.5 2.5 4
    assert trio(s1, "ttft") == approx((0.45, 0.585, 0.597))
    assert trio(s1, "tpot") == approx((0.35, 0.485, 0.497))
    assert trio(s1, "e2e") == approx((2.0, 3.775, 3.955))


def s1_truncated(a) -> str | None:
    return a.summary.steps[1].truncated


def test_capacity_at_slo(small) -> None:
    # 90 %: no level passes (0.75, 1/6)
    assert small.summary.capacity.value is None
    # 70 %: 1 user passes (0.75), 2 users fail (1/6): 1 + (0.75 − 0.7) / (0.75 − 1/6) · (2 − 1)
    a = analyze(load_run(FIX / "run_small"), parse_slo("chat,attain=70%"))
    assert a.summary.capacity.value == approx(1 + 0.05 / (0.75 - 1 / 6))
    assert a.summary.capacity.between == (1.0, 2.0)


def test_capacity_edge_cases() -> None:
    def steps(*pairs):
        none = StepPercentiles(None, None, None)
        return [
            Step(
                step=i,
                label="",
                load=x,
                target_users=int(x),
                rate_rps=None,
                requests=100,
                ok=100,
                errors=0,
                good=round(a * 100),
                cancelled=0,
                t_start_unix=0.0,
                t_end_unix=1.0,
                duration_s=1.0,
                req_per_s=None,
                output_tok_per_s=None,
                goodput_req_per_s=None,
                slo_attainment=a,
                ttft=none,
                tpot=none,
                e2e=none,
            )
            for i, (x, a) in enumerate(pairs)
        ]

    every = capacity_at_slo(steps((1, 1.0), (2, 0.95)), 0.9, "users")
    assert (every.value, every.bounded) == (2, False)  # only a lower bound
    dip = capacity_at_slo(steps((1, 1.0), (2, 0.5), (3, 0.95), (4, 0.1)), 0.9, "users")
    assert dip.value == approx(3 + (0.95 - 0.9) / (0.95 - 0.1))
    assert "fell below target at 2" in dip.note
    pooled = capacity_at_slo(
        steps((1, 1.0), (1, 0.8), (2, 0.0)), 0.9, "users"
    )  # same level twice: pooled 0.9
    assert pooled.value == approx(1.0)


def test_verdicts_per_profile(small) -> None:
    v = {x.slo: x for x in small.summary.verdicts}
    assert list(v) == [
        "chat",
        "summarization",
        "datagen",
        "mlperf-llama2-70b",
        "mlperf-interactive",
        "reasoning",
    ]
    # summarization (TTFT ≤ 10 s, TPOT ≤ .25): good 1, 2, 3, 9 → 4/10
    assert v["summarization"].slo_attainment == approx(0.4)
    # datagen (TPOT ≤ 35 ms): only row 3 (TPOT undefined) → 1/10
    assert v["datagen"].slo_attainment == approx(0.1)
    assert v["datagen"].goodput_req_per_s == approx(0.1)
    # mlperf-llama2-70b: TPOT ≤ .2 → 1, 2 (.2 inclusive), 3, 9; p99 TTFT .594 ≤ 2 s passes, p99 TPOT .495 > .2 fails
    m = v["mlperf-llama2-70b"]
    assert m.slo_attainment == approx(0.4)
    checks = {c.metric: c for c in m.checks}
    assert checks["ttft"].value_s == approx(0.594) and checks["ttft"].passed
    assert checks["tpot"].value_s == approx(0.495) and not checks["tpot"].passed
    assert not m.passed and not v["chat"].passed


def test_percentile_check_on_itl() -> None:
    a = analyze(load_run(FIX / "run_small"), parse_slo("p95:itl=490ms,p99:itl=500ms,attain=10%"))
    c = a.summary.percentile_checks
    assert [(x.value_s, x.passed) for x in c] == [(approx(0.485), True), (approx(0.557), False)]
    assert a.summary.verdicts[0].passed is False


def test_vectorized_good_equals_live_rule(small) -> None:
    """metrics.good_mask must be `ok and Slo.is_good(...)` row by row: the live view uses the latter."""
    df = small.run.df
    for slo in [*PROFILES.values(), parse_slo("ttft=250ms,e2e=2s")]:
        live = [
            bool(ok) and slo.is_good(*(None if np.isnan(x) else float(x) for x in (tt, tp, e2)))
            for ok, tt, tp, e2 in zip(df["ok"], df["ttft_s"], df["tpot_s"], df["e2e_s"], strict=True)
        ]
        assert good_mask(df, slo).tolist() == live, slo.name


def test_open_loop_warmup_saturation_server() -> None:
    """tests/fixtures/run_openloop: rate stages 2 and 4 req/s with 1 s warm-up each, custom SLO (TTFT ≤ .3, TPOT ≤ .15).

    Row 1 (sent +0.1) is in the first stage's warm-up: out of everything. Row 5 (+4.0) is in stage 1's
    warm-up: out of the step table, in the run figures. Row 8 failed (http_503).
    """
    run = load_run(FIX / "run_openloop")
    slo = parse_slo("ttft=300ms,tpot=150ms")
    a = analyze(run, slo)
    s = a.summary
    assert s.excluded_warmup_rows == 1
    assert (s.throughput.requests, s.throughput.ok) == (9, 8)
    assert s.throughput.duration_s == approx(6.0)  # +1.0 → row 10: 6.0 + 1.0
    # good: 2, 3, 4, 5 (TTFT .3 inclusive), 6, 9; not 7 (TTFT .4), 10 (TPOT .2), 8 (failed)
    assert s.throughput.goodput_req_per_s == approx(1.0)
    assert s.throughput.slo_attainment == approx(6 / 9)
    assert s.load_unit == "req/s"
    s0, s1 = s.steps
    # windows: the stages without their 1 s warm-up, [+1, +4) and [+5, +8) (requests sent in them: 3 and 5)
    assert (s0.load, s0.requests, s0.duration_s, s0.slo_attainment) == approx((2.0, 3, 3.0, 1.0))
    assert (s1.load, s1.requests, s1.duration_s, s1.slo_attainment) == approx((4.0, 5, 3.0, 0.4))
    assert (s0.req_per_s, s1.req_per_s) == approx((1.0, 4 / 3))  # completed 3 and 4 (row 8 failed)
    assert s.capacity.value == approx(2 + (1.0 - 0.9) / (1.0 - 0.4) * (4 - 2))
    ol = s.open_loop
    # send lag (start − scheduled): 0, .02, 0, 0, .5, .35, .2, 0, 0
    assert ol.send_lag_s.max == approx(0.5)
    assert ol.send_lag_s.mean == approx(1.07 / 9, abs=1e-6)
    # TTFT from scheduled (completed): .1 .22 .1 .3 .8 .75 .2 .2 → max .8
    assert ol.ttft_from_scheduled_s.max == approx(0.8, abs=1e-6)
    assert ol.ttft_from_scheduled_s.p50 == approx(0.21, abs=1e-6)
    # good from scheduled: 2, 3 (.22), 4, 5, 9 → 5 of 9; per second of the 6 s window
    assert ol.slo_attainment_from_scheduled == approx(5 / 9)
    assert ol.goodput_from_scheduled_req_per_s == approx(5 / 6)
    assert ol.achieved_rate_rps == approx(8 / 5.0)
    assert s.saturated_windows == [(1767225605.0, 1767225606.0)]
    assert any(
        "load generator saturated from 2026-01-01 00:00:05Z to 2026-01-01 00:00:06Z" in w
        and "add workers" in w
        for w in s.warnings
    )
    sv = s.server  # gauges over the run's window (+1 s to +7 s: the first stage's warm-up is out)
    assert sv["engine"] == "vllm" and sv["prefix_cache_hit_rate"] is None  # the fixture has gauges only
    assert (sv["running_mean"], sv["running_max"], sv["waiting_mean"], sv["waiting_max"]) == approx(
        (12 / 7, 3.0, 6 / 7, 3.0)
    )
    assert (sv["kv_cache_usage_mean"], sv["kv_cache_usage_max"]) == approx((0.25, 0.40))  # a fraction
    assert [st.server["running_mean"] for st in s.steps] == approx([1.5, 2.0])  # stage minus warm-up


def test_cancelled_requests_do_not_count_in_attainment(tmp_path: Path) -> None:
    """A request the load generator cancelled (run end, user stopped) is an error row, not an SLO miss."""
    d = tmp_path / "run"
    shutil.copytree(FIX / "run_small", d)
    row = "small,w1,1,,0,small-0011,chat,chat,1,2,,1767225609.500000,0.100000,0.300000,,0.100000,2,,,,,false,,cancelled,user stopped,,,,,,,,chat"
    text = (d / "requests.csv").read_text()
    row += "," * (text.splitlines()[0].count(",") - row.count(","))  # the later columns, empty
    (d / "requests.csv").write_text(text + row + "\n")
    s = analyze(load_run(d), PROFILES["chat"]).summary
    assert (s.throughput.requests, s.throughput.cancelled, s.errors["cancelled"]) == (11, 1, 1)
    assert s.throughput.slo_attainment == approx(0.4)  # still 4 good / 10 judged
    assert s.throughput.goodput_req_per_s == approx(0.4)  # window unchanged: 9.5 + 0.3 < 10.0
    step1 = s.steps[1]
    assert (step1.requests, step1.cancelled, step1.slo_attainment) == (7, 1, approx(1 / 6))


def test_closed_loop_has_no_open_loop_section(small) -> None:
    assert small.summary.open_loop is None
    assert small.summary.server is None


def _itl(rows: list[str], chunks: int = 1) -> pa.ChunkedArray:
    size = -(-len(rows) // chunks)
    return pa.chunked_array(
        [pa.array(rows[i : i + size], pa.large_string()) for i in range(0, len(rows), size)]
    )


def test_itl_parser_fast_and_general_paths_agree_with_numpy() -> None:
    rows = [
        "0.100000;0.200000",  # fixed width (fast path)
        "",
        "12.500000;0.300000",  # a gap ≥ 10 s: general path
        "0.1;2e-3",  # other formats
        "1.000000",
        "0.000001;9.999999;5.000000",  # 9.999999 s lands above the histogram cap
        "x",  # not selected: never parsed
    ]
    selected = np.array([True, True, True, True, True, True, False])
    d = itl_distribution(_itl(rows, chunks=3), selected)
    vals = np.array([0.1, 0.2, 12.5, 0.3, 0.1, 0.002, 1.0, 0.000001, 9.999999, 5.0])
    assert d.n == vals.size
    qs = (0, 1, 50, 90, 95, 99, 100)
    assert d.percentiles_s(qs) == approx(list(np.percentile(vals, qs)), abs=1e-9)
    assert (d.mean_s(), d.max_s()) == approx((vals.mean(), 12.5))


def test_itl_parser_random_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    gaps = [np.round(rng.gamma(2.0, 0.02, rng.integers(0, 40)), 6) for _ in range(300)]
    rows = [";".join(f"{g:.6f}" for g in r) for r in gaps]
    rows[5] = rows[5] + ";11.000001" if rows[5] else "11.000001"  # one slow row among fast ones
    d = itl_distribution(_itl(rows, chunks=4), np.ones(len(rows), dtype=bool))
    vals = np.round(np.array([float(x) for r in rows for x in r.split(";") if x]) * 1e6) / 1e6
    assert d.n == vals.size
    assert d.percentiles_s((50, 90, 95, 99)) == approx(list(np.percentile(vals, (50, 90, 95, 99))), abs=1e-9)
    assert d.mean_s() == approx(vals.mean())


def test_itl_parser_rejects_garbage() -> None:
    with pytest.raises(ItlFormatError, match="'abc' is not a number"):
        itl_distribution(_itl(["0.1;abc"]), np.ones(1, dtype=bool))
    with pytest.raises(ItlFormatError, match="non-negative"):
        itl_distribution(_itl(["-0.5"]), np.ones(1, dtype=bool))
