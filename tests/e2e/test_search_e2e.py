"""Capacity search end to end: its 95 % interval holds the simulated engine's known capacity.

Locust and the simulated engine run as real processes; `--shape search --search-by users` probes the
`latency` profile (6 sequences per batch) under TTFT ≤ 100 ms, where a 7th concurrent request has to
wait for a batch slot. The known capacity comes from the engine's own model in virtual time
(simserver/capacity.py), fed the very requests the run's dataset holds. The run takes ~80 s on 2
cores (10 s probes: 1, 2, 4, 8 users, bisection, both bracket edges confirmed).

The open-loop search (`--search-by rate`) is checked against the model in virtual time
(bench/search_offline.py: its coverage is in README.md § Capacity search); live on a shared 2-core
host the engine runs a few per cent slower than its model, which near a queueing knee moves a
TTFT-limited rate by more than the interval's width.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
from pathlib import Path

import pytest

from core.slo import parse_slo
from simserver.capacity import closed_loop_capacity
from simserver.profiles import load_profile
from simserver.tokenizer import chat_tokens
from tests.conftest import PYTHON, ROOT
from workloads import open_workload

pytestmark = [pytest.mark.e2e, pytest.mark.alone]

DATASET = "random:n=400,input=uniform(40,80),output=uniform(8,16)"
MAX_TOKENS = 16
SLO = "ttft=100ms"


def known_capacity() -> float:
    """The engine model's capacity in users for the run's own requests (long closed-loop runs)."""
    stream = open_workload(DATASET, seed=0)
    requests = []
    for _ in range(400):
        messages, max_tokens, _conv, _turn = stream.next_request()
        requests.append((chat_tokens(messages), min(max_tokens or MAX_TOKENS, MAX_TOKENS)))
    cycle = itertools.cycle(requests)

    def make(_rng: random.Random) -> tuple[list[str], int]:
        return next(cycle)

    value, _ = closed_loop_capacity(
        load_profile("latency"), parse_slo(SLO), make, duration_s=300.0, seeds=(0, 1)
    )
    return value


def test_search_interval_holds_the_known_capacity_and_is_narrow(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--profile", "latency", "--seed", "1")
    results = tmp_path / "results"
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", sim.url, "--only-summary",
           "--results-dir", str(results), "--dataset", DATASET, "--max-tokens", str(MAX_TOKENS), "--slo", SLO,
           "--shape", "search", "--search-by", "users", "--search-probe-duration", "10s", "-t", "300s",
           "--run-name", "search"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420)
    assert out.returncode == 0, out.stderr[-3000:]
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    an = subprocess.run([PYTHON, "-m", "analysis", str(folder), "--quiet"], cwd=ROOT, capture_output=True,
                        text=True, timeout=180)  # fmt: skip
    assert an.returncode == 0, an.stderr[-2000:]

    meta = json.loads((folder / "run.json").read_text())
    params = meta["shape"]["params"]
    assert meta["shape"]["name"] == "search" and params["search_by"] == "users"
    probes = params["probes"]
    assert len(probes) >= 5 and "bracketed" in params["outcome"], params["outcome"]
    staged = {st["step"] for st in meta["stages"]}
    assert all(p["step"] in staged for p in probes)  # every probe is a stage of run.json
    assert meta["t_end_unix"] - meta["t_start_unix"] < 600  # within 10 minutes

    s = json.loads((folder / "summary.json").read_text())
    cap = s["capacity"]
    lo, hi = cap["interval"]
    truth = known_capacity()
    assert cap["unit"] == "users" and cap["bounded"]
    assert lo <= truth <= hi, (truth, cap["value"], cap["interval"])
    assert (hi - lo) / 2 <= 0.10 * cap["value"], cap["interval"]
    assert {st["step"] for st in s["steps"]} == {p["step"] for p in probes}  # a row per probe
    md = (folder / "summary.md").read_text()
    assert "## Capacity search" in md and "## Intervals (95 %)" in md
    assert (folder / "plots" / "capacity_interval.png").is_file()
