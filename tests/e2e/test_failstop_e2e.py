"""A target that refuses every request: users pace themselves, and the run stops by itself with one line.

The target is tests/support/refusing_server.py, a real HTTP server on 127.0.0.1 that lists a model
and answers every POST at once with an error (400, or 429 with Retry-After). Before failure
pacing, two closed-loop users sent it thousands of requests a second.
"""

from __future__ import annotations

import collections
import csv
import itertools
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from loadgen.state.failures import FIRST_N
from loadgen.state.pacing import BACKOFF_S
from tests.conftest import PYTHON, ROOT, Proc, free_port, wait_http
from tests.support.refusing_server import MESSAGE

pytestmark = pytest.mark.e2e
STOP_LINE = "the target fails systematically"


@pytest.fixture
def refusing(procs: Callable[..., Proc]) -> Callable[..., Proc]:
    def _start(*args: str) -> Proc:
        port = free_port()
        p = procs([PYTHON, "-m", "tests.support.refusing_server", "--port", str(port), *args], "refusing")
        p.url = f"http://127.0.0.1:{port}"
        wait_http(p.url + "/health", proc=p.popen)
        return p

    return _start


def locust(host: str, results: Path, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(results), *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def the_run(results: Path) -> tuple[dict, list[dict]]:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return json.loads((run / "run.json").read_text()), rows


def posts(server: Proc) -> int:
    with urllib.request.urlopen(server.url + "/count", timeout=5) as r:
        return int(json.loads(r.read())["requests"])


def by_user(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = collections.defaultdict(list)
    for r in sorted(rows, key=lambda r: float(r["t_start_unix"])):
        out[r["user"]].append(r)
    return out


def check_backoff(mine: list[dict]) -> None:
    """The first request leaves at once; each later one says the pause before it: 50 ms doubling to 1 s."""
    first, cap = BACKOFF_S
    assert mine[0]["backoff_s"] == "", mine[0]
    want = [min(cap, first * 2**i) for i in range(len(mine) - 1)]
    assert [float(r["backoff_s"]) for r in mine[1:]] == pytest.approx(want), [r["backoff_s"] for r in mine]
    for a, b in itertools.pairwise(mine):  # …and really waited that long
        assert float(b["t_start_unix"]) - float(a["t_start_unix"]) >= float(b["backoff_s"]) - 0.005


def test_a_target_refusing_everything_stops_the_run_with_one_line_and_exit_2(
    refusing, tmp_path: Path
) -> None:
    server = refusing()
    users = 2
    t0 = time.monotonic()
    out = locust(
        server.url, tmp_path / "results", "--shape", "none", "-u", str(users), "-r", str(users), "-t", "60s"
    )
    elapsed_s = time.monotonic() - t0
    log = out.stdout + out.stderr
    assert out.returncode == 2, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    (line,) = [ln for ln in log.splitlines() if STOP_LINE in ln]
    assert "http_400" in line and MESSAGE in line and "--model" in line and "--keep-going" in line, line
    assert elapsed_s < 40, f"the run went on for {elapsed_s:.0f} s"

    meta, rows = the_run(tmp_path / "results")
    assert meta["outcome"] == "target_failing" and meta["t_end_unix"], meta
    reason = meta["stop_reason"]
    assert reason["rule"] == "first" and reason["category"] == "http_400" and reason["of"] == FIRST_N
    assert reason["error_detail"] == MESSAGE and reason["http_status"] == "400"
    # every request the server saw has its row, and the run folder closed normally
    assert len(rows) == posts(server) == meta["requests_sent"] == meta["rows_received"], meta
    assert meta["lost_rows"] == 0
    assert FIRST_N <= len(rows) <= FIRST_N + users, "it stops at the rule, not later"
    assert {r["error"] for r in rows} == {"http_400"}
    for mine in by_user(rows).values():
        check_backoff(mine)
    span_s = max(float(r["t_start_unix"]) for r in rows) - min(float(r["t_start_unix"]) for r in rows)
    assert len(rows) / span_s <= 3 * users, f"{len(rows)} requests in {span_s:.1f} s: users do not pace"


def test_keep_going_paces_and_runs_to_the_end(refusing, tmp_path: Path) -> None:
    server = refusing()
    users, run_s = 2, 8
    out = locust(server.url, tmp_path / "results", "--shape", "none", "-u", str(users), "-r", str(users),
                 "-t", f"{run_s}s", "--keep-going")  # fmt: skip
    log = out.stdout + out.stderr
    assert out.returncode == 1, log[-3000:]  # Locust's own "there were failures"
    (line,) = [ln for ln in log.splitlines() if STOP_LINE in ln]
    assert "WARNING" in line and "--keep-going: the run goes on" in line, line
    meta, rows = the_run(tmp_path / "results")
    assert meta["outcome"] == "completed" and meta["target_failing"]["category"] == "http_400"
    assert "stop_reason" not in meta
    assert meta["t_end_unix"] - meta["t_start_unix"] >= run_s - 0.5, "ran to the end"
    assert len(rows) == posts(server) == meta["rows_received"]
    # 50 ms doubling to 1 s: ~6 requests in the first 1.6 s, then one a second, per user
    assert len(rows) <= users * (6 + run_s), f"{len(rows)} rows in {run_s} s from {users} users"
    for mine in by_user(rows).values():
        check_backoff(mine)


def test_retry_after_is_obeyed(refusing, tmp_path: Path) -> None:
    server = refusing("--status", "429", "--retry-after", "2")
    users, run_s = 2, 6
    out = locust(server.url, tmp_path / "results", "--shape", "none", "-u", str(users), "-r", str(users),
                 "-t", f"{run_s}s", "--keep-going")  # fmt: skip
    assert out.returncode == 1, (out.stdout + out.stderr)[-3000:]
    _, rows = the_run(tmp_path / "results")
    assert {r["error"] for r in rows} == {"http_429"}
    assert all("(Retry-After: 2)" in r["error_detail"] for r in rows)
    for mine in by_user(rows).values():
        waits = [float(r["backoff_s"]) for r in mine[1:]]
        assert waits[:-1] == [2.0] * (len(waits) - 1), waits
        assert 0.5 < waits[-1] <= 2.0, "the last wait ends with the run (-t), not after it"
        assert 2 <= len(mine) <= run_s // 2 + 1


def test_open_loop_on_two_workers_stops_the_same_way(refusing, tmp_path: Path) -> None:
    """The master judges the rows of both workers together; arrivals keep their schedule (no pacing)."""
    server = refusing()
    port = str(free_port())
    t0 = time.monotonic()
    out = locust(server.url, tmp_path / "results", "--processes", "2", "--master-bind-port", port,
                 "--master-port", port, "--rate", "5", "-t", "60s")  # fmt: skip
    elapsed_s = time.monotonic() - t0
    log = out.stdout + out.stderr
    assert out.returncode == 2, log[-3000:]
    assert sum(STOP_LINE in ln for ln in log.splitlines()) == 1, log[-3000:]
    assert elapsed_s < 40
    meta, rows = the_run(tmp_path / "results")
    assert meta["outcome"] == "target_failing" and meta["lost_rows"] == 0, meta
    assert len({r["worker"] for r in rows}) == 2, "both workers' rows count"
    assert len(rows) == posts(server) == meta["rows_received"] >= FIRST_N
    assert all(r["t_scheduled_unix"] and r["backoff_s"] == "" for r in rows), "open-loop arrivals never pause"
