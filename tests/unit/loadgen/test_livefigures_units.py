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
