"""`python -m simserver --replicas N`: N engine processes behind one port, as real processes.

Checks the replica set's contract: connections spread over the replicas, /metrics from any
replica is the whole set with an `engine` label per replica and exact counters (equal to the
trace, line for line), one trace file tagged by replica, and a clean stop with no orphans.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, ROOT, Proc, free_port, wait_http

pytestmark = pytest.mark.e2e
FAST = """
base: default
step_time: {base_s: 0.002, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
output: {median_tokens: 12, sigma: 0.5}
"""
N_REQUESTS = 48


def one_request(port: int, i: int) -> tuple[str, int]:
    """A fresh connection per request (so the kernel spreads them), streaming and not, both APIs."""
    rid = f"rep-{i:03d}"
    chat = i % 2 == 0
    body: dict[str, Any] = {"model": "sim-llm", "max_tokens": 16, "stream": i % 3 != 0}
    if chat:
        body["messages"] = [{"role": "user", "content": f"question number {i}"}]
    else:
        body["prompt"] = f"prompt number {i}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(
            "POST",
            "/v1/chat/completions" if chat else "/v1/completions",
            orjson.dumps(body),
            {"Content-Type": "application/json", "X-Request-Id": rid},
        )
        resp = conn.getresponse()
        resp.read()
        return rid, resp.status
    finally:
        conn.close()


def scrape(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return {f.name: f for f in text_string_to_metric_families(text)}


def by_engine(fams: dict[str, Any], family: str, sample: str) -> Counter[str]:
    """Per-replica totals of one sample (summed over its other labels)."""
    out: Counter[str] = Counter()
    for s in fams[family].samples:
        if s.name == sample:
            out[s.labels["engine"]] += s.value
    return out


def read_trace(path: Path, n: int, timeout_s: float = 10.0) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = trace_lines(path)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


@pytest.fixture
def replica_set(procs: Callable[..., Proc], tmp_path: Path) -> Proc:
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(FAST)
    port = free_port()
    trace = tmp_path / "trace.jsonl"
    cmd = [PYTHON, "-m", "simserver", "--port", str(port), "--replicas", "2", "--config", str(cfg)]
    p = procs([*cmd, "--trace", str(trace)], "replicas")
    p.url, p.extra["port"], p.extra["trace"] = f"http://127.0.0.1:{port}", port, trace
    wait_http(p.url + "/health", proc=p.popen)
    return p


def test_two_replicas_share_one_port_and_metrics_sum_to_the_trace(replica_set: Proc) -> None:
    port, trace = replica_set.extra["port"], replica_set.extra["trace"]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: one_request(port, i), range(N_REQUESTS)))
    assert all(status == 200 for _, status in results), results
    rows = read_trace(trace, N_REQUESTS)
    assert len(rows) == N_REQUESTS and {r["request_id"] for r in rows} == {rid for rid, _ in results}
    per_replica = Counter(str(r["replica"]) for r in rows)
    assert set(per_replica) == {"0", "1"} and min(per_replica.values()) > 0, per_replica

    for _ in range(4):  # whichever replica answers, the page is the whole set
        fams = scrape(port)
        done = by_engine(fams, "vllm:request_success", "vllm:request_success_total")
        assert done == per_replica, (done, per_replica)
        assert sum(done.values()) == N_REQUESTS
        e2e = by_engine(fams, "vllm:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds_count")
        assert e2e == per_replica
        prompt = by_engine(fams, "vllm:prompt_tokens", "vllm:prompt_tokens_total")
        gen = by_engine(fams, "vllm:generation_tokens", "vllm:generation_tokens_total")
        for engine in ("0", "1"):
            mine = [r for r in rows if str(r["replica"]) == engine]
            assert prompt[engine] == sum(r["prompt_tokens"] for r in mine)
            assert gen[engine] == sum(r["output_tokens"] for r in mine)
        info = by_engine(fams, "vllm:cache_config_info", "vllm:cache_config_info")
        assert info == Counter({"0": 1.0, "1": 1.0})


def test_one_ready_line_sigterm_to_the_parent_stops_every_replica(replica_set: Proc) -> None:
    parent = psutil.Process(replica_set.popen.pid)
    children = parent.children()
    assert len(children) == 2
    deadline = time.monotonic() + 10  # /health may answer before the last replica reported ready
    while "serving" not in replica_set.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [ln for ln in replica_set.log().splitlines() if "serving" in ln]
    assert len(lines) == 1 and "2 replicas" in lines[0], replica_set.log()
    rid, status = one_request(replica_set.extra["port"], 7)
    assert status == 200
    os.kill(parent.pid, signal.SIGTERM)  # the parent only: it must stop its replicas
    assert replica_set.popen.wait(20) == 0
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
    assert [x["request_id"] for x in trace_lines(replica_set.extra["trace"])] == [rid]


def test_replicas_die_with_a_killed_parent(replica_set: Proc) -> None:
    parent = psutil.Process(replica_set.popen.pid)
    children = parent.children()
    os.kill(parent.pid, signal.SIGKILL)
    replica_set.popen.wait(10)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


def test_a_replica_that_dies_stops_the_set(replica_set: Proc) -> None:
    children = psutil.Process(replica_set.popen.pid).children()
    children[1].kill()
    assert replica_set.popen.wait(20) == 1
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive
    assert "replica 1 exited" in replica_set.log() or "replica 0 exited" in replica_set.log()


def test_reset_prefix_cache_reaches_every_replica(replica_set: Proc) -> None:
    """After a reset through any replica, each replica's next request finds nothing cached."""
    port, trace = replica_set.extra["port"], replica_set.extra["trace"]
    prompt = " ".join(f"shared{j}" for j in range(120))

    def ask(rid: str) -> None:
        body = {"model": "sim-llm", "prompt": prompt, "max_tokens": 2}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("POST", "/v1/completions", orjson.dumps(body), {"X-Request-Id": rid})
        assert conn.getresponse().read() and True
        conn.close()

    for i in range(16):  # sequential, each on a new connection: every replica caches the prompt
        ask(f"a{i}")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/reset_prefix_cache")
    assert conn.getresponse().status == 200
    conn.close()
    for i in range(16):
        ask(f"b{i}")
    rows = read_trace(trace, 32)
    for phase in ("a", "b"):
        firsts: dict[int, dict] = {}
        for r in rows:
            if r["request_id"].startswith(phase):
                firsts.setdefault(r["replica"], r)
        assert set(firsts) == {0, 1}, f"phase {phase}: {Counter(r['replica'] for r in rows)}"
        assert all(r["cached_tokens"] == 0 for r in firsts.values()), firsts
    later = [r for r in rows if r["request_id"] not in {"a0", "b0"} and r["cached_tokens"] > 0]
    assert later  # the cache works, so the zeros above are the reset's doing


def test_port_in_use_and_bad_replica_count_are_one_line_errors() -> None:
    port = free_port()
    with socket.socket() as other:  # something else listens there (no SO_REUSEPORT)
        other.bind(("127.0.0.1", port))
        other.listen(1)
        r = subprocess.run(
            [PYTHON, "-m", "simserver", "--port", str(port), "--replicas", "2"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot listen" in r.stderr, r.stderr
    r = subprocess.run(
        [PYTHON, "-m", "simserver", "--replicas", "0"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "--replicas must be 1..64" in r.stderr, r.stderr
