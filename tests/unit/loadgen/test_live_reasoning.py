"""The live view with a reasoning model: a TTFO entry and reasoning figures beside TTFT, shown only
when some request reasoned (without reasoning TTFO is TTFT and would only repeat it)."""

from __future__ import annotations

from loadgen.live.console import console_table
from loadgen.state.livefigures import Counters, LiveFigures
from loadgen.state.livestats import LiveStats


def table(live: LiveStats, slo: str) -> str:
    fig = LiveFigures(sample_s=2.0, window_s=10.0)
    fig.restart(Counters.take({}, [], 100.0))
    point = fig.add(Counters.take(live.stats.entries, [], 102.0), {"in_flight": 0})
    return console_table(live, point, fig.run, slo)


def test_console_shows_ttfo_and_reasoning_only_when_requests_reasoned() -> None:
    plain = LiveStats()
    plain.log_request(0.2, 0.05, [0.05], 1.0, 10, True, True, "", ttfo_s=0.2, reasoning_tokens=0)
    text = table(plain, "chat")
    assert "TTFT" in text and "TTFO" not in text and "reasoning" not in text

    live = LiveStats()
    live.log_request(0.2, 0.05, [0.05], 3.0, 100, True, True, "", ttfo_s=1.2, reasoning_tokens=60)
    live.log_request(0.3, 0.05, [0.05], 3.0, 100, True, False, "", ttfo_s=2.3, reasoning_tokens=80)
    assert live.entry("TTFO").num_requests == 2 and live.entry("REASONING").num_requests == 2
    reasoning = live.entry("REASONING")
    assert reasoning.total_content_length / reasoning.num_requests == 70.0
    assert reasoning.get_response_time_percentile(0.5) in (1000, 2000)  # TTFO − TTFT, Locust's buckets
    text = table(live, "reasoning")
    assert "TTFO" in text and "reasoning: 2 requests, 70 tokens per request" in text
