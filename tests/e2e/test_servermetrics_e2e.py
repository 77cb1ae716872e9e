"""End to end: Locust scrapes the simulated engine's /metrics during a run; the analysis puts the engine's
figures beside the client's. A scrape target that fails never stops the run and is reported."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, free_port

pytestmark = pytest.mark.e2e


def locust(host: str, results: Path, *args: str, timeout_s: float = 90) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", host,
           "--results-dir", str(results), "--only-summary", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)


def analysis(run: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "analysis", str(run), "--quiet", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def only_run(results: Path) -> Path:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    return run


def test_agentic_run_scrapes_engine_and_hit_rate_matches_client(sim_server, tmp_path: Path) -> None:
    sim = sim_server()
    out = locust(sim.url, tmp_path / "res", "--dataset", "agentic", "-u", "8", "-r", "8", "-t", "12s",
                 "--max-tokens", "32", "--scrape-interval", "1s", "--run-name", "srv")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run = only_run(tmp_path / "res")
    meta = json.loads((run / "run.json").read_text())
    sm = meta["server_metrics"]
    assert sm["url"] == sim.url + "/metrics" and sm["mode"] == "auto"
    assert sm["failures"] == 0 and sm["last_error"] == "" and sm["scrapes"] >= 8

    with open(run / "server_metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["t", "metric", "labels", "value"]
    times = sorted({float(r["t"]) for r in rows})
    assert len(times) == sm["scrapes"]
    assert meta["t_start_unix"] - 1 <= times[0] and times[-1] <= meta["t_end_unix"] + 5
    names = {r["metric"] for r in rows}
    assert {"vllm:prefix_cache_hits_total", "vllm:time_to_first_token_seconds_bucket",
            "vllm:time_to_first_token_seconds_sum", "vllm:num_requests_running"} <= names  # fmt: skip
    assert not any(n.endswith("_created") or n.startswith("python_") for n in names)

    done = analysis(run)
    assert done.returncode == 0, done.stderr[-3000:]
    s = json.loads((run / "summary.json").read_text())
    sv = s["server"]
    assert sv["engine"] == "vllm" and sv["simulated"] is True
    with open(run / "requests.csv", newline="") as fh:
        ok = [r for r in csv.DictReader(fh) if r["ok"] == "true" and r["cached_tokens"]]
    client_share = sum(int(r["cached_tokens"]) for r in ok) / sum(int(r["prompt_tokens"]) for r in ok)
    # Agent sessions resend their growing history: the engine's prefix cache must hit, and its own
    # token accounting must agree with what it told the clients in `usage.cached_tokens`.
    assert sv["prefix_cache_hit_rate"] > 0.3
    assert abs(sv["prefix_cache_hit_rate"] - client_share) < 0.05, (sv["prefix_cache_hit_rate"], client_share)
    assert sv["client_cached_share"] == pytest.approx(client_share, abs=0.05)
    assert sv["running_mean"] > 0 and sv["server_ttft_count"] > 10
    assert 0 < sv["server_ttft_mean_s"] < s["ttft_s"]["mean"] + 0.01
    # The engine's TTFT excludes the HTTP/API layer: on one host the client's is a few ms longer.
    assert -0.01 < sv["client_minus_server_ttft_s"] < 0.5
    span = sv["ttft_compare"]["window"]
    assert span[1] - span[0] > 5, "compared over most of the run (up to the first cancelled request)"
    assert all(st["server"]["prefix_cache_hit_rate"] is not None for st in s["steps"])
    assert "## Server (engine metrics)" in (run / "summary.md").read_text()
    assert "Server (engine metrics)" in (run / "report.html").read_text()
    assert (run / "plots" / "server_metrics.png").stat().st_size > 10_000


def test_failing_scrape_target_does_not_stop_the_run(sim_server, tmp_path: Path) -> None:
    sim = sim_server()
    closed = f"http://127.0.0.1:{free_port()}/metrics"
    out = locust(sim.url, tmp_path / "res", "-u", "4", "-r", "4", "-t", "5s", "--max-tokens", "16",
                 "--server-metrics", closed, "--scrape-interval", "0.5s")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr.count("server metrics: scrape of") == 1, "one live warning, not one per scrape"
    run = only_run(tmp_path / "res")
    sm = json.loads((run / "run.json").read_text())["server_metrics"]
    assert sm["url"] == closed and sm["scrapes"] == 0 and sm["failures"] >= 5 and sm["last_error"]
    assert not (run / "server_metrics.csv").exists()
    with open(run / "requests.csv", newline="") as fh:
        assert sum(r["ok"] == "true" for r in csv.DictReader(fh)) > 10, "the load ran regardless"
    done = analysis(run, "--no-plots")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["server"] is None
    assert "## Server" not in (run / "summary.md").read_text()


def test_bad_server_metrics_option_is_one_line(sim_server, tmp_path: Path) -> None:
    out = locust(sim_server().url, tmp_path / "res", "--server-metrics", "ftp://x/metrics", "-t", "1s")
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("goodput: error: --server-metrics: 'ftp://x/metrics' is not a URL")
    assert "Traceback" not in out.stderr
