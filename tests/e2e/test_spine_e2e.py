"""End to end: the simulated engine and Locust as real processes; the run folder is checked against
the engine's own trace (joined by X-Request-Id)."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, ROOT, free_port

pytestmark = pytest.mark.e2e


def locust(host: str, results: Path, *args: str, timeout_s: float = 120, env: dict | None = None):
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", host,
           "--results-dir", str(results), "--only-summary", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, env=env)


def run_dirs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir()) if results.exists() else []


def read_rows(run: Path) -> list[dict]:
    with open(run / "requests.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def read_trace(path: Path) -> list[dict]:
    return trace_lines(path)


def test_two_processes_one_file_every_engine_request(sim_server, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    port = str(free_port())  # never the default 5557: another run's workers must not join this master
    out = locust(sim.url, tmp_path / "results", "--processes", "2", "--master-bind-port", port, "--master-port", port,
                 "-u", "20", "-r", "10", "-t", "15s",
                 "--max-tokens", "32", "--run-name", "two")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(tmp_path / "results")
    rows = read_rows(run)
    meta = json.loads((run / "run.json").read_text())
    assert {r["run_id"] for r in rows} == {run.name} == {meta["run_id"]}
    assert len({r["worker"] for r in rows}) == 2, "rows from both worker processes"
    assert all(r["ok"] == "true" for r in rows if r["error"] != "cancelled")
    engine = {t["request_id"]: t for t in read_trace(trace)}
    completed = {rid for rid, t in engine.items() if t["status"] == "ok"}
    ok_ids = {r["request_id"] for r in rows if r["ok"] == "true"}
    assert ok_ids <= completed
    # A request the engine finished but the client did not is one the stop cut: the engine wrote its
    # last token to a socket the stopped client had not closed yet (its row has fewer tokens).
    for r in rows:
        if r["request_id"] in completed - ok_ids:
            t = engine[r["request_id"]]
            assert r["error"] == "cancelled" and int(r["output_tokens"] or 0) < t["output_tokens"], (r, t)
            assert t["t_last_emit_unix"] >= meta["t_end_unix"] - 0.25, ("cut before the run's end", r, t)
    seen = set(engine)
    assert seen <= {r["request_id"] for r in rows}, "every request the engine saw has a row"
    assert meta["lost_rows"] == 0 and meta["rows_received"] == len(rows)
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv"):
        assert (run / name).exists(), name


def test_client_ttft_matches_engine_emit_time(sim_server, tmp_path: Path) -> None:
    """20 streaming users: client first-token time vs the engine's first emit, joined by request id."""
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    out = locust(sim.url, tmp_path / "results", "-u", "20", "-r", "20", "-t", "12s", "--max-tokens", "64",
                 "--run-name", "timing")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(tmp_path / "results")
    rows = {r["request_id"]: r for r in read_rows(run) if r["ok"] == "true"}
    diffs = []
    for t in read_trace(trace):
        r = rows.get(t["request_id"])
        if r is None or not t.get("t_first_emit_unix"):
            continue
        client_first = float(r["t_start_unix"]) + float(r["ttft_s"])
        diffs.append(client_first - t["t_first_emit_unix"])
    assert len(diffs) > 50
    diffs.sort()
    p99 = diffs[int(0.99 * (len(diffs) - 1))]
    assert diffs[0] > -0.001, f"client saw the token before the engine sent it: {diffs[0]}"
    assert p99 <= 0.002, f"client TTFT lags the engine's emit by {p99 * 1000:.2f} ms p99"


def test_step_shape_labels_rows(sim_server, tmp_path: Path) -> None:
    sim = sim_server()
    out = locust(sim.url, tmp_path / "results", "--step-interval", "3s", "-t", "9s", "--max-tokens", "16",
                 "--run-name", "steps")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = run_dirs(tmp_path / "results")
    rows = read_rows(run)
    steps = {(int(r["step"]), int(r["target_users"])) for r in rows}
    assert {(0, 1), (1, 2), (2, 3)} <= steps
    meta = json.loads((run / "run.json").read_text())
    assert [s["target_users"] for s in meta["stages"]][:3] == [1, 2, 3]
    assert meta["shape"]["name"] == "step"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--slo", "ttft=fast"], "--slo"),
        (["--dataset", "no-such-dataset"], "--dataset"),
        (["--model", "no-such-model"], "no-such-model"),
        (["--step-interval", "ten"], "--step-interval"),
    ],
)
def test_bad_input_is_one_clear_line(sim_server, tmp_path: Path, args: list[str], needle: str) -> None:
    sim = sim_server()
    results = tmp_path / "results"
    earlier = results / "old-run"
    earlier.mkdir(parents=True)
    (earlier / "requests.csv").write_text("keep me\n")
    out = locust(sim.url, results, "-t", "5s", *args, timeout_s=60)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "goodput: error:" in line]
    assert len(errors) == 1 and needle in errors[0], out.stderr[-2000:]
    assert run_dirs(results) == [earlier] and (earlier / "requests.csv").read_text() == "keep me\n"


def test_unreachable_host(tmp_path: Path) -> None:
    out = locust(f"http://127.0.0.1:{free_port()}", tmp_path / "results", "-t", "5s", timeout_s=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "cannot reach" in out.stderr
    assert not (tmp_path / "results").exists() or run_dirs(tmp_path / "results") == []


def test_raw_and_openai_transports_agree(sim_server, tmp_path: Path) -> None:
    """Same engine, same workload: both transports fill the same record with the same figures."""
    sim = sim_server("--seed", "3")
    medians = {}
    for client in ("raw", "openai"):
        out = locust(sim.url, tmp_path / client, "-u", "4", "-r", "4", "-t", "8s", "--max-tokens", "48",
                     "--client", client, "--run-name", client)  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        (run,) = run_dirs(tmp_path / client)
        rows = [r for r in read_rows(run) if r["ok"] == "true"]
        assert len(rows) > 10
        assert {r["tokens_source"] for r in rows} == {"usage"}
        assert all(int(r["n_chunks"]) == int(r["output_tokens"]) for r in rows)  # one token per chunk
        ttft = sorted(float(r["ttft_s"]) for r in rows)
        tpot = sorted(float(r["tpot_s"]) for r in rows if r["tpot_s"])
        medians[client] = (ttft[len(ttft) // 2], tpot[len(tpot) // 2])
    (ttft_raw, tpot_raw), (ttft_sdk, tpot_sdk) = medians["raw"], medians["openai"]
    assert abs(ttft_raw - ttft_sdk) < 0.015, medians
    assert abs(tpot_raw - tpot_sdk) < 0.003, medians
