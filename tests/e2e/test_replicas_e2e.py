"""A server's replicas behind a load balancer, end to end: two simulated engines (one slower) behind a
round-robin TCP balancer (tests/support/l4_balancer.py, as a Kubernetes Service spreads connections),
the run sent to the balancer and `--server-metrics` naming each replica's own /metrics. Every scrape
round holds both pages under one stamp, each sample labelled with its replica; each replica's request
count at the last scrape is what its own trace says it finished; the report sums the replicas and
names the busiest — the faster one, whose users come back sooner."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, ROOT, free_port, wait_http

pytestmark = pytest.mark.e2e
E2E_COUNT = "vllm:e2e_request_latency_seconds_count"


def traced(trace: Path) -> dict[str, str]:
    """request id → status, from one engine's trace as it stands (an engine writes it every half second)."""
    return {t["request_id"]: t["status"] for t in trace_lines(trace)}


def test_each_replica_is_scraped_counted_and_the_busiest_named(sim_server, procs, tmp_path: Path) -> None:
    traces = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    fast = sim_server("--profile", "latency", "--trace", str(traces[0]))
    slow = sim_server("--profile", "latency", "--set", "step_time.base_s=0.05", "--trace", str(traces[1]))
    port = free_port()
    ports = ",".join(s.url.rsplit(":", 1)[1] for s in (fast, slow))
    balancer = procs([PYTHON, "-m", "tests.support.l4_balancer", "--port", str(port), "--upstream-ports", ports],
                     "balancer")  # fmt: skip
    host = f"http://127.0.0.1:{port}"
    wait_http(host + "/health", proc=balancer.popen)
    urls = [fast.url + "/metrics", slow.url + "/metrics"]
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(tmp_path / "r"), "-u", "6", "-r", "6", "-t", "10s", "--max-tokens", "24",
           "--scrape-interval", "1s", "--server-metrics", ",".join(urls)]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    (run,) = [p for p in (tmp_path / "r").iterdir() if p.is_dir()]
    names = [u.split("//")[1].split("/")[0] for u in urls]

    sm = json.loads((run / "run.json").read_text())["server_metrics"]
    assert sm["failures"] == 0 and sm["scrapes"] >= 8
    assert [(x["instance"], x["failures"]) for x in sm["instances"]] == [(n, 0) for n in names]

    with open(run / "server_metrics.csv", newline="") as fh:
        samples = list(csv.DictReader(fh))
    rounds: dict[str, set[str]] = {}
    last: dict[str, float] = {}
    for r in samples:
        inst = dict(p.split("=", 1) for p in r["labels"].split(";") if p)["instance"]
        rounds.setdefault(r["t"], set()).add(inst)
        if r["metric"] == E2E_COUNT:
            last[inst] = float(r["value"])  # rows are in round order: the last round's value stays
    assert len(rounds) == sm["scrapes"] and all(v == set(names) for v in rounds.values())

    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ok = {r["request_id"] for r in rows if r["ok"] == "true"}
    deadline = time.monotonic() + 10
    while True:
        served = [traced(t) for t in traces]
        if ok <= served[0].keys() | served[1].keys() or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert ok <= served[0].keys() | served[1].keys() and not served[0].keys() & served[1].keys()
    for name, statuses in zip(names, served, strict=True):
        count = Counter(statuses.values())
        # what the engine finished: its trace's completed requests (one the client dropped at the
        # run's end may have finished in the engine before its sink saw the disconnect)
        assert count["ok"] <= last[name] <= count["ok"] + count["disconnected"], (name, count, last[name])
    on_fast = sum(r in served[0] for r in ok) / len(ok)
    assert on_fast > 0.55, on_fast  # three users each way: the faster replica finishes more

    done = subprocess.run([PYTHON, "-m", "analysis", str(run), "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    sv = json.loads((run / "summary.json").read_text())["server"]
    reps = sv["replicas"]
    assert (reps["by"], reps["count"], reps["busiest"]) == ("instance", 2, names[0])
    by = {x["replica"]: x for x in reps["by_replica"]}
    assert by[names[0]]["requests_share"] == pytest.approx(on_fast, abs=0.08)
    # the server's figures are the replicas' summed: tokens over the same window, each interpolated alike
    gen = sum(x["generation_tokens"] for x in by.values())
    assert gen == pytest.approx(sv["generation_tokens"], rel=1e-6) and gen > 0
    assert sv["running_max"] <= by[names[0]]["running_max"] + by[names[1]]["running_max"]
    assert "Replicas (2, by instance)" in (run / "summary.md").read_text()
    # a replica below half an even share is named in the warnings, and only then
    warned = [
        w for w in json.loads((run / "summary.json").read_text())["warnings"] if w.startswith("replica ")
    ]
    assert len(warned) == sum(x["requests_share"] < 0.25 for x in by.values()), (warned, by)
