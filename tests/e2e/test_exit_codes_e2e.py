"""The load run's exit codes (loadgen/run/lifecycle.py EXIT_CODES), each with its run folder intact.

- completed, some requests failed: 0 — failures are rows (with their category), not a verdict;
- Ctrl-C (SIGINT) on a headless run: 130, run.json `outcome: interrupted`, every sent request a row;
- a target that fails everything: 2 (tests/e2e/test_failstop_e2e.py); a bad option: 2 (test_shapes_e2e.py);
- a distributed Ctrl-C (`--processes 2`): 130 (tests/e2e/test_scaleout_e2e.py).
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT

pytestmark = pytest.mark.e2e


def cmd(host: str, results: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", host, "--only-summary",
            "--results-dir", str(results), "--max-tokens", "16", *args]  # fmt: skip


def the_run(results: Path) -> tuple[dict, list[dict]]:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return json.loads((run / "run.json").read_text()), rows


def test_completed_run_with_failed_requests_exits_0(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--faults", "http_500=0.25", "--seed", "3")
    out = subprocess.run(cmd(sim.url, tmp_path / "r", "-u", "4", "-r", "4", "-t", "5s"),
                         cwd=ROOT, capture_output=True, text=True, timeout=90)  # fmt: skip
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "Shutting down (exit code 0)" in log
    meta, rows = the_run(tmp_path / "r")
    failed = [r for r in rows if r["error"] == "http_500"]
    assert meta["outcome"] == "completed" and failed and len(failed) < len(rows), meta
    assert meta["rows_received"] == meta["requests_sent"] == len(rows)


def test_ctrl_c_on_a_headless_run_exits_130_and_keeps_every_row(procs, sim_server, tmp_path: Path) -> None:
    sim = sim_server()
    results = tmp_path / "r"
    loc = procs(cmd(sim.url, results, "-u", "4", "-r", "4", "-t", "120s"), "locust")
    deadline = time.monotonic() + 40
    rows_file = None
    while time.monotonic() < deadline:  # under way: rows written (requests.csv is flushed every second)
        assert loc.popen.poll() is None, loc.log()[-3000:]
        found = list(results.glob("*/requests.csv")) if results.exists() else []
        if found and sum(1 for _ in found[0].open()) > 8:
            rows_file = found[0]
            break
        time.sleep(0.2)
    assert rows_file is not None, loc.log()[-3000:]
    t_int = time.time()
    loc.popen.send_signal(signal.SIGINT)  # the process alone, as a terminal's Ctrl-C would reach it
    try:
        code = loc.popen.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit within 30 s after SIGINT:\n{loc.log()[-3000:]}") from None
    assert code == 130, loc.log()[-3000:]
    meta, rows = the_run(results)
    assert meta["outcome"] == "interrupted" and meta["t_end_unix"] < t_int + 10, meta
    assert meta["rows_received"] == meta["requests_sent"] == len(rows) and meta["lost_rows"] == 0
    assert {r["error"] for r in rows if r["ok"] != "true"} <= {"cancelled"}
    assert sum(r["ok"] == "true" for r in rows) >= 4
