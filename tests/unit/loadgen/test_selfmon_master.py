"""The master's side of the self-measurement: late-read windows, the warnings it logs as spans are
found, and when its figures reach run.json (at the stop and the close, never per report: re-sorting
every sample kept per report grew with the run, bench/selfmon_cost.py)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from locust.runners import MasterRunner

from core.slo import parse_slo
from loadgen import context
from loadgen.context import RunContext
from loadgen.monitors.selfjudge import Aggregate
from loadgen.monitors.selfmon import SelfMon


class _Master(MasterRunner):
    """A master as SelfMon tells it (isinstance), without Locust's sockets."""

    greenlet = None

    def __init__(self) -> None:
        pass


class _Environment:
    def __init__(self) -> None:
        self.runner = _Master()
        self.parsed_options = SimpleNamespace(request_timeout="60s", think_time="0s")


def _sec(t0: float, lag: float, read: float | None = None, cpu: float = 60.0) -> dict:
    read = lag / 2 if read is None else read
    return {"t0": t0, "t1": t0 + 1.0, "lag": [lag] * 100, "read": [read] * 200, "cpu": cpu}


def _master() -> tuple[RunContext, SelfMon]:
    env = _Environment()
    ctx = context.attach(env, RunContext(env, parse_slo("chat"), "m"))
    sm = SelfMon(env, threshold_ms=10.0)
    assert sm.is_master and sm.meter is None
    return ctx, sm


def test_late_reads_are_windows_of_three_seconds_whatever_the_cpu() -> None:
    """Read-lag p99 over the threshold for 3 judged seconds in a row: a late-read span, at any CPU
    (a worker waiting for a core reads late with a calm loop); not in the start-up or the shutdown,
    not a few late reads (p99 calm), not across a gap; spans of all workers merged, the worst one's figures kept."""
    agg = Aggregate(threshold_ms=10.0)
    agg.steady_from, agg.steady_until = 100.0, 140.0
    agg.add("w1", [_sec(97.0, 1.0, 30.0), _sec(98.0, 1.0, 30.0), _sec(99.0, 1.0, 30.0)])  # start-up
    few = {**_sec(101.0, 1.0), "read": [0.5] * 197 + [40.0] * 3}  # 3 late reads of 600: p99 calm
    agg.add("w1", [_sec(100.0, 1.0, 0.5), few, _sec(102.0, 1.0, 0.5)])
    agg.add("w1", [_sec(104.0, 1.0, 14.0), _sec(105.0, 1.0, 14.0), _sec(107.0, 1.0, 14.0)])  # a gap
    hot = agg.add("w1", [_sec(110.0, 1.0, 14.0, cpu=20.0), _sec(111.0, 1.0, 14.0, cpu=20.0),
                         _sec(112.0, 1.0, 14.0, cpu=20.0), _sec(113.0, 1.0, 14.0, cpu=20.0)])  # fmt: skip
    assert hot == [], "a calm loop at 20 % CPU is not saturated"
    agg.add("w2", [_sec(114.2, 1.0, 22.0), _sec(115.2, 1.0, 22.0), _sec(116.2, 1.0, 22.0)])
    agg.add("w2", [_sec(138.0, 1.0, 50.0), _sec(139.0, 1.0, 50.0), _sec(140.0, 1.0, 50.0)])  # shutdown
    meta = agg.meta()
    assert meta["late_windows"] == [[110.0, 117.2]]  # w2's span starts 0.2 s after w1's ends: merged
    assert meta["late_detail"] == [{"worker": "w2", "read_p99_ms": 22.0, "cpu_percent": 60.0, "span_s": 3}]
    assert meta["workers"]["w1"]["late_seconds"] == 4 and meta["workers"]["w2"]["late_seconds"] == 3
    assert meta["saturated_windows"] == [] and meta["workers"]["w1"]["saturated_seconds"] == 0
    edge = Aggregate(threshold_ms=10.0)
    edge.steady_from = 0.0
    edge.add("w", [_sec(float(t), 1.0, 10.0) for t in range(5)])  # at the threshold: not over it
    edge.add("v", [{"t0": float(t), "t1": t + 1.0, "lag": [1.0], "read": [], "cpu": 90.0} for t in range(5)])
    assert edge.meta()["late_windows"] == [], "nothing read is nothing read late"


def test_the_master_warns_once_per_streak_as_it_happens(caplog: pytest.LogCaptureFixture) -> None:
    _, sm = _master()
    sm.start()
    sm.agg.steady_from = 0.0
    with caplog.at_level(logging.WARNING, logger="goodput"):
        for t in range(6):  # reads late from the start, its loop calm: one warning, not four
            sm.receive("w1", [_sec(float(t), 1.0, 25.0, cpu=35.0)])
        sm.receive("w1", [_sec(6.0, 1.0, 0.5)])
        sm.receive("w1", [_sec(7.0, 1.0, 0.5)])
        sm.receive("w1", [_sec(8.0, 1.0, 0.5)])  # the pooled p99 falls back under: the streak ends
        for t in range(9, 12):
            sm.receive("w1", [_sec(float(t), 1.0, 30.0, cpu=35.0)])  # a new streak
    late = [r.getMessage() for r in caplog.records if "client reads late" in r.getMessage()]
    assert len(late) == 2, late
    assert late[0].startswith(
        "goodput: client reads late: w1 read lag p99 25 ms over 3 s > 10 ms at 35 % CPU"
    )
    assert late[0].endswith("add workers, on cores nothing else uses")
    assert not any("saturated" in r.getMessage() for r in caplog.records)


def test_run_long_figures_reach_the_meta_at_the_stop_and_the_close_not_per_report() -> None:
    ctx, sm = _master()
    sm.start()
    assert ctx.meta["loadgen"]["workers"] == {}
    sm.spawned()
    sm.receive("w1", [_sec(1.0, 1.0), _sec(2.0, 1.0)])
    sm.receive("w2", [_sec(1.0, 2.0)])
    assert ctx.meta["loadgen"]["workers"] == {}, "a report must not re-sort the run's samples"
    sm.stopping()  # run.json written at the stop: everything received so far
    at_stop = ctx.meta["loadgen"]["workers"]
    assert (at_stop["w1"]["seconds"], at_stop["w2"]["seconds"]) == (2, 1)
    assert at_stop["w2"]["lag_ms"]["p99"] == 2.0 and at_stop["w2"]["read_lag_ms"]["p99"] == 1.0
    sm.receive("w2", [_sec(3.0, 4.0)])  # the workers' last reports come after the stop
    assert ctx.meta["loadgen"]["workers"]["w2"]["seconds"] == 1
    sm.stop()  # the close (RunContext.closing): the final figures
    w2 = ctx.meta["loadgen"]["workers"]["w2"]
    assert w2["seconds"] == 2 and w2["lag_ms"]["max"] == 4.0
    assert ctx.meta["loadgen"]["threshold_ms"] == 10.0 and ctx.meta["loadgen"]["probe_interval_ms"] == 10.0
