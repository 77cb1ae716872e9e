"""The LLM view's time series: sliding windows over the cumulative live stats, resets, CSV, tab config."""

from __future__ import annotations

import csv
import io

from locust.stats import StatsError

from loadgen.live.webui.routes import fmt_ms, series_csv, tab_config
from loadgen.state.livefigures import Counters, Series, error_category
from loadgen.state.livestats import LiveStats


def log(live: LiveStats, n: int, ttft_s: float, *, good: bool = True, tokens: int = 10) -> None:
    for _ in range(n):
        live.log_request(ttft_s, 0.02, [0.02] * 3, ttft_s + 0.5, tokens, True, good, "")


def take(live: LiveStats, t: float, errors: list | None = None) -> Counters:
    return Counters.take(live.stats.entries, errors or [], t)


def test_window_percentiles_forget_old_requests() -> None:
    live = LiveStats()
    s = Series(sample_s=2.0, window_s=10.0)
    s.restart(0.0, take(live, 0.0))
    log(live, 50, 0.100)  # fast requests early in the run
    s.add(take(live, 2.0), {})
    for t in (4.0, 6.0, 8.0, 10.0, 12.0):
        log(live, 10, 0.900)  # then only slow ones
        p = s.add(take(live, t), {})
    # At t=12 the window is (2, 12]: the 50 fast requests of (0, 2] are out of it.
    assert p["window_s"] == 10.0
    assert p["ttft_p50"] == 900 and p["ttft_p95"] == 900
    assert p["ok_rps"] == 50 / 10.0
    assert p["out_tok_s"] == 500 / 10.0
    # The whole-run figure still mixes both.
    assert live.entry("TTFT").get_response_time_percentile(0.5) == 900
    assert live.entry("TTFT").get_response_time_percentile(0.4) == 100


def test_goodput_attainment_and_errors_by_category() -> None:
    live = LiveStats()
    s = Series(sample_s=2.0, window_s=10.0)
    s.restart(0.0, take(live, 0.0))
    log(live, 6, 0.1, good=True)
    log(live, 2, 0.1, good=False)
    live.log_request(None, None, [], None, 0, False, False, "http_429")
    live.log_request(None, None, [], None, 0, False, False, "http_429")
    err = StatsError("POST", "/v1/chat/completions", "LLMRequestError('http_429')", occurrences=2)
    p = s.add(take(live, 2.0, [err]), {"in_flight": 3})
    assert p["goodput_rps"] == 3.0 and p["ok_rps"] == 4.0 and p["fail_rps"] == 1.0
    assert p["attainment"] == 6 / 10
    assert p["error_ratio"] == 2 / 10
    assert p["errors_rps"] == {"http_429": 1.0}
    assert p["in_flight"] == 3
    # Nothing new in the next window for the category: it drops out of the point.
    err2 = StatsError("POST", "/v1/chat/completions", "LLMRequestError('http_429')", occurrences=2)
    for t in (4.0, 6.0, 8.0, 10.0, 12.0, 14.0):
        p = s.add(take(live, t, [err2]), {})
    assert p["errors_rps"] == {}
    assert p["attainment"] is None and p["ttft_p50"] is None


def test_reset_between_samples_starts_a_fresh_baseline() -> None:
    live = LiveStats()
    s = Series(sample_s=2.0, window_s=10.0)
    s.restart(0.0, take(live, 0.0))
    log(live, 40, 0.2)
    s.add(take(live, 2.0), {})
    live.reset()  # e.g. a new run or Locust's "Reset stats"
    log(live, 4, 0.6)
    p = s.add(take(live, 4.0), {})
    assert p["ok_rps"] == 4 / 2.0, "counts since the reset, over one sample interval"
    assert p["ttft_p50"] == 600


def test_since_and_epoch_serve_increments() -> None:
    live = LiveStats()
    s = Series(sample_s=1.0, window_s=5.0, max_points=5)
    s.restart(0.0, take(live, 0.0))
    for t in range(1, 9):
        log(live, 1, 0.1)
        s.add(take(live, float(t)), {})
    assert [p["seq"] for p in s.points] == [4, 5, 6, 7, 8], "bounded ring"
    assert [p["seq"] for p in s.since(6)] == [7, 8]
    assert s.since(8) == []
    epoch = s.epoch
    s.restart(100.0, take(live, 100.0))
    assert s.epoch == epoch + 1 and not s.points


def test_error_category_from_locust_repr() -> None:
    assert error_category("LLMRequestError('http_429')") == "http_429"
    assert error_category('LLMRequestError("timeout")') == "timeout"
    assert (
        error_category("ConnectionRefusedError(111, 'refused')") == "ConnectionRefusedError(111, 'refused')"
    )


def test_series_csv_has_one_column_per_error_category() -> None:
    pts = [
        {"seq": 1, "t": 1.0, "ttft_p50": 10.0, "errors_rps": {}},
        {"seq": 2, "t": 3.0, "ttft_p50": None, "errors_rps": {"timeout": 0.5}},
    ]
    rows = list(csv.reader(io.StringIO(series_csv(pts))))
    assert rows[0] == ["seq", "t", "ttft_p50", "errors_rps_timeout"]
    assert rows[1] == ["1", "1.0", "10.0", "0"] and rows[2] == ["2", "3.0", "", "0.5"]


def test_tab_config_tables_match_their_tabs() -> None:
    cfg = tab_config("/base")
    tabs = {t["key"] for t in cfg["extended_tabs"]}
    assert tabs == {t["key"] for t in cfg["extended_tables"]}
    assert cfg["extended_csv_files"][0]["href"] == "/base/llm/series.csv"
    assert fmt_ms(None) == "–" and fmt_ms(4.25) == "4.2 ms" and fmt_ms(512.4) == "512 ms"
