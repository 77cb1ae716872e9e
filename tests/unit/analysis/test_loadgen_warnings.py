"""The report's lines about the load generator's own delays, from run.json `loadgen` (synthetic)."""

from __future__ import annotations

from analysis.api import late_read_warnings


def worker(read_p99: float | None, cpu: float | None) -> dict:
    return {
        "read_lag_ms": {"p50": 1.0, "p99": read_p99, "max": 40.0},
        "cpu_percent": {"mean": cpu, "max": 90.0},
    }


def meta(**workers: dict) -> dict:
    return {"loadgen": {"threshold_ms": 10.0, "cpu_busy_percent": 50.0, "workers": workers}}


def test_a_line_per_worker_whose_reads_were_late() -> None:
    lines = late_read_warnings(
        meta(
            busy=worker(16.1, 88.0),  # its own work kept it away
            shared=worker(13.0, 31.0),  # its neighbours did: the same remedy, the CPU tells which
            calm=worker(0.02, 45.0),
            edge=worker(10.0, 95.0),  # at the threshold, not over it
            silent=worker(None, None),  # a worker that read nothing
        )
    )
    tail = (
        "; a token read together with the next carries the next one's arrival (TTFT and ITL off by up to "
        "a token gap): add workers, on cores nothing else uses"
    )
    assert lines == [
        "client reads late on busy: read lag p99 16 ms > 10 ms at 88 % CPU" + tail,
        "client reads late on shared: read lag p99 13 ms > 10 ms at 31 % CPU" + tail,
    ]


def test_runs_without_the_figures_get_no_line() -> None:
    assert late_read_warnings({}) == []
    assert late_read_warnings({"loadgen": None}) == []
    assert late_read_warnings({"loadgen": {"workers": {"w": worker(50.0, 90.0)}}}) == []  # no threshold
    assert late_read_warnings({"loadgen": {"threshold_ms": 10.0, "workers": {"w": "junk"}}}) == []
    odd = {
        "read_lag_ms": {"p99": 12.0},
        "cpu_percent": "junk",
    }  # over, its CPU unreadable: the line without it
    (line,) = late_read_warnings({"loadgen": {"threshold_ms": 10.0, "workers": {"w": odd}}})
    assert line.startswith("client reads late on w: read lag p99 12 ms > 10 ms; a token read")
