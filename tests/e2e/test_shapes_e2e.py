"""End to end: open-loop arrivals, trace replay, stages and sweeps as real Locust runs against the
simulated engine. Timing figures come from requests.csv (intended vs actual send time)."""

from __future__ import annotations

import csv
import itertools
import json
import random
import subprocess
from pathlib import Path

import pytest

from shapes.arrivals import arrival_offsets, cv, stage_seed
from tests.conftest import PYTHON, ROOT, free_port
from tests.support.hostwatch import HostWatch, until_quiet

pytestmark = [pytest.mark.e2e]  # the timing tests below are marked `alone` one by one


def locust(host: str, results: Path, *args: str, timeout_s: float = 150) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", host,
           "--results-dir", str(results), "--only-summary", "--max-tokens", "16", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def one_run(results: Path) -> tuple[list[dict], dict]:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows, json.loads((run / "run.json").read_text())


def lags(rows: list[dict]) -> list[float]:
    return sorted(float(r["t_start_unix"]) - float(r["t_scheduled_unix"]) for r in rows)


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))]


def send_gaps(rows: list[dict]) -> list[float]:
    starts = sorted(float(r["t_start_unix"]) for r in rows)
    return [b - a for a, b in itertools.pairwise(starts)]


def on_schedule(got: list[float], want: list[float]) -> None:
    """The arrivals sent are the schedule's, in order, each at its offset (to 10 µs): any host. Only
    the tail can be missing — arrivals due so near the stage's end that a late host sent them after it."""
    assert 0.9 * len(want) <= len(got) <= len(want), (len(got), len(want))
    assert max(abs(a - b) for a, b in zip(got, want[: len(got)], strict=True)) < 1e-5


@pytest.mark.alone
def test_open_loop_poisson_rate_cv_and_send_lag(sim_server, host_watch: HostWatch, tmp_path: Path) -> None:
    """Acceptance (30 s here; 60 s in bench/open_loop_accuracy.py): 20 ± 1 req/s, CV ≈ 1, lag p99 ≤ 10 ms."""
    sim = sim_server("--profile", "capacity")
    out = locust(sim.url, tmp_path / "r", "--rate", "20", "-t", "30s", "--seed", "0")
    host = host_watch.stop().trouble()
    assert out.returncode == 0, out.stderr[-3000:]
    rows, meta = one_run(tmp_path / "r")
    assert meta["user_class"] == "RateUser" and meta["shape"]["name"] == "rate"
    (stage,) = meta["stages"]
    assert stage["rate_rps"] == 20.0 and all(r["t_scheduled_unix"] for r in rows)
    # every arrival of the seeded schedule that fell inside the stage was sent, at its time
    window = stage["t_end_unix"] - stage["t_start_unix"]
    want = [
        t
        for t in itertools.islice(arrival_offsets("poisson", 20.0, 1.0, stage_seed(0, 0)), 2000)
        if t < window
    ]
    got = sorted(t for r in rows if (t := float(r["t_scheduled_unix"]) - stage["t_start_unix"]) < window)
    on_schedule(got, want)
    starts = sorted(float(r["t_start_unix"]) for r in rows)
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 19.0 <= achieved <= 21.0, achieved
    ol = meta["open_loop"]
    assert ol["stages"][0]["sent"] == len(rows)
    assert 19.0 <= ol["achieved_rps"] <= 21.0 and "behind_warnings" in ol
    if host:  # the rest judges time to the millisecond
        pytest.skip(host)
    assert len(got) == len(want)
    assert 0.85 <= cv(send_gaps(rows)) <= 1.15
    lag = lags(rows)
    assert lag[0] >= -0.0005, "sent before its intended time"
    assert p99(lag) <= 0.010, f"send lag p99 {p99(lag) * 1000:.1f} ms"
    # run.json's lag histogram (the perf clock) agrees with the rows' (wall-clock stamps)
    assert ol["send_lag_ms"]["p50"] == pytest.approx(lag[len(lag) // 2] * 1000, abs=0.2)


@pytest.mark.alone
def test_two_processes_keep_the_total_rate_and_the_burstiness(sim_server, host_watch: HostWatch,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """Gamma arrivals (burstiness 0.25: CV 2) on 2 worker processes: the union of the workers'
    sends is exactly the single-process schedule."""
    sim = sim_server("--profile", "capacity")
    port = str(free_port())  # not Locust's default 5557: other runs' workers must not join this master
    out = locust(sim.url, tmp_path / "r", "--processes", "2", "--master-bind-port", port, "--master-port", port,
                 "--rate", "20", "--arrival", "gamma", "--burstiness", "0.25", "-t", "12s", "--seed", "5")  # fmt: skip
    host = host_watch.stop().trouble()
    assert out.returncode == 0, out.stderr[-3000:]
    rows, meta = one_run(tmp_path / "r")
    by_worker = {w: sum(1 for r in rows if r["worker"] == w) for w in {r["worker"] for r in rows}}
    assert len(by_worker) == 2 and min(by_worker.values()) >= 0.35 * len(rows), by_worker
    (stage,) = meta["stages"]
    window = stage["t_end_unix"] - stage["t_start_unix"]
    gen = arrival_offsets("gamma", 20.0, 0.25, stage_seed(5, 0))
    want = [t for t in itertools.islice(gen, 3000) if t < window]
    got = sorted(t for r in rows if (t := float(r["t_scheduled_unix"]) - stage["t_start_unix"]) < window)
    on_schedule(got, want)
    assert len(got) / window == pytest.approx(20.0, rel=0.3)  # gamma(0.25) counts vary a lot
    sched_cv = cv([b - a for a, b in itertools.pairwise(want)])
    assert 1.4 <= sched_cv <= 2.6
    if host:  # the rest judges time to the millisecond
        pytest.skip(host)
    assert len(got) == len(want)
    assert cv(send_gaps(rows)) == pytest.approx(sched_cv, abs=0.05)
    assert p99(lags(rows)) <= 0.010
    assert meta["open_loop"]["sent"] == len(rows)


@pytest.mark.alone
def test_trace_replays_on_its_scaled_timestamps(sim_server, tmp_path: Path) -> None:
    """A 10 s trace at 25 req/s replayed twice as fast (50 req/s): each request within ±5 ms of its
    scaled timestamp, the trace's output lengths generated exactly, shared prefixes cached. A replay
    whose send lag missed is replayed once more after the host is quiet again: one stall of this 2-core
    host too short for the watcher to name (a new user's run: p99 31 ms, its watcher calm) moves the
    few requests due in it, while a scheduler that sends late misses both times. Nothing is sent early."""
    rng = random.Random(11)
    trace, t = tmp_path / "trace.csv", 0.0
    lines = ["timestamp,input_tokens,output_tokens,prefix_id,prefix_tokens"]
    for i in range(250):
        t += rng.expovariate(25.0)
        group = f"sys{i % 3}" if i % 2 else ""
        lines.append(
            f"{100 + t:.4f},{rng.randint(300, 600)},{rng.randint(2, 12)},{group},{200 if group else ''}"
        )
    trace.write_text("\n".join(lines) + "\n")
    sim = sim_server("--profile", "capacity")
    misses = []
    for attempt in range(2):
        watch = HostWatch(PYTHON).start()
        try:
            out = locust(sim.url, tmp_path / f"r{attempt}", "--shape", "trace", "--trace-file", str(trace),
                         "--time-scale", "0.5")  # fmt: skip
            host = watch.stop().trouble()
        finally:
            watch.close()
        assert out.returncode == 0, out.stderr[-3000:]
        rows, meta = one_run(tmp_path / f"r{attempt}")
        assert len(rows) == 250 and all(r["ok"] == "true" for r in rows)
        (stage,) = meta["stages"]
        stamps = [float(line.split(",")[0]) for line in lines[1:]]
        offsets = [(x - stamps[0]) * 0.5 for x in stamps]
        got = sorted(float(r["t_scheduled_unix"]) - stage["t_start_unix"] for r in rows)
        assert max(abs(a - b) for a, b in zip(got, offsets, strict=True)) < 1e-5
        want_out = sorted(int(line.split(",")[2]) for line in lines[1:])
        assert sorted(int(r["output_tokens"]) for r in rows) == want_out  # max_tokens + ignore_eos
        assert sum(int(r["cached_tokens"] or 0) > 0 for r in rows if r["session"].startswith("sys")) > 50
        assert meta["shape"]["params"]["requests"] == 250 and meta["open_loop"]["arrival"] == "trace"
        assert meta["open_loop"]["achieved_rps"] == pytest.approx(50.0, rel=0.25)
        lag = lags(rows)
        assert lag[0] >= -0.0005, f"a request sent {-lag[0] * 1e3:.1f} ms before its time"
        if host:  # the rest judges time to the millisecond
            pytest.skip(host)
        # ±5 ms is the acceptance (bench/open_loop_accuracy.py prints p99 and max); here, on a 2-core
        # box shared with other suites, 90 % within 5 ms and p99 within 15 ms
        p90 = lag[int(0.90 * (len(lag) - 1))]
        if p90 <= 0.005 and p99(lag) <= 0.015:
            return
        misses.append(f"p90 {p90 * 1e3:.1f} ms, p99 {p99(lag) * 1e3:.1f} ms")
        until_quiet()
    pytest.fail("send lag in both replays: " + "; ".join(misses))


@pytest.mark.alone
def test_stages_are_labelled_in_rows_and_run_json(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--profile", "capacity")
    out = locust(sim.url, tmp_path / "r", "--shape", "stages", "--stages",
                 "3s:2:label=warm,4s:rate=10:warmup=1s:label=ten,3s:3", "--cooldown", "10%")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows, meta = one_run(tmp_path / "r")
    stages = meta["stages"]
    assert [(s["step"], s["label"], s["rate_rps"]) for s in stages] == [
        (0, "warm", None), (1, "ten", 10.0), (2, "3 users", None)]  # fmt: skip
    portions = [x for s in stages for x in (s["warmup_s"], s["cooldown_s"])]
    assert portions == pytest.approx([0.0, 0.3, 1.0, 0.4, 0.0, 0.3])
    by_step = {k: [r for r in rows if r["step"] == k] for k in ("0", "1", "2")}
    assert all(by_step.values()), {k: len(v) for k, v in by_step.items()}
    assert not any(r["t_scheduled_unix"] for r in by_step["0"] + by_step["2"])  # closed loop
    assert all(r["t_scheduled_unix"] for r in by_step["1"])
    assert {r["target_users"] for r in by_step["0"]} == {"2"} and {
        r["target_users"] for r in by_step["2"]
    } == {"3"}
    for r in rows:  # each row was sent inside its stage (the last one: or while Locust stops the users)
        s = stages[int(r["step"])]
        end = s["t_end_unix"] if s is not stages[-1] else meta["t_end_unix"]
        assert s["t_start_unix"] - 0.01 <= float(r["t_start_unix"]) <= end + 0.01


def test_sweep_runs_the_load_curve(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--profile", "capacity")
    out = locust(sim.url, tmp_path / "r", "--shape", "sweep", "--sweep-stages", "2",
                 "--sweep-stage-duration", "4s", "--sweep-concurrency", "8")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    rows, meta = one_run(tmp_path / "r")
    p = meta["shape"]["params"]
    assert meta["shape"]["name"] == "sweep"
    assert 0 < p["synchronous_rps"] < p["throughput_rps"]
    assert (
        len(p["rates_rps"]) == 2
        and p["synchronous_rps"] < p["rates_rps"][0] < p["rates_rps"][1] < p["throughput_rps"]
    )
    labels = [s["label"] for s in meta["stages"]]
    assert labels[:2] == ["synchronous", "throughput"] and len(labels) == 4
    assert [s["rate_rps"] for s in meta["stages"][2:]] == pytest.approx(p["rates_rps"])
    steps = {r["step"] for r in rows}
    assert steps == {"0", "1", "2", "3"}
    sync_rows = [r for r in rows if r["step"] == "0"]
    assert {r["target_users"] for r in sync_rows} == {"1"} and not any(
        r["t_scheduled_unix"] for r in sync_rows
    )


def test_bad_stage_list_and_trace_are_one_clear_line(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--profile", "capacity")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"timestamp": 0, "input_tokens": 5, "output_tokens": 5}\n{"timestamp": "x", "input_tokens": 5, "output_tokens": 5}\n'
    )
    for args, needle in [
        (["--shape", "stages", "--stages", "60s:10,30s:lots"], "--stages: item 2 '30s:lots'"),
        (["--shape", "trace", "--trace-file", str(bad)], f"{bad}:2: timestamp 'x'"),
        (["--rate", "5", "--user", "chat"], "--user chat"),
        # a shape's own option alone selects its shape, and is validated there
        (["--stages", "30s:lots"], "--stages: item 1 '30s:lots'"),
        (["--trace-file", str(bad)], f"{bad}:2: timestamp 'x'"),
        # with another shape it is refused, never silently ignored
        (
            ["--shape", "sweep", "--stages", "10s:2"],
            "--stages: the sweep shape (--shape sweep) does not use it",
        ),
        (["--max-concurrency", "4"], "--max-concurrency: the step shape (the default) does not use it"),
    ]:
        out = locust(sim.url, tmp_path / "r", "-t", "5s", *args, timeout_s=60)
        errors = [line for line in out.stderr.splitlines() if "goodput: error:" in line]
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert len(errors) == 1 and needle in errors[0], errors
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
