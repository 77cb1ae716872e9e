"""Shapes and arrival processes without processes: schedules, arrival statistics, worker splitting,
stage lists, sweep planning, trace parsing, bad input, generator statistics."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.errors import OptionError
from shapes.arrivals import RateSchedule, arrival_offsets, cv, expected_cv, share, stage_seed
from shapes.step import ConstantSchedule, StepSchedule
from shapes.sweep import SweepSchedule
from shapes.trace import load_trace

ROOT = Path(__file__).resolve().parents[3]


def opts(**kw) -> SimpleNamespace:
    """The options build_schedule reads, at their command-line defaults."""
    base = dict(
        shape="auto", rate=0.0, arrival="poisson", burstiness=1.0, max_concurrency=0, warmup="0s",
        cooldown="0s", stages="", sweep_stages=5, sweep_stage_duration="30s", sweep_concurrency=64,
        trace_file="", time_scale=1.0, run_time=None, num_users=None, spawn_rate=None, step_users=1,
        step_interval="10s", max_users=0, step_duration="10m", request_timeout="120s", llm_user="auto",
        goodput_users_given=False,
    )  # fmt: skip
    base.update(kw)
    return SimpleNamespace(**base)


def first(offsets, n: int) -> list[float]:
    it = iter(offsets)
    return [next(it) for _ in range(n)]


def gaps_of(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# -- arrival processes ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "burstiness"),
    [("poisson", 1.0), ("gamma", 0.25), ("gamma", 0.5), ("gamma", 4.0), ("constant", 1.0)],
)
def test_inter_arrival_cv_and_rate(kind: str, burstiness: float) -> None:
    rate = 20.0
    times = first(arrival_offsets(kind, rate, burstiness, stage_seed(1, 0)), 20000)
    gaps = gaps_of(times)
    assert sum(gaps) / len(gaps) == pytest.approx(1 / rate, rel=0.03)
    want = expected_cv(kind, burstiness)
    assert want == pytest.approx({"poisson": 1.0, "constant": 0.0}.get(kind, burstiness**-0.5))
    assert cv(gaps) == pytest.approx(want, abs=0.05 * max(1.0, want))
    assert all(b > a for a, b in itertools.pairwise(times)) or kind != "constant"


def test_burstiness_orders_the_cv() -> None:
    cvs = [cv(gaps_of(first(arrival_offsets("gamma", 10, b, "s"), 5000))) for b in (0.25, 1.0, 4.0)]
    assert cvs[0] > 1.5 > cvs[1] > 0.8 > cvs[2]


def test_arrivals_are_seeded() -> None:
    a = first(arrival_offsets("poisson", 5, 1, stage_seed(3, 1)), 50)
    assert a == first(arrival_offsets("poisson", 5, 1, stage_seed(3, 1)), 50)
    assert a != first(arrival_offsets("poisson", 5, 1, stage_seed(4, 1)), 50)
    assert a != first(arrival_offsets("poisson", 5, 1, stage_seed(3, 2)), 50)


@pytest.mark.parametrize("kind", ["poisson", "gamma", "constant"])
@pytest.mark.parametrize("workers", [2, 3])
def test_splitting_keeps_the_process_and_total_rate(kind: str, workers: int) -> None:
    """Each worker takes every W-th arrival of the shared sequence: the union is exactly the
    single-process schedule (total rate and CV kept), each worker runs at rate/W."""
    rate, horizon = 30.0, 200.0
    whole = [t for t in first(arrival_offsets(kind, rate, 0.5, "seed"), 8000) if t < horizon]
    parts = []
    for i in range(workers):
        mine = [t for t in first(arrival_offsets(kind, rate, 0.5, "seed", i, workers), 8000) if t < horizon]
        assert len(mine) / horizon == pytest.approx(rate / workers, rel=0.08)
        parts.extend(mine)
    merged = sorted(parts)
    assert merged == whole
    assert len(merged) / horizon == pytest.approx(rate, rel=0.05)
    assert cv(gaps_of(merged)) == pytest.approx(expected_cv(kind, 0.5), abs=0.08)


def test_constant_arrivals_are_phase_offset_not_bunched() -> None:
    rate, workers = 10.0, 4
    merged = sorted(
        t for i in range(workers) for t in first(arrival_offsets("constant", rate, 1, "x", i, workers), 50)
    )
    gaps = gaps_of(merged)
    assert min(gaps) == pytest.approx(1 / rate) and max(gaps) == pytest.approx(1 / rate)


def test_share_splits_counts() -> None:
    for total in (0, 1, 5, 64):
        for n in (1, 2, 3, 7):
            parts = [share(total, i, n) for i in range(n)]
            assert sum(parts) == total and max(parts) - min(parts) <= 1


# -- schedules ------------------------------------------------------------------------------
def test_step_and_constant_schedules() -> None:
    s = StepSchedule(step_users=2, interval_s=10, duration_s=60, max_users=5, warmup_s=2)
    assert [(lv.step, lv.users) for lv in map(s.level_at, (0, 15, 25, 45))] == [
        (0, 2),
        (1, 4),
        (2, 5),
        (2, 5),
    ]
    assert s.level_at(5).warmup_s == 2 and s.level_at(60) is None
    c = ConstantSchedule(users=3, spawn_rate=1, duration_s=None)
    assert c.level_at(1e6).users == 3
    # a level's label says its users in words: one user is "1 user"
    one = StepSchedule(step_users=1, interval_s=10, duration_s=30)
    assert [one.level_at(t).label for t in (0, 15)] == ["1 user", "2 users"]
    assert ConstantSchedule(users=1, spawn_rate=1, duration_s=None).level_at(0).label == "1 user"


def test_rate_option_selects_the_open_loop_schedule() -> None:
    from shapes import build_schedule, open_loop

    s = build_schedule(opts(rate=20.0, run_time=60, warmup="10%", max_concurrency=8))
    assert isinstance(s, RateSchedule) and s.open_loop and open_loop(opts(rate=20.0))
    lv = s.level_at(30)
    assert (lv.rate_rps, lv.users, lv.warmup_s) == (20.0, 8, 6.0) and s.level_at(60) is None
    assert not open_loop(opts())
    for o, needle in [
        (opts(rate=-1.0), "--rate"),
        (opts(rate=5.0, shape="sweep"), "--rate"),
        (opts(rate=5.0, llm_user="chat"), "--user chat"),
        (opts(rate=5.0, warmup="10%"), "--warmup"),
        (opts(rate=5.0, burstiness=0.0), "--burstiness"),
        (opts(arrival="uniform"), "--arrival"),
        (opts(max_concurrency=-2), "--max-concurrency"),
        (opts(shape="trace"), "--trace-file"),
        (opts(shape="stages"), "--stages"),
    ]:
        with pytest.raises(OptionError, match=needle.replace("-", r"\-")):
            build_schedule(o)


def test_stages_from_the_command_line() -> None:
    from shapes import build_schedule

    s = build_schedule(opts(shape="stages", stages="60s:10:2, 2m:rate=5:warmup=10%:label=peak,30s:rate=0",
                            cooldown="5s", max_concurrency=16))  # fmt: skip
    assert s.open_loop
    a, b, c = s.levels
    assert (a.users, a.spawn_rate, a.rate_rps, a.label) == (10, 2.0, None, "10 users")
    assert (b.rate_rps, b.users, b.warmup_s, b.cooldown_s, b.label) == (5.0, 16, 12.0, 5.0, "peak")
    assert (c.rate_rps, c.label) == (0.0, "pause")
    assert s.level_at(59.9).step == 0 and s.level_at(60).step == 1 and s.level_at(185).step == 2
    assert s.level_at(210) is None
    closed = build_schedule(opts(shape="stages", stages="10s:1,10s:4"))
    assert not closed.open_loop and closed.level_at(12).spawn_rate == 4.0
    assert [closed.level_at(t).label for t in (0, 12)] == ["1 user", "4 users"]
    assert [st["duration_s"] for st in closed.describe()["stages"]] == [10.0, 10.0]


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("60s:x", "item 1 '60s:x': users 'x'"),
        ("60s:10,abc:10", "item 2 'abc:10': duration 'abc'"),
        ("60s:10:rate=5", "either users"),
        ("60s", "either users"),
        ("60s:rate=fast", "rate"),
        ("60s:rate=-1", "positive rate"),
        ("60s:10:2:3", "too many fields"),
        ("60s:10:speed=3", "unknown field 'speed'"),
        ("10s:2:warmup=20s", "leave nothing"),
        ("60s:10,,", "item 2"),
    ],
)
def test_malformed_stage_lists_are_one_clear_line(spec: str, needle: str) -> None:
    from shapes import build_schedule

    with pytest.raises(OptionError) as e:
        build_schedule(opts(shape="stages", stages=spec))
    msg = str(e.value)
    assert msg.startswith("--stages: item") and needle in msg and "\n" not in msg


def test_stages_from_yaml(tmp_path: Path) -> None:
    from shapes import build_schedule

    good = tmp_path / "stages.yaml"
    good.write_text("warmup: 10%\nstages:\n  - {duration: 60s, users: 10, spawn_rate: 2, label: light}\n"
                    "  - duration: 2m\n    rate: 5\n    warmup: 10s\n")  # fmt: skip
    s = build_schedule(opts(shape="stages", stages=str(good)))
    assert [(lv.label, lv.warmup_s, lv.rate_rps) for lv in s.levels] == [
        ("light", 6.0, None),
        ("5 req/s", 10.0, 5.0),
    ]
    plain = tmp_path / "list.yml"
    plain.write_text("- {duration: 5s, users: 1}\n")
    assert build_schedule(opts(shape="stages", stages=str(plain))).levels[0].users == 1
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("stages:\n  - {duration: 60s, users: 10\n  - oops\n")
    third = tmp_path / "third.yaml"
    third.write_text(
        "stages:\n  - {duration: 60s, users: 10}\n  - {duration: 60s, users: 10}\n  - {duration: 9, users: many}\n"
    )
    for path, needle in [(bad_yaml, f"{bad_yaml}:"), (third, f"{third}:4: stage 3: users 'many'"),
                         (tmp_path / "missing.yaml", "cannot read")]:  # fmt: skip
        with pytest.raises(OptionError) as e:
            build_schedule(opts(shape="stages", stages=str(path)))
        assert needle in str(e.value), str(e.value)


def test_sweep_measures_then_spaces_rates_evenly() -> None:
    count = [0]
    s = SweepSchedule(
        stage_s=10, k=3, concurrency=32, max_concurrency=50, warmup_s=2, completed=lambda: count[0]
    )
    levels = []
    for t in range(0, 51):
        count[0] += 2 if t < 10 else 10  # 2 req/s synchronous, 10 req/s at saturation
        lv = s.level_at(float(t))
        levels.append(lv)
    assert levels[0].users == 1 and levels[0].rate_rps is None and levels[0].label == "synchronous"
    assert levels[10].users == 32 and levels[10].label == "throughput"
    assert s.sync_rps == pytest.approx(2.0) and s.max_rps == pytest.approx(10.0)
    assert s.rates == pytest.approx([4.0, 6.0, 8.0])
    assert [levels[t].rate_rps for t in (20, 30, 40)] == pytest.approx([4.0, 6.0, 8.0])
    assert levels[20].users == 50 and levels[20].step == 2 and levels[50] is None
    assert s.describe()["rates_rps"] == pytest.approx([4.0, 6.0, 8.0])


def test_sweep_stops_when_nothing_completes() -> None:
    s = SweepSchedule(stage_s=5, k=2, completed=lambda: 0)
    assert all(s.level_at(float(t)) is not None for t in range(10))
    assert s.level_at(10.0) is None and "no requests" in s.failed


# -- traces -----------------------------------------------------------------------------------
def test_trace_csv_aliases_sorting_and_prefix_groups(tmp_path: Path) -> None:
    p = tmp_path / "burst.csv"
    p.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type,session_id\n"
                 "10.5,ChatGPT,300,20,320,Conversation log,a\n5.0,GPT-4,100,0,100,Conversation log,a\n"
                 "7.0,GPT-4,50,7,57,API log,\n")  # fmt: skip
    tr = load_trace(str(p), time_scale=0.5)
    assert [r.t_s for r in tr.rows] == [0.0, 1.0, 2.75] and tr.span_s == 2.75
    assert [(r.input_tokens, r.output_tokens) for r in tr.rows] == [(100, 1), (50, 7), (300, 20)]
    assert [(r.prefix_id, r.prefix_tokens) for r in tr.rows] == [("a", 100), (None, 0), ("a", 100)]
    assert [r.line for r in tr.rows] == [3, 4, 2]


def test_trace_jsonl_mooncake_like(tmp_path: Path) -> None:
    p = tmp_path / "mooncake.jsonl"
    p.write_text("\n".join(json.dumps(o) for o in [
        {"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, 48]},
        {"timestamp": 1500, "input_length": 600, "output_length": 9, "hash_ids": [46]},
        {"timestamp": 3000, "input_length": 40, "output_length": 3, "hash_ids": [], "prefix_tokens": 10},
    ]) + "\n")  # fmt: skip
    tr = load_trace(str(p), time_scale=0.001)  # milliseconds → seconds
    assert [r.t_s for r in tr.rows] == pytest.approx([0.0, 1.5, 3.0])
    assert [(r.prefix_id, r.prefix_tokens) for r in tr.rows[:2]] == [("46", 600), ("46", 600)]
    assert tr.rows[2].prefix_id is None


@pytest.mark.parametrize(
    ("text", "suffix", "needle"),
    [
        ("timestamp,input_tokens,output_tokens\n0,10,5\n1,ten,5\n", ".csv", ":3: input tokens 'ten'"),
        ("timestamp,input_tokens,output_tokens\n0,10,5\nsoon,1,1\n", ".csv", ":3: timestamp 'soon'"),
        ("timestamp,input_tokens,output_tokens\n0,10,-5\n", ".csv", ":2: output tokens '-5'"),
        ("time,prompt\n0,hello\n", ".csv", ":1: no input tokens column"),
        (
            '{"timestamp": 0, "input_tokens": 1, "output_tokens": 1}\n{"timestamp": 1,\n',
            ".jsonl",
            ":2: invalid JSON",
        ),
        ("[1, 2]\n", ".jsonl", ":1: expected a JSON object"),
        ("timestamp,input_tokens,output_tokens\n", ".csv", "no requests"),
    ],
)
def test_malformed_traces_name_file_and_line(tmp_path: Path, text: str, suffix: str, needle: str) -> None:
    from shapes import build_schedule

    p = tmp_path / f"trace{suffix}"
    p.write_text(text)
    with pytest.raises(OptionError) as e:
        build_schedule(opts(shape="trace", trace_file=str(p)))
    assert str(e.value).startswith(str(p)) and needle in str(e.value) and "\n" not in str(e.value)


def test_trace_schedule_lasts_the_trace_then_drains(tmp_path: Path) -> None:
    from shapes import build_schedule

    p = tmp_path / "t.csv"
    p.write_text("timestamp,input_tokens,output_tokens\n0,10,5\n4,10,5\n")
    s = build_schedule(opts(shape="trace", trace_file=str(p), time_scale=0.5, request_timeout="10s"))
    assert s.open_loop and s.level_at(0).rate_rps == pytest.approx(1.0) and s.level_at(0).label == "trace"
    done = [0]
    s.completed = lambda: done[0]
    assert s.level_at(5.0) is not None  # span 2 s + lead: waiting for the last responses
    done[0] = 2
    assert s.level_at(5.0) is None
    done[0] = 0
    assert s.level_at(20.0) is None  # drain bounded by the request timeout


def test_example_trace_is_reproducible(tmp_path: Path) -> None:
    import subprocess
    import sys

    shipped = ROOT / "datasets" / "traces" / "example.csv"
    out = tmp_path / "again.csv"
    subprocess.run([sys.executable, str(shipped.with_name("make_example_trace.py")), "--out", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    assert out.read_bytes() == shipped.read_bytes()
    tr = load_trace(str(shipped))
    assert len(tr.rows) > 300 and 100 < tr.span_s <= 120
    assert len({r.prefix_id for r in tr.rows if r.prefix_id}) == 4


# -- generator statistics ---------------------------------------------------------------------
def test_open_loop_stats_merge_and_summarize() -> None:
    from core.stage import Stage
    from loadgen.state.openloop import OpenLoopStats, hist_percentile

    w1, w2, master = OpenLoopStats(), OpenLoopStats(), OpenLoopStats()
    for i in range(100):
        w1.step(0).due += 1
        w1.record_send(0, 0.001 * (i % 10), waited=False)
    for _ in range(100):
        w2.step(0).due += 1
        w2.record_send(0, 0.0005, waited=False)
    w2.record_send(0, 0.050, waited=True)
    master.merge(w1.drain())
    master.merge(w2.drain())
    assert w1.drain() == {} and master.step(0).sent == 201 and master.step(0).late == 1
    assert hist_percentile(master.step(0).lag, 1.0) == pytest.approx(0.0501, abs=1e-6)
    stage = Stage(step=0, rate_rps=20.0, label="20 req/s", t_start_unix=100.0, t_end_unix=110.0)
    o = SimpleNamespace(arrival="poisson", burstiness=1.0, max_concurrency=0)
    s = master.summary([stage], o)
    assert s["achieved_rps"] == pytest.approx(20.1) and s["stages"][0]["waited_for_slot"] == 1
    assert s["send_lag_ms"]["max"] == pytest.approx(50.1) and s["send_lag_ms"]["p50"] <= 1.0


def test_stage_message_round_trip() -> None:
    from core.stage import Stage
    from shapes.base import Level

    st = Stage(
        step=3,
        target_users=4,
        rate_rps=2.5,
        label="x",
        warmup_s=1,
        cooldown_s=2,
        spawn_rate=4,
        t_start_unix=5,
    )
    assert Stage(**st.to_dict()) == st
    assert Level(3, 4, 4.0, "x", 2.5).same_stage(st)
