"""Scale-out end to end: a real Locust master and two worker processes on 127.0.0.1 against the
simulated engine, checked against the engine's own trace (joined by X-Request-Id).

- explicit `--master` + 2 × `--worker` (and `--processes 2`), interrupted with SIGINT or SIGTERM:
  one complete, analysable run folder
- one worker SIGKILLed mid-run: the run completes, the loss is bounded and reported in run.json
- `--processes 2` with the step shape (users split, stages announced) and with open-loop rate stages
"""

from __future__ import annotations

import collections
import csv
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, ROOT, Proc, free_port

pytestmark = pytest.mark.e2e


# -- helpers -------------------------------------------------------------------------------------


def start_master(procs: Callable[..., Proc], host: str, results: Path, *args: str) -> tuple[Proc, int]:
    port = free_port()
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--master",
           "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
           "--expect-workers", "2", "--expect-workers-max-wait", "60",
           "--host", host, "--results-dir", str(results), "--only-summary", *args]  # fmt: skip
    return procs(cmd, "master"), port


def processes(n: int) -> list[str]:
    """`--processes n` on a free master port (the default 5557 may be taken by another run here)."""
    port = str(free_port())
    return ["--processes", str(n), "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--master-port", port]  # fmt: skip


def start_worker(procs: Callable[..., Proc], port: int) -> Proc:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--worker",
           "--master-host", "127.0.0.1", "--master-port", str(port)]  # fmt: skip
    return procs(cmd, "worker")


def worker_name(p: Proc) -> str:
    """The `worker` column of a row made by process `p` (loadgen/context.py: host-pid)."""
    return f"{socket.gethostname()}-{p.popen.pid}"


def read_rows(run: Path) -> list[dict]:
    with open(run / "requests.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def read_trace(path: Path) -> list[dict]:
    return trace_lines(path)


def assert_rows_match_engine(rows: list[dict], engine: list[dict], why: str = "") -> None:
    """Every request the engine saw has exactly one row, every request it completed a successful
    row. Requests cut when the run ends are `cancelled` rows: some never left the client (no trace),
    some lost their last chunks after the engine sent them (engine ok, row cancelled). `why`: what
    to show on a failure (the run's own loss figures, the processes' logs)."""
    ids = [r["request_id"] for r in rows]
    assert len(ids) == len(set(ids)), "one row per request"
    assert {r["error"] for r in rows if r["ok"] != "true"} <= {"cancelled"}, "only the cut requests failed"
    seen = {t["request_id"] for t in engine}
    assert seen <= set(ids), f"no row for {sorted(seen - set(ids))[:5]}\n{why}"
    cancelled = {r["request_id"] for r in rows if r["error"] == "cancelled"}
    assert set(ids) - seen <= cancelled, "a row for a request that never reached the engine"
    completed = {t["request_id"] for t in engine if t["status"] == "ok"}
    ok_rows = {r["request_id"] for r in rows if r["ok"] == "true"}
    assert ok_rows <= completed and completed - ok_rows <= cancelled
    assert len(ok_rows) >= 2, "the run was under way"


def stop_engine(sim: Proc, trace: Path, run: Path, timeout_s: float = 5.0) -> None:
    """Stop the engine once its trace holds every row's request: a request cut off by the client
    is traced when the engine notices the disconnect, which can be a moment after the client left."""
    want = {r["request_id"] for r in read_rows(run)}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if trace.exists() and want <= {t["request_id"] for t in read_trace(trace)}:
            break
        time.sleep(0.2)
    sim.stop()


def wait_for_rows(results: Path, workers: set[str] | int, master: Proc, timeout_s: float = 40.0) -> Path:
    """The run folder, once requests.csv holds rows from all of `workers` (names, or how many)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert master.popen.poll() is None, f"master exited early:\n{master.log()[-3000:]}"
        runs = list(results.glob("*/requests.csv")) if results.exists() else []
        if runs:
            seen = {r["worker"] for r in read_rows(runs[0].parent)}
            if (len(seen) >= workers) if isinstance(workers, int) else (workers <= seen):
                return runs[0].parent
        time.sleep(0.2)
    raise TimeoutError(f"no rows from {workers} workers within {timeout_s}s:\n{master.log()[-3000:]}")


def wait_row_count(run: Path, n: int, master: Proc, timeout_s: float = 30.0) -> None:
    """Until requests.csv holds at least `n` rows."""
    deadline = time.monotonic() + timeout_s
    while len(read_rows(run)) < n:
        assert master.popen.poll() is None, f"master exited early:\n{master.log()[-3000:]}"
        assert time.monotonic() < deadline, f"fewer than {n} rows within {timeout_s}s"
        time.sleep(0.2)


def wait_exit(p: Proc, timeout_s: float) -> int:
    try:
        return p.popen.wait(timeout_s)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"process did not exit within {timeout_s}s:\n{p.log()[-3000:]}") from None


def run_locust(host: str, results: Path, *args: str, timeout_s: float = 90) -> Path:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", host,
           "--results-dir", str(results), "--only-summary", *args]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    return run


# -- explicit master + workers; master Ctrl-C ------------------------------------------------------


@pytest.mark.parametrize(
    ("topology", "sig"),
    [
        ("master+workers", signal.SIGINT),  # Ctrl-C on a master whose workers run elsewhere
        ("master+workers", signal.SIGTERM),  # docker stop, a Kubernetes pod deleted
        ("processes", signal.SIGINT),  # Ctrl-C in the terminal of a `--processes 2` run
    ],
    ids=["master-sigint", "master-sigterm", "processes-ctrl-c"],
)
def test_interrupt_leaves_a_complete_run_folder(
    topology: str, sig: int, procs, sim_server, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    results = tmp_path / "results"
    args = ["-u", "6", "-r", "6", "-t", "120s", "--max-tokens", "48", "--run-name", "sigint"]
    if topology == "processes":
        cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", *processes(2),
               "--host", sim.url, "--results-dir", str(results), "--only-summary", *args]  # fmt: skip
        master, workers = procs(cmd, "locust"), []
        run = wait_for_rows(results, 2, master)
    else:
        master, port = start_master(procs, sim.url, results, *args)
        workers = [start_worker(procs, port) for _ in range(2)]
        run = wait_for_rows(results, {worker_name(w) for w in workers}, master)
    wait_row_count(run, 2 * len(read_rows(run)), master)  # well under way: the interrupt cuts requests
    t_int = time.time()
    if topology == "processes":
        os.killpg(master.popen.pid, sig)  # a terminal's Ctrl-C reaches the master and its workers at once
    else:
        master.popen.send_signal(sig)  # the master alone; its workers hear it from the master
    assert wait_exit(master, 30) == 130, master.log()[-3000:]  # interrupted (lifecycle.py EXIT_CODES)
    for w in workers:  # the master's quit reaches the workers
        assert wait_exit(w, 30) == 0, w.log()[-3000:]
    stop_engine(sim, trace, run)  # flushes the engine's trace

    meta = json.loads((run / "run.json").read_text())
    assert meta["t_end_unix"] is not None and meta["t_end_unix"] < t_int + 10, "run closed at the interrupt"
    assert meta["outcome"] == "interrupted"
    rows = read_rows(run)
    assert len({r["worker"] for r in rows}) == 2
    loss = {k: meta[k] for k in ("requests_sent", "rows_received", "lost_rows", "per_worker")}
    logs = "\n".join(p.log()[-2000:] for p in [master, *workers])
    assert_rows_match_engine(rows, read_trace(trace), why=f"run.json: {loss}\n{logs}")
    assert meta["lost_rows"] == 0 and meta["requests_sent"] == meta["rows_received"] == len(rows)
    assert len(meta["per_worker"]) == 2 and not meta["missing_workers"]

    if topology == "processes" or sig != signal.SIGINT:
        return  # the analysis reads the folder the same way whichever signal closed it
    out = subprocess.run([PYTHON, "-m", "analysis", str(run), "--no-plots", "--no-html", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    # the start-up's requests are reported apart from the headline's
    assert summary["requests"] + summary["excluded_startup_rows"] == len(rows)


# -- a worker dies -------------------------------------------------------------------------------


def test_killed_worker_run_completes_and_reports_the_loss(procs, sim_server, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    results = tmp_path / "results"
    master, port = start_master(procs, sim.url, results, "-u", "6", "-r", "6", "-t", "12s",
                                "--max-tokens", "32", "--run-name", "kill")  # fmt: skip
    alive, doomed = start_worker(procs, port), start_worker(procs, port)
    run = wait_for_rows(results, {worker_name(alive), worker_name(doomed)}, master)
    wait_row_count(run, 2 * len(read_rows(run)), master)  # both workers have reported several times
    t_kill = time.time()
    os.kill(doomed.popen.pid, signal.SIGKILL)
    assert wait_exit(master, 60) == 0, master.log()[-3000:]
    assert wait_exit(alive, 30) == 0
    stop_engine(sim, trace, run)

    meta = json.loads((run / "run.json").read_text())
    assert meta["t_end_unix"] - meta["t_start_unix"] >= 10, "the run went on to its end"
    by_name = {w["worker"]: (cid, w) for cid, w in meta["per_worker"].items()}
    dead_id, dead = by_name[worker_name(doomed)]
    _, live = by_name[worker_name(alive)]
    # Locust's heartbeat check (~4 s) marked it; run.json says so
    assert dead["missing"] is True and meta["missing_workers"] == [dead_id]
    assert 1.0 <= dead["missing_since_unix"] - t_kill <= 10.0
    assert live["missing"] is False and live["lost_rows"] == 0 and live["started"] == live["rows"]
    # the loss: bounded by one report interval, and written down
    interval = meta["report_interval_s"]
    assert t_kill - dead["last_report_unix"] <= interval + 1.5, "the dead worker had reported ~every second"
    assert dead["lost_rows"] == dead["started"] - dead["rows"] >= 0
    assert meta["lost_rows"] == meta["requests_sent"] - meta["rows_received"] == dead["lost_rows"]

    rows = read_rows(run)
    assert meta["rows_received"] == len(rows)
    assert any(r["worker"] == worker_name(alive) and float(r["t_start_unix"]) > t_kill + 4 for r in rows)
    row_ids = {r["request_id"] for r in rows}
    engine = {t["request_id"]: t for t in read_trace(trace)}
    mark = dead["request_id_suffix"]
    assert mark and sum(r.endswith(mark) for r in row_ids) == dead["rows"] > 0
    cancelled = {r["request_id"] for r in rows if r["error"] == "cancelled"}
    assert row_ids - set(engine) <= cancelled, "rows are requests the engine saw (or cut at the end)"
    lost = set(engine) - row_ids
    assert all(rid.endswith(mark) for rid in lost), "only the dead worker lost rows"
    # nothing that ended before its last report was lost: only the last interval's requests
    settled = dead["last_report_unix"] - 0.5
    for rid in lost:
        t = engine[rid]
        assert (t["t_last_emit_unix"] or t["t_arrival_unix"]) >= settled, t
    # the master knew of `lost_rows`; the rest were sent after the last report (the engine saw them)
    unknown = len(lost) - dead["lost_rows"]
    late = sum(1 for rid, t in engine.items() if rid.endswith(mark) and t["t_arrival_unix"] >= settled)
    assert 0 <= unknown <= late


# -- shapes and rates across workers -------------------------------------------------------------


def test_step_shape_splits_users_and_announces_stages(sim_server, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    run = run_locust(sim.url, tmp_path / "results", *processes(2), "--step-users", "2",
                     "--step-interval", "3s", "-t", "9s", "--max-tokens", "16", "--run-name", "step2")  # fmt: skip
    stop_engine(sim, trace, run)
    rows = read_rows(run)
    workers = {r["worker"] for r in rows}
    assert len(workers) == 2
    users = collections.defaultdict(set)
    for r in rows:
        step, target = int(r["step"]), int(r["target_users"])
        assert target == 2 * (step + 1), r
        users[(r["worker"], step)].add(r["user"])
    for w in workers:  # 2, 4, 6 users in total: 1, 2, 3 on each worker
        assert [len(users[(w, s)]) for s in range(3)] == [1, 2, 3], dict(users)
    meta = json.loads((run / "run.json").read_text())
    assert [s["target_users"] for s in meta["stages"]] == [2, 4, 6]
    assert_rows_match_engine(rows, read_trace(trace))
    assert meta["lost_rows"] == 0


def test_open_loop_rate_stages_split_across_workers(sim_server, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    run = run_locust(sim.url, tmp_path / "results", *processes(2), "--shape", "stages",
                     "--stages", "4s:rate=10,4s:rate=20", "--arrival", "constant",
                     "--max-tokens", "16", "--run-name", "rate2")  # fmt: skip
    stop_engine(sim, trace, run)
    rows = read_rows(run)
    assert_rows_match_engine(rows, read_trace(trace))
    workers = {r["worker"] for r in rows}
    assert len(workers) == 2
    meta = json.loads((run / "run.json").read_text())
    firsts = {w: min(float(r["t_scheduled_unix"]) for r in rows if r["worker"] == w) for w in workers}
    seen = f"rows per (worker, step): {collections.Counter((r['worker'], r['step']) for r in rows)}, " \
           f"first sends {firsts}, stages {meta['stages']}"  # fmt: skip
    for step, rate in ((0, 10.0), (1, 20.0)):
        mine = [(float(r["t_scheduled_unix"]), r["worker"]) for r in rows if int(r["step"]) == step]
        assert {w for _, w in mine} == workers, f"step {step}: both workers send; {seen}"
        # from the moment both workers' open-loop users run (they start at Locust's spawn rate)
        both = max(min(t for t, w in mine if w == wk) for wk in workers)
        sched = sorted((t, w) for t, w in mine if t >= both)
        assert len(sched) >= rate, f"step {step}: {len(sched)} requests with both workers sending"
        # together the workers make one arrival process at the full rate, interleaved, not bunched
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(sched)]
        assert statistics.median(gaps) == pytest.approx(1.0 / rate, rel=0.05)
        assert min(gaps) > 0.5 / rate, "two workers sent at the same instant"
        per = collections.Counter(w for _, w in sched)
        assert max(per.values()) - min(per.values()) <= 1, per
    assert [s["rate_rps"] for s in meta["stages"]] == [10.0, 20.0]


def test_a_workers_late_final_rows_all_land(sim_server, tmp_path: Path) -> None:
    """The run has one owner of its end: the master closes requests.csv only after every live worker
    sent its last rows. Here they come 3–5 s after the stop (users drain with --stop-timeout while
    each request takes ~6 s): the old 3-s close dropped exactly these rows."""
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace), "--set", "step_time.base_s=0.15")  # ~0.15 s per token
    run = run_locust(sim.url, tmp_path / "results", *processes(1), "-u", "2", "-r", "2", "-t", "2s",
                     "--stop-timeout", "20", "--ignore-eos", "--max-tokens", "40",
                     "--run-name", "late")  # fmt: skip
    stop_engine(sim, trace, run)
    rows = read_rows(run)
    meta = json.loads((run / "run.json").read_text())
    completed = {t["request_id"] for t in read_trace(trace) if t["status"] == "ok"}
    assert completed and {r["request_id"] for r in rows} == completed, "every completed request has its row"
    assert {r["error"] for r in rows} == {""}, "drained, not cancelled"
    assert meta["lost_rows"] == 0 and meta["rows_received"] == meta["requests_sent"] == len(rows)
    ends = [float(r["t_start_unix"]) + float(r["e2e_s"]) for r in rows]
    late = [t - meta["t_end_unix"] for t in ends]
    assert max(late) > 3.0, f"the last rows were not late enough to test the close: {late}"
