"""Many workers against an engine replica set, small enough for 2 cores: 3 Locust worker processes
(`--processes 3`) against `python -m simserver --replicas 2`, checked against both replicas' own
records — every completed request has exactly one row, and the rows equal the trace's completed
lines and /metrics' request_success summed over the replicas (the `engine` label). Users drain
at the end (`--stop-timeout`), so no request is cut off and the three counts must be equal."""

from __future__ import annotations

import csv
import http.client
import json
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, ROOT, Proc, free_port, wait_http

pytestmark = pytest.mark.e2e
ENGINE = """
base: default
step_time: {base_s: 0.01, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
"""


def request_success(port: int) -> Counter[str]:
    """vllm:request_success_total per replica (summed over finish reasons)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    out: Counter[str] = Counter()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "vllm:request_success_total":
                out[s.labels["engine"]] += s.value
    return out


def test_three_workers_two_replicas_rows_equal_the_engines_completed_requests(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    cfg, trace, results = tmp_path / "engine.yaml", tmp_path / "trace.jsonl", tmp_path / "results"
    cfg.write_text(ENGINE)
    port = free_port()
    engine = procs([PYTHON, "-m", "simserver", "--host", "127.0.0.1", "--port", str(port), "--replicas", "2",
                    "--config", str(cfg), "--trace", str(trace)], "simserver")  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/health", proc=engine.popen)
    master_port = str(free_port())
    locust = procs([PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary",
                    "--processes", "3", "--master-bind-host", "127.0.0.1", "--master-bind-port", master_port,
                    "--master-port", master_port, "--host", f"http://127.0.0.1:{port}", "--shape", "none",
                    "-u", "12", "-r", "12", "-t", "6s", "--stop-timeout", "10", "--max-tokens", "16",
                    "--dataset", "random", "--scrape-interval", "1s", "--results-dir", str(results)],
                   "locust")  # fmt: skip
    assert locust.popen.wait(90) == 0, locust.log()[-3000:]
    (run,) = results.iterdir()
    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    meta = json.loads((run / "run.json").read_text())

    # every request finished (drained), from three workers, and the master counted what it got
    assert rows and all(r["ok"] == "true" for r in rows), Counter(r["error"] for r in rows)
    assert len({r["worker"] for r in rows}) == 3
    assert meta["requests_sent"] == meta["rows_received"] == len(rows) and meta["lost_rows"] == 0
    assert len(meta["per_worker"]) == 3
    assert all(w["started"] == w["rows"] > 0 for w in meta["per_worker"].values()), meta["per_worker"]

    # the replicas' own records: trace lines with status ok, /metrics summed over replicas
    deadline = time.monotonic() + 10
    while True:  # a replica appends a request's line once it finished: wait for the last ones
        lines = trace_lines(trace)
        if len(lines) >= len(rows) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    completed = [t for t in lines if t["status"] == "ok"]
    assert sorted(t["request_id"] for t in completed) == sorted(r["request_id"] for r in rows)
    per_replica = Counter(str(t["replica"]) for t in completed)
    assert set(per_replica) == {"0", "1"}, per_replica  # both replicas served
    assert request_success(port) == per_replica
    assert sum(per_replica.values()) == len(rows)

    # the report reads the one /metrics page as two replicas (its `engine` label), each with its share
    done = subprocess.run([PYTHON, "-m", "analysis", str(run), "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    reps = json.loads((run / "summary.json").read_text())["server"]["replicas"]
    assert (reps["by"], reps["count"]) == ("engine", 2)
    shares = {x["replica"]: x["requests_share"] for x in reps["by_replica"]}
    for i, n in per_replica.items():  # the run window ends at the last completion, between two scrapes
        assert shares[i] == pytest.approx(n / len(rows), abs=0.1), (shares, per_replica)
