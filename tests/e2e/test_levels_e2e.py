"""The numbers a user decides on, end to end against the simulated engine's own counters.

Locust and the simulated engine run as real processes; server_metrics.csv is scraped during the
run (every 0.5 s here), and the engine's `vllm:generation_tokens_total` over a level's window is the
truth the client's output tok/s over the same window must match (analysis/windows.py: tokens count
where they arrived, each chunk at send + TTFT + Σ ITL).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.alone]


def run(host: str, results: Path, *args: str, timeout_s: float = 150) -> Path:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", host, "--only-summary",
           "--results-dir", str(results), "--dataset", "random", "--scrape-interval", "0.5s", *args]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    assert out.returncode in (0, 1), out.stderr[-3000:]
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    an = subprocess.run([PYTHON, "-m", "analysis", str(folder), "--no-plots", "--no-html", "--quiet"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    assert an.returncode == 0, an.stderr[-2000:]
    return folder


def test_output_tokens_per_second_is_the_engines_over_the_same_window(sim_server, tmp_path: Path) -> None:
    """A steady level (cool-down past the longest request, so no token is lost to a cancelled row):
    client and engine within 2 %. The engine's counter is interpolated between scrapes 0.5 s apart;
    at the window's start generation is still ramping up, so the interpolation can be off by up to a
    quarter second of generation over a ~11 s window — 2 %. (60 s, 8 users: 0.03 % apart.)"""
    sim = sim_server("--profile", "default", "--seed", "1")
    folder = run(sim.url, tmp_path / "results", "-u", "6", "-r", "6", "-t", "15s", "--max-tokens", "32",
                 "--cooldown", "3s", "--run-name", "steady")  # fmt: skip
    s = json.loads((folder / "summary.json").read_text())
    (level,) = s["steps"]
    assert json.loads((folder / "run.json").read_text())["startup"]["users"] == 6
    assert s["startup"] is not None and level["t_start_unix"] >= s["startup"]["t_end_unix"]
    client, engine = level["output_tok_per_s"], level["server"]["server_gen_tok_per_s"]
    assert client == pytest.approx(engine, rel=0.02), (client, engine, level["server"]["counter_window"])


def test_step_ramp_throughput_holds_past_the_knee_as_the_engines_does(sim_server, tmp_path: Path) -> None:
    """A short demo-like ramp (2 users more every 6 s, past the engine's batch of 8): per complete level,
    the client's output tok/s is the engine's (3 %: the 2 % above, on 6 s windows at 0.5 s scrapes), and
    once the engine's generation rate has reached its plateau the client's req/s no longer falls (it
    used to: first send → last completion stretched each window by its latency, which grows past the
    knee). The last level, cut by the stop, is marked truncated."""
    sim = sim_server("--profile", "default", "--seed", "1")
    folder = run(sim.url, tmp_path / "results", "--shape", "step", "--step-users", "2", "--step-interval", "6s",
                 "-t", "42s", "--max-tokens", "48", "--run-name", "ramp")  # fmt: skip
    steps = json.loads((folder / "summary.json").read_text())["steps"]
    full = [st for st in steps if not st["truncated"]]
    assert len(full) >= 5 and steps[-1]["truncated"], [(st["load"], st["truncated_reason"]) for st in steps]
    engine = [st["server"]["server_gen_tok_per_s"] for st in full]
    for st, e in zip(full, engine, strict=True):
        assert st["output_tok_per_s"] == pytest.approx(e, rel=0.03), (st["load"], st["output_tok_per_s"], e)
    knee = next(i for i, e in enumerate(engine) if e >= 0.9 * max(engine))
    after = [st["req_per_s"] for st in full[knee:]]
    assert knee < len(full) - 1, f"the ramp never reached the engine's plateau: {engine}"
    assert min(after) >= 0.8 * after[0], f"req/s fell past the knee at {full[knee]['load']} users: {after}"
