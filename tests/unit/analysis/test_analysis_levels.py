"""Load levels on synthetic runs whose truth is known (tests/support/synthetic.py): each level's window,
rates, truncation, units and capacity; compare keeping "≥"; the time series' rates; the start-up.

The demo's bias in numbers: a 10 s step of 7 s requests at a constant 2 req/s used to be divided by
first send → last completion (16.5 s) — 1.21 req/s instead of 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analysis import api
from analysis.render.plots import completion_rates, rate_bins
from analysis.results import Step, StepPercentiles
from analysis.steps import capacity_at_slo
from core.slo import PROFILES
from tests.support.synthetic import T0, request, stage, steady, write_run

approx = pytest.approx
CHAT = PROFILES["chat"]
STEP = {"name": "StepSchedule", "params": {"step_users": 1, "step_interval_s": 10.0}}


def analyze(path: Path, **kw) -> api.Summary:
    return api.analyze(api.load_run(path), CHAT, **kw).summary


def ramp_run(
    path: Path, levels: int, rate: float = 2.0, e2e_s: float = 7.0, last: list | None = None
) -> Path:
    """`levels` steps of 10 s at a constant `rate` of 7 s, 40-token requests (TTFT 0.1 s, TPOT 0.18 s:
    every request good under chat)."""
    rows, stages = [], []
    for k in range(levels):
        rows += steady(k, k + 1, 10.0 * k, 10.0 * (k + 1), rate, e2e_s, tokens=40)
        stages.append(stage(k, 10.0 * k, 10.0 * (k + 1), users=k + 1))
    return write_run(path, rows + (last or []), stages, shape=STEP)


def test_constant_throughput_gives_the_truth_at_every_level(tmp_path: Path) -> None:
    s = analyze(ramp_run(tmp_path / "run", levels=6))
    assert [st.requests for st in s.steps] == [20] * 6
    for st in s.steps:
        assert (st.t_start_unix, st.t_end_unix) == (T0 + 10 * st.step, T0 + 10 * st.step + 10)
        assert st.req_per_s == approx(2.0, rel=0.02) and st.goodput_req_per_s == approx(2.0, rel=0.02)
        assert st.truncated is None
    # 40 tokens per 7 s request, 2 req/s: 80 tok/s arrive once the first requests stream (from level 1 on);
    # level 0 holds only the start: request i's chunk j arrives at 0.5 i + 0.1 + j · 6.9/39
    assert [st.output_tok_per_s for st in s.steps[1:]] == approx([80.0] * 5, rel=0.02)
    arrived = sum(1 for i in range(20) for j in range(40) if 0.5 * i + 0.1 + j * 6.9 / 39 < 10)
    assert s.steps[0].output_tok_per_s == approx(arrived / 10, rel=0.02)
    assert (s.capacity.value, s.capacity.bounded, s.capacity.unit) == (6.0, False, "users")


def test_tokens_of_requests_cut_at_the_end_count_where_they_arrived(tmp_path: Path) -> None:
    """The run stops at 20 s: requests still streaming are cancelled rows that keep the chunks they
    received. Those tokens were generated inside the last window, so its output tok/s stays the
    steady 80 (40 tokens per 7 s request at 2 req/s), not lower."""
    pace = 6.9 / 39  # the gap between chunks: 40 chunks from 0.1 s to 7 s
    rows = steady(0, 1, 0.0, 10.0, 2.0, 7.0, tokens=40)
    for i in range(20):
        t = 10.0 + 0.5 * i
        if t + 7.0 <= 20.0:
            rows.append(request(1, t, 7.0, tokens=40, users=2))
            continue
        got = sum(1 for j in range(40) if t + 0.1 + j * pace < 20.0)
        rows.append(request(1, t, 20.0 - t, tokens=40, users=2, error="cancelled", ttft_s=0.1,
                            received=got) if got else request(1, t, 20.0 - t, users=2, error="cancelled"))  # fmt: skip
    s = analyze(
        write_run(tmp_path / "run", rows, [stage(0, 0.0, 10.0), stage(1, 10.0, 20.0, users=2)], shape=STEP)
    )
    assert s.steps[1].output_tok_per_s == approx(80.0, rel=0.02)


def test_a_level_whose_only_request_was_cancelled_is_truncated_and_capacity_says_at_least(
    tmp_path: Path,
) -> None:
    """STOP 0.3 s into level 6: its one request is cancelled. It used to score 0 % and give '5.1 users'."""
    last = [request(5, 50.1, 0.2, users=6, error="cancelled")]
    path = ramp_run(tmp_path / "run", levels=5, last=last)
    meta = json.loads((path / "run.json").read_text())
    meta["stages"].append(stage(5, 50.0, 50.3, users=6))
    (path / "run.json").write_text(json.dumps(meta))
    s = analyze(path)
    six = s.steps[-1]
    assert (six.requests, six.cancelled, six.slo_attainment) == (1, 1, None)
    assert six.truncated == "the run stopped 0.3 s into this 10 s stage"
    c = s.capacity
    assert (c.value, c.bounded, c.excluded, c.unit) == (5.0, False, [5], "users")
    text = api.console_text(s)
    assert "Answer: serves ≥ 5 users within chat at 90 %" in text
    assert (
        "Capacity at SLO (chat, attainment ≥ 90 %): ≥ 5 users" in text
        and "left out (truncated): step 5" in text
    )
    md = api.summary_markdown(s)
    assert "| 5 (truncated) | 6 |" in md and "Step 5 (6 users) is truncated, left out of capacity" in md
    j = json.loads(s.to_json())
    assert j["steps"][-1]["truncated"] is True and j["steps"][-1]["slo_attainment"] is None
    assert j["capacity"]["excluded_steps"] == [5] and j["capacity_at_slo"] == 5.0


def test_truncation_rule(tmp_path: Path) -> None:
    """Cancelled ≥ 10 % of a level's requests truncates it (survivor bias); 1 of 20 does not; a stage
    without an end (the run died in it) is truncated whatever its requests."""
    cut = [request(2, 30.0 + 0.5 * i, 7.0, users=3) for i in range(5)]
    cut += [request(2, 32.5 + 0.5 * i, 3.0, users=3, error="cancelled") for i in range(12)]  # 12 of 17
    one = [request(1, 19.9, 0.1, users=2, error="cancelled")]  # 1 of 21 at level 1
    path = ramp_run(tmp_path / "run", levels=2, last=cut + one)
    meta = json.loads((path / "run.json").read_text())
    meta["stages"].append(stage(2, 20.0, 30.0 + 10.0, users=3))
    (path / "run.json").write_text(json.dumps(meta))
    s = analyze(path)
    assert [st.truncated is None for st in s.steps] == [True, True, False]
    assert s.steps[2].truncated.startswith("12 of 17 requests were cancelled")
    meta["stages"][-1]["t_end_unix"] = None
    (path / "run.json").write_text(json.dumps(meta))
    s = analyze(path)
    assert s.steps[2].truncated == "the run ended inside it (its stage has no end in run.json)"


def test_sweep_capacity_is_in_requests_per_second(tmp_path: Path) -> None:
    """synchronous (1 user) and throughput (64 users) stages sit at the rate they achieved; the rate
    stages at theirs. It used to read '7.97 users (interpolated between 1 and 64)'."""
    rows = steady(0, 1, 0.0, 10.0, 1.0, 0.9)  # synchronous: 1 req/s, good
    rows += steady(1, 64, 10.0, 20.0, 8.0, 7.0, ttft_s=0.8)  # throughput: 8 req/s, TTFT over 500 ms
    rows += steady(2, 0, 20.0, 30.0, 3.0, 2.0, scheduled=None)  # 3 req/s, good
    rows += [
        request(3, 30.0 + i / 5, 2.0, ttft_s=0.1 if i % 2 else 0.9) for i in range(50)
    ]  # 5 req/s, half good
    stages = [stage(0, 0.0, 10.0, users=1, label="synchronous"), stage(1, 10.0, 20.0, users=64, label="throughput"),
              stage(2, 20.0, 30.0, users=0, rate_rps=3.0), stage(3, 30.0, 40.0, users=0, rate_rps=5.0)]  # fmt: skip
    sweep = {"name": "SweepSchedule", "params": {"stage_duration_s": 10.0}}
    s = analyze(write_run(tmp_path / "run", rows, stages, shape=sweep))
    assert s.load_unit == "req/s"
    assert [(st.load, st.load_basis) for st in s.steps] == [
        (approx(1.0), "achieved_rps"), (approx(8.0), "achieved_rps"), (3.0, "rate_rps"), (5.0, "rate_rps"),
    ]  # fmt: skip
    c = s.capacity
    assert (c.unit, c.between) == ("req/s", (3.0, 5.0))
    assert c.value == approx(3.0 + (1.0 - 0.9) / (1.0 - 0.5) * 2.0)
    assert "3.4 req/s (interpolated between 3 and 5)" in api.console_text(s)
    assert "Closed-loop stages on this req/s axis sit at the rate they achieved" in api.summary_markdown(s)


def steps(*levels: tuple[float, float], unit: str = "users") -> list[Step]:
    """One 100-request step per (load, attainment)."""
    none = StepPercentiles(None, None, None)
    return [Step(step=i, label="", load=x, target_users=int(x), rate_rps=None, requests=100, ok=100, errors=0,
                 good=round(a * 100), cancelled=0, t_start_unix=0.0, t_end_unix=1.0, duration_s=1.0, req_per_s=None,
                 output_tok_per_s=None, goodput_req_per_s=None, slo_attainment=a, ttft=none, tpot=none, e2e=none,
                 unit=unit) for i, (x, a) in enumerate(levels)]  # fmt: skip


def test_capacity_ties() -> None:
    both_pass = capacity_at_slo(steps((1, 1.0), (2, 1.0), (3, 0.5)), 0.9, "users")
    assert (both_pass.value, both_pass.between) == (approx(2.2), (2, 3))
    at_target = capacity_at_slo(steps((1, 1.0), (2, 0.9), (3, 0.5)), 0.9, "users")  # inclusive: 2 passes
    assert (at_target.value, at_target.between) == (approx(2.0), (2, 3))
    both_fail = capacity_at_slo(steps((1, 1.0), (2, 0.5), (3, 0.5)), 0.9, "users")
    assert (both_fail.value, both_fail.between) == (approx(1.2), (1, 2))
    same_load = capacity_at_slo(steps((1, 1.0), (2, 1.0), (2, 0.8), (3, 0.0)), 0.9, "users")  # 2 pooled: 0.9
    assert same_load.value == approx(2.0) and [lv.load for lv in same_load.levels] == [1, 2, 3]


def test_mixed_units_are_refused_on_one_axis() -> None:
    mixed = steps((1, 1.0), (2, 1.0)) + steps((3.0, 0.5), unit="req/s")
    with pytest.raises(ValueError, match="do not lie on one axis"):
        capacity_at_slo(mixed, 0.9, "users")


def test_compare_keeps_at_least_and_ranks_capacity_within_a_unit(tmp_path: Path) -> None:
    lower = analyze(ramp_run(tmp_path / "a", levels=6))  # ≥ 6 users
    rows = steady(0, 0, 0.0, 10.0, 2.0, 1.0, tokens=10) + steady(1, 0, 10.0, 20.0, 4.0, 1.0, tokens=10)
    rps = write_run(tmp_path / "b", rows, [stage(0, 0, 10, rate_rps=2.0), stage(1, 10, 20, rate_rps=4.0)])
    rated = analyze(rps)  # ≥ 4 req/s: a larger number in another unit
    c = api.compare([lower, rated], CHAT)
    assert api.comparison_text(c).count("≥ ") == 2 and "≥ 6 users" in api.comparison_text(c)
    assert "≥ 4 req/s" in api.comparison_markdown(c)
    assert all("capacity_at_slo" not in r.best for r in c.rows)  # each alone in its unit: nothing to rank
    fields, records = api.comparison_csv_records(c.rows)
    assert "capacity_lower_bound" in fields and [r["capacity_lower_bound"] for r in records] == [True, True]
    again = api.compare([lower, lower], CHAT, "median")  # repeats: the median of lower bounds is one
    assert again.rows[0].capacity_lower_bound and "≥ 6 users" in api.comparison_text(again)


def test_time_series_rates_leave_cancelled_out_and_use_the_real_bin_width(tmp_path: Path) -> None:
    """The demo's last bin: 12 requests cancelled at the stop used to read ~38 failed req/s."""
    rows = steady(0, 4, 0.0, 100.0, 1.0, 2.0)
    rows += [request(0, 99.0 + i / 20, 1.2, users=4, error="cancelled") for i in range(12)]  # cut at ~100.2
    rows += [request(0, 50.0, 0.5, users=4, error="http_500")]
    a = api.analyze(api.load_run(write_run(tmp_path / "run", rows, [stage(0, 0.0, 100.2, users=4)])), CHAT)
    df = a.run.df
    w, centers, rates = completion_rates(df, a.good, T0)
    assert w == 1.0 and rates["failed"].sum() == 1.0 and rates["cancelled"].sum() == 12
    assert rates["completed"][5:95] == approx(np.ones(90))
    assert rates["completed"].max() <= 2.0 and centers[-1] <= 101.5
    _, width, idx = rate_bins(np.array([0.5, 3.9, 4.05]), 4.1, 1.0)  # 0.1 s sliver joins the bin before
    assert list(width) == approx([1.0, 1.0, 1.0, 1.1]) and list(idx) == [0, 3, 3]
    _, width, _ = rate_bins(np.array([0.5]), 3.6, 1.0)  # over half a bin: kept at its real width
    assert list(width) == approx([1.0, 1.0, 1.0, 0.6])


def test_capacity_per_slo_in_every_verdict(tmp_path: Path) -> None:
    """TTFT grows with the level: chat (≤ 500 ms) holds up to 3 users (100 %), 4 gets 0 %: 3 + 0.1/1 · 1;
    summarization never breaks."""
    rows, stages = [], []
    for k, ttft in enumerate((0.1, 0.2, 0.3, 0.7, 0.9)):
        rows += steady(k, k + 1, 10.0 * k, 10.0 * (k + 1), 2.0, 3.0, ttft_s=ttft, tokens=30)
        stages.append(stage(k, 10.0 * k, 10.0 * (k + 1), users=k + 1))
    s = analyze(write_run(tmp_path / "run", rows, stages, shape=STEP))
    v = {x.slo: x for x in s.verdicts}
    assert (v["chat"].capacity.value, v["chat"].capacity.breaks_at) == (approx(3.1), 4.0)
    assert (v["summarization"].capacity.value, v["summarization"].capacity.bounded) == (5.0, False)
    text = api.console_text(s)
    # every request of a level alike: no resample moves it, the interval is the point
    assert (
        text.splitlines()[1]
        == "Answer: serves 3.1 users within chat at 90 % (95 % interval [3.1–3.1]); breaks at 4."
    )
    assert "SLO chat over the whole run: FAIL" in text and "a ramp passes its knee by design" in text
    assert "3.1 users [3.1–3.1] (breaks at 4)" in text and "≥ 5 users [5–…]" in text
    md = api.summary_markdown(s)
    assert "capacity: where it breaks" in md and "| 3.1 users [3.1–3.1] (breaks at 4) |" in md
    assert json.loads(s.to_json())["verdicts"][1]["capacity"]["value"] == 5.0


def server_scrapes(path: Path, slots: int, levels: int) -> None:
    """server_metrics.csv of an engine with `slots` batch slots under 1, 2, … users, level k in
    [10k, 10k + 10) s: busy slots min(users, slots), the rest waiting; scraped every second, mid-second."""
    lines = ["t,metric,labels,value"]
    for t in range(10 * levels):
        users = t // 10 + 1
        lines += [f"{T0 + t + 0.5},vllm:num_requests_running,,{min(users, slots)}",
                  f"{T0 + t + 0.5},vllm:num_requests_waiting,,{max(0, users - slots)}"]  # fmt: skip
    (path / "server_metrics.csv").write_text("\n".join(lines) + "\n")


def test_the_answer_says_how_the_server_ran_where_it_breaks(tmp_path: Path) -> None:
    """From the engine's own running / waiting gauges at the level where the SLO breaks (no spans):
    a full batch with a queue behind it; and at the lowest level when none met the SLO."""
    rows, stages = [], []
    for k, ttft in enumerate((0.1, 0.2, 0.3, 0.7, 0.9)):
        rows += steady(k, k + 1, 10.0 * k, 10.0 * (k + 1), 2.0, 3.0, ttft_s=ttft, tokens=30)
        stages.append(stage(k, 10.0 * k, 10.0 * (k + 1), users=k + 1))
    run = write_run(tmp_path / "run", rows, stages, shape=STEP)
    server_scrapes(run, slots=3, levels=5)
    s = analyze(run)
    assert [x.server["running_max"] for x in s.steps] == [1, 2, 3, 3, 3]
    assert api.console_text(s).splitlines()[1] == (
        "Answer: serves 3.1 users within chat at 90 % (95 % interval [3.1–3.1]); breaks at 4 — there, "
        "the server ran up to 3 requests at once and queued up to 1."
    )
    rows = [r for k in range(2) for r in steady(k, k + 1, 10.0 * k, 10.0 * (k + 1), 2.0, 3.0, ttft_s=0.9)]
    run = write_run(tmp_path / "slow", rows, stages[:2], shape=STEP)
    server_scrapes(run, slots=3, levels=2)
    assert api.console_text(analyze(run)).splitlines()[1] == (
        "Answer: no complete load level was served within chat at 90 % — at 1 users, the server ran up "
        "to 1 request at once and queued none."
    )


def test_startup_is_reported_apart_and_left_out_of_the_headline(tmp_path: Path) -> None:
    """4 users connect at once: their first requests wait (TTFT 0.45 s); then steady (TTFT 0.1 s)."""
    rows = [request(0, 0.01 * u, 1.0, ttft_s=0.45, users=4, user=u) for u in range(4)]
    rows += [request(0, 1.0 + 0.01 * u + i, 1.0, users=4, user=u) for u in range(4) for i in range(19)]
    startup = {"t_start_unix": T0, "t_spawned_unix": T0 + 0.02, "users": 4}
    path = write_run(tmp_path / "run", rows, [stage(0, 0.0, 20.0, users=4)], startup=startup)
    s = analyze(path)
    up = s.startup
    assert (up.t_end_unix, up.requests, up.included) == (T0 + 0.03, 4, False)
    assert (s.throughput.requests, s.ttft.max, s.excluded_startup_rows) == (76, approx(0.1), 4)
    assert s.steps[0].t_start_unix == T0 + 0.03 and s.steps[0].requests == 76
    # window: the first send after the start-up (1.0) → the last completion (20.03); the start-up's 4
    # requests complete inside it and count in its rates (leaving them out would bias them low)
    assert s.throughput.req_per_s == approx(80 / 19.03)
    assert (
        "Start-up: 30.0 ms until all 4 users were spawned and had sent their first request; 4 requests"
        in (api.console_text(s))
    )
    both = analyze(path, include_startup=True)
    assert (both.throughput.requests, both.ttft.max, both.startup.included) == (80, approx(0.45), True)
    assert json.loads(s.to_json())["startup"]["ttft_s"]["p50"] == approx(0.45)


def test_include_startup_option_on_the_command_line(tmp_path: Path) -> None:
    from analysis.__main__ import main

    rows = [request(0, 0.01 * u, 1.0, ttft_s=0.45, users=2, user=u) for u in range(2)]
    rows += [request(0, 1.0 + 0.01 * u + i, 1.0, users=2, user=u) for u in range(2) for i in range(5)]
    startup = {"t_start_unix": T0, "t_spawned_unix": T0 + 0.01, "users": 2}
    path = write_run(tmp_path / "run", rows, [stage(0, 0.0, 6.0, users=2)], startup=startup)
    for args, requests in (([], 10), (["--include-startup"], 12)):
        assert main([str(path), "--no-plots", "--no-html", "--quiet", *args]) == 0
        j = json.loads((path / "summary.json").read_text())
        assert (j["requests"], j["startup"]["requests"], j["startup"]["included"]) == (
            requests,
            2,
            bool(args),
        )


def test_planned_length_by_shape() -> None:
    """A stage is cut short when it ran shorter than planned by > 5 % of the plan, at least 1 s."""
    from analysis.windows import planned_s, truncation

    def meta(name: str, **params: object) -> dict:
        return {"shape": {"name": name, "params": params}}

    st = stage(3, 0.0, 9.2, users=4)
    assert planned_s(meta("StepSchedule", step_interval_s=10.0), st) == 10.0
    assert (
        planned_s(meta("StepSchedule", step_interval_s=10.0, max_users=4), st) is None
    )  # the capped level holds
    assert planned_s(meta("SweepSchedule", stage_duration_s=30.0), st) == 30.0
    assert planned_s(meta("StagesSchedule", stages=[{"step": 3, "duration_s": 12.0}]), st) == 12.0
    assert planned_s(meta("ConstantSchedule", duration_s=None), st) is None  # no -t: open-ended
    assert planned_s(meta("TraceSchedule"), st) is None
    # run.json names the shape (`step`, …) since this round; the class names above are older runs'
    assert planned_s(meta("step", step_interval_s=10.0), st) == 10.0
    assert planned_s(meta("sweep", stage_duration_s=30.0), st) == 30.0
    assert planned_s(meta("stages", stages=[{"step": 3, "duration_s": 12.0}]), st) == 12.0
    assert planned_s(meta("rate", duration_s=60.0), st) == 60.0
    assert truncation(st, 10.0, 20, 0) is None  # 0.8 s short of 10 s: a tick's jitter
    assert truncation(stage(3, 0.0, 8.9), 10.0, 20, 0) == "the run stopped 8.9 s into this 10 s stage"
    assert truncation(stage(3, 0.0, 56.0), 60.0, 20, 1) == "the run stopped 56.0 s into this 60 s stage"
    assert truncation(stage(3, 0.0, 58.0), 60.0, 20, 1) is None and truncation(None, None, 20, 2) is not None
