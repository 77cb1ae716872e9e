"""When the master's self-measurement figures reach run.json: at the stop and at the close, never per
report (re-sorting every sample kept per report grew with the run: bench/selfmon_cost.py)."""

from __future__ import annotations

from types import SimpleNamespace

from locust.runners import MasterRunner

from core.slo import parse_slo
from loadgen import context
from loadgen.context import RunContext
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


def _sec(t0: float, lag: float) -> dict:
    return {"t0": t0, "t1": t0 + 1.0, "lag": [lag] * 100, "read": [lag / 2] * 200, "cpu": 60.0}


def test_run_long_figures_reach_the_meta_at_the_stop_and_the_close_not_per_report() -> None:
    env = _Environment()
    ctx = context.attach(env, RunContext(env, parse_slo("chat"), "m"))
    sm = SelfMon(env, threshold_ms=10.0)
    assert sm.is_master and sm.meter is None
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
    assert ctx.meta["loadgen"]["threshold_ms"] == 10.0
