"""The live view with a reasoning model: a TTFO entry and reasoning figures beside TTFT, shown only
when some request reasoned (without reasoning TTFO is TTFT and would only repeat it)."""

from __future__ import annotations

import pytest

from loadgen.live.console import console_table
from loadgen.state.livestats import LiveStats


def test_console_shows_ttfo_and_reasoning_only_when_requests_reasoned() -> None:
    plain = LiveStats()
    plain.log_request(0.2, 0.05, [0.05], 1.0, 10, True, True, "", ttfo_s=0.2, reasoning_tokens=0)
    text = console_table(plain.snapshot(), "chat")
    assert "TTFT" in text and "TTFO" not in text and "reasoning" not in text

    live = LiveStats()
    live.log_request(0.2, 0.05, [0.05], 3.0, 100, True, True, "", ttfo_s=1.2, reasoning_tokens=60)
    live.log_request(0.3, 0.05, [0.05], 3.0, 100, True, False, "", ttfo_s=2.3, reasoning_tokens=80)
    snap = live.snapshot()
    assert snap["TTFO"]["count"] == 2 and snap["REASONING"]["count"] == 2
    assert snap["reasoning_tokens_mean"] == pytest.approx(70.0)
    assert snap["REASONING"]["p50_ms"] in (1000, 2000)  # reasoning time TTFO − TTFT, bucketed as Locust does
    text = console_table(snap, "reasoning")
    assert "TTFO" in text and "reasoning: 2 requests, 70 tokens per request" in text
