"""The live figures (loadgen/state/livefigures.py), driven with known requests and a controlled clock,
read back through the console table (loadgen/live/console.py) as a person reads it."""

from __future__ import annotations

import re

import pytest

from loadgen.live.console import console_table
from loadgen.state.livefigures import Counters, LiveFigures
from loadgen.state.livestats import LiveStats


def take(live: LiveStats, t: float) -> Counters:
    return Counters.take(live.stats.entries, [], t)


def send(live: LiveStats, n: int) -> None:
    for _ in range(n):
        live.log_sent()


def finish(live: LiveStats, n: int, *, good: bool, tokens: int = 50, error: str = "") -> None:
    for _ in range(n):
        if error:
            live.log_request(None, None, [], None, 0, False, False, error)
        else:
            live.log_request(0.2, 0.02, [0.02] * (tokens - 1), 1.2, tokens, True, good, "")


def figure(table: str, label: str) -> tuple[str, str]:
    """(last window, whole run) of one rate row of the console table."""
    m = re.search(rf"^{re.escape(label)}\s+(\S+)\s+(\S+)$", table, re.M)
    assert m, f"no '{label}' row in:\n{table}"
    return m.group(1), m.group(2)


def test_good_requests_show_as_goodput_in_both_windows() -> None:
    live, fig = LiveStats(), LiveFigures(sample_s=2.0, window_s=10.0)
    fig.restart(take(live, 100.0))
    for t in range(102, 122, 2):  # 20 s: every 2 s, 8 sent, 6 good and 1 bad completed, 1 failed
        send(live, 8)
        finish(live, 6, good=True)
        finish(live, 1, good=False)
        finish(live, 1, good=False, error="http_500")
        point = fig.add(take(live, float(t)), {"in_flight": 1})
    run = fig.run
    assert point["window_s"] == 10.0 and run["elapsed_s"] == 20.0
    assert point["goodput_rps"] == 30 / 10 and run["goodput_rps"] == 60 / 20
    assert point["ok_rps"] == 35 / 10 and run["ok_rps"] == 70 / 20
    assert point["out_tok_s"] == 35 * 50 / 10 and run["out_tok_s"] == 70 * 50 / 20
    assert run["sent"] == 80 and run["ok"] == 70 and run["failed"] == 10 and run["good"] == 60

    table = console_table(live, point, run, "chat")
    assert figure(table, "goodput req/s") == ("3.00", "3.00"), table
    assert figure(table, "completed req/s") == ("3.50", "3.50")
    assert figure(table, "output tok/s") == ("175", "175")
    assert figure(table, "SLO[chat] attainment") == ("75.0%", "75.0%")
    assert re.search(r"^sent 80 .* at 20\.0 s of the run \(sample 10\)$", table, re.M), table


def test_the_last_window_forgets_and_the_run_remembers() -> None:
    live, fig = LiveStats(), LiveFigures(sample_s=2.0, window_s=10.0)
    fig.restart(take(live, 0.0))
    send(live, 40)
    finish(live, 40, good=True)
    fig.add(take(live, 2.0), {})
    for t in (4.0, 6.0, 8.0, 10.0, 12.0, 14.0):  # then nothing ends
        point = fig.add(take(live, t), {})
    table = console_table(live, point, fig.run, "chat")
    assert figure(table, "goodput req/s") == ("0.00", "2.86"), table  # 40 in 14 s
    fig.stopped(14.0)
    point = fig.add(take(live, 20.0), {})
    assert fig.run["elapsed_s"] == 14.0 and fig.run["goodput_rps"] == pytest.approx(40 / 14, rel=1e-3), (
        "the run ends at its stop"
    )


def test_sent_counts_requests_when_they_leave() -> None:
    live, fig = LiveStats(), LiveFigures()
    fig.restart(take(live, 0.0))
    send(live, 5)  # all five still in flight
    fig.add(take(live, 2.0), {})
    assert fig.run["sent"] == 5 and fig.run["ok"] == 0
    live.reset()  # a new run: the counters start again and the window takes a fresh baseline
    fig.restart(take(live, 10.0))
    send(live, 1)
    fig.add(take(live, 12.0), {})
    assert fig.run["sent"] == 1


def test_stage_window_figures_since_the_warm_up() -> None:
    """The search's view of one stage: ended and good requests since its first sample, the slope of
    the requests in flight, and the TTFT p50 of its two halves — from the same live counters."""
    from loadgen.state.livefigures import StageWindow, slope

    live, w = LiveStats(), StageWindow(key=(3, 100.0))
    assert w.figures() is None
    finish(live, 5, good=True)  # ended before the window: not counted
    for k in range(11):  # 10 s: each second 9 good + 1 bad end, and 3 more requests stay in flight
        t = 100.0 + k
        if k:
            for _ in range(9):
                live.log_request(0.1 if k <= 5 else 0.4, 0.02, [0.02], 0.3, 2, True, True, "")
            live.log_request(0.9, 0.02, [0.02], 1.0, 2, True, False, "")
        w.add(take(live, t), in_flight=3 * k)
    f = w.figures()
    assert f is not None and f.elapsed_s == 10.0 and (f.ended, f.good) == (100, 90) and f.attainment == 0.9
    assert f.ok_rps == 10.0 and f.in_flight == 30
    assert f.in_flight_slope_rps == pytest.approx(3.0) and f.in_flight_slope_low_rps == pytest.approx(3.0)
    assert f.ttft_p50_early_s == pytest.approx(0.1) and f.ttft_p50_late_s == pytest.approx(0.4)
    assert slope([(0.0, 1.0), (1.0, 1.0)]) is None  # too few points to say
    flat = slope([(float(x), 5.0 + (x % 2)) for x in range(10)])
    assert flat is not None and flat[1] < 0 < flat[0] + 0.2  # noise around a level: lower bound below 0
