"""The report's lines about the load generator's own delays, from run.json `loadgen` (synthetic)."""

from __future__ import annotations

from analysis.api import late_read_warnings, saturation_warnings

T0 = 1_764_900_000.0  # the run's start (Unix s)
TAIL = (
    "; a token read together with the next carries the next one's arrival (TTFT and ITL off by up to "
    "a token gap): add workers, on cores nothing else uses"
)


def meta(**loadgen: object) -> dict:
    return {"t_start_unix": T0, "loadgen": {"threshold_ms": 10.0, "cpu_busy_percent": 50.0, **loadgen}}


def test_a_line_per_late_read_window_with_the_figures_of_its_worst_span() -> None:
    lines = late_read_warnings(
        meta(
            late_windows=[[T0 + 12, T0 + 17.5], [T0 + 40, T0 + 43]],
            late_detail=[
                {"worker": "busy", "read_p99_ms": 16.1, "cpu_percent": 88.0, "span_s": 3},  # its own work
                {"worker": "shared", "read_p99_ms": 13.0, "cpu_percent": 31.0, "span_s": 3},  # neighbours'
            ],
        )
    )
    assert lines == [
        "client reads late from 2025-12-05 02:00:12Z to 2025-12-05 02:00:17Z (+12 s to +18 s into the run): read lag p99 16 ms "
        "over 3 s > 10 ms at 88 % CPU (busy)" + TAIL,
        "client reads late from 2025-12-05 02:00:40Z to 2025-12-05 02:00:43Z (+40 s to +43 s into the run): read lag p99 13 ms "
        "over 3 s > 10 ms at 31 % CPU (shared)" + TAIL,
    ]


def test_runs_without_the_figures_get_no_line_or_a_line_without_figures() -> None:
    assert late_read_warnings({}) == []
    assert late_read_warnings({"loadgen": None}) == []
    assert late_read_warnings(meta(late_windows=[], late_detail=[])) == []
    assert late_read_warnings(meta(late_windows=["junk", [1.0]], late_detail=[])) == []
    # run.json from before late windows existed: the per-worker figures alone make no line
    workers = {"w": {"read_lag_ms": {"p50": 1.0, "p99": 50.0, "max": 90.0}, "cpu_percent": {"mean": 90.0}}}
    assert late_read_warnings(meta(workers=workers)) == []
    # a window whose detail does not line up: said without figures
    (line,) = late_read_warnings(meta(late_windows=[[T0 + 1, T0 + 4]], late_detail=[]))
    assert (
        line
        == "client reads late from 2025-12-05 02:00:01Z to 2025-12-05 02:00:04Z (+1 s to +4 s into the run)"
        + TAIL
    )
    (line,) = late_read_warnings(
        {"loadgen": {"late_windows": [[T0 + 1, T0 + 4]], "late_detail": [{"read_p99_ms": "junk"}]}}
    )
    assert (
        line == "client reads late from 2025-12-05 02:00:01Z to 2025-12-05 02:00:04Z" + TAIL
    )  # no start, no figures


def test_saturation_lines_share_the_window_wording() -> None:
    windows, lines = saturation_warnings(
        meta(
            saturated_windows=[[T0 + 5, T0 + 8]],
            saturated_detail=[{"worker": "w1", "lag_p99_ms": 23.4, "cpu_percent": 95.0, "span_s": 3}],
        )
    )
    assert windows == [(T0 + 5, T0 + 8)]
    assert lines == [
        "load generator saturated from 2025-12-05 02:00:05Z to 2025-12-05 02:00:08Z (+5 s to +8 s into the run): event-loop "
        "lag p99 23 ms over 3 s at 95 % CPU (w1): add workers"
    ]
