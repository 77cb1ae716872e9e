"""Two real routers in front of two simulated engines, end to end: vllm-router and the SGLang Model
Gateway (`smg`, pip's sglang-router), each with round robin over a healthy engine and one that fails a
fifth of its requests with HTTP 500. The run scrapes the router's own page beside both engines'; what
the router counted for each backend is what that backend's own trace says it received — every request,
the failed ones and the router's retries of them — and the report gives each backend's share, its
failures and the retries the client never saw. Then the same router's `/metrics` as `--server-metrics
auto` finds it: vllm-router passes that GET to one backend at a time, so the page is one replica's or
each in turn, and the report says so instead of calling it the server's."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, ROOT, free_port

pytestmark = pytest.mark.e2e
BIN = Path(PYTHON).parent
CHAT = "/v1/chat/completions"


def launch(
    kind: str, port: int, metrics_port: int, workers: list[str], policy: str = "round_robin"
) -> list[str]:
    """The router's command line: its main port and its own metrics page, both on loopback."""
    prog = [str(BIN / "vllm-router")] if kind == "vllm-router" else [str(BIN / "smg"), "launch"]
    return [*prog, "--host", "127.0.0.1", "--port", str(port), "--worker-urls", *workers, "--policy",
            policy, "--prometheus-host", "127.0.0.1", "--prometheus-port", str(metrics_port)]  # fmt: skip


def wait_models(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """Until the router lists a model: smg registers its workers in the background after it listens."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the router exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as r:
                if json.loads(r.read()).get("data"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} listed no model in {timeout_s} s")


def traced(trace: Path) -> list[dict]:
    return trace_lines(trace)


def last_round(path: Path) -> dict[tuple[str, str], float]:
    """(metric, labels) → value at the last scrape round (rows are written round after round)."""
    out: dict[tuple[str, str], float] = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            out[(r["metric"], r["labels"])] = float(r["value"])
    return out


def per_worker(values: dict[tuple[str, str], float], metric: str, **where: str) -> Counter:
    out: Counter = Counter()
    for (m, labels), v in values.items():
        lab = dict(p.split("=", 1) for p in labels.split(";") if p)
        if m == metric and all(lab.get(k) == x for k, x in where.items()):
            out[lab["worker"].replace("%3A", ":")] += v
    return out


def run(host: str, out_dir: Path, *more: str) -> Path:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--model", "sim-llm", "--results-dir", str(out_dir), "-u", "4", "-r", "4", "-t", "8s",
           "--max-tokens", "16", "--scrape-interval", "1s", *more]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (folder,) = [p for p in out_dir.iterdir() if p.is_dir()]
    analysed = subprocess.run([PYTHON, "-m", "analysis", str(folder), "--quiet"], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)  # fmt: skip
    assert analysed.returncode == 0, analysed.stderr[-3000:]
    return folder


@pytest.mark.parametrize("kind", ["vllm-router", "smg"])
def test_the_routers_own_page_counts_what_each_backend_received(
    kind, sim_server, procs, tmp_path: Path
) -> None:
    traces = [tmp_path / "good.jsonl", tmp_path / "failing.jsonl"]
    good = sim_server("--profile", "latency", "--trace", str(traces[0]))
    failing = sim_server(
        "--profile", "latency", "--faults", "http_500=0.2", "--seed", "3", "--trace", str(traces[1])
    )
    port, metrics_port = free_port(), free_port()
    router = procs(launch(kind, port, metrics_port, [good.url, failing.url]), kind)
    host, page = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    wait_models(host, router.popen)
    folder = run(host, tmp_path / "r", "--server-metrics", f"{page},{good.url}/metrics,{failing.url}/metrics")

    end = last_round(folder / "server_metrics.csv")
    name = "vllm_router_processed_requests_total" if kind == "vllm-router" else "smg_worker_cb_outcomes_total"
    outcomes = "vllm_router_cb_outcomes_total" if kind == "vllm-router" else "smg_worker_cb_outcomes_total"
    sent = per_worker(end, name)
    failed = per_worker(end, outcomes, outcome="failure")
    # vllm-router counts whatever else it forwarded too (the run's prompt-counting /tokenize calls)
    others = sum(
        v for (m, labels), v in end.items() if m == "vllm_router_requests_total" and CHAT not in labels
    )
    deadline = time.monotonic() + 10  # an engine writes its trace every half second
    while True:
        got = [traced(t) for t in traces]
        if sum(len(g) for g in got) >= sum(sent.values()) - others or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    received = {s.url: len(g) for s, g in zip((good, failing), got, strict=True)}
    errors = {s.url: sum(x["status"] != "ok" and x.get("http_status", 200) >= 500 for x in g)
              for s, g in zip((good, failing), got, strict=True)}  # fmt: skip
    # Only a request the load generator cut at the stop can be on one side and not the other (an
    # outcome not recorded yet, a pick not forwarded yet): every other one is on both.
    with open(folder / "requests.csv", newline="") as fh:
        cut = sum(r["error"] == "cancelled" for r in csv.DictReader(fh))
    if kind == "smg":  # its outcomes are the chat requests it passed on, each try once
        assert all(abs(sent[u] - n) <= cut for u, n in received.items()), (sent, received, cut)
    else:
        assert all(sent[u] + cut >= n for u, n in received.items()), (sent, received, cut)
        assert abs(sum(sent.values()) - others - sum(received.values())) <= cut, (sent, others, received, cut)
    assert sum(sent.values()) - others == sum(received.values()) or cut > 0  # exact where nothing was cut
    assert dict(failed) | {good.url: failed.get(good.url, 0.0)} == errors and errors[failing.url] > 0, (
        failed,
        errors,
    )

    summary = json.loads((folder / "summary.json").read_text())
    rf = summary["router"]
    assert rf["router"] == ("vllm-router" if kind == "vllm-router" else "SGLang Model Gateway")
    by = {r["backend"]: r for r in rf["by_backend"]}
    assert set(by) == {good.url, failing.url}
    assert by[good.url]["failures"] == 0 and by[failing.url]["failures"] > 0
    for url, r in by.items():  # the router's count (at the send) beside the engine's (at the finish): the
        # window's edges split them by the requests in flight there, four users' at most
        assert r["engine_finished"] is not None, (url, r)
        assert r["engine_finished"] - 4 <= r["requests"] <= r["engine_finished"] + r["failures"] + 4, (url, r)
    assert rf["retries"] and rf["retries"] >= by[failing.url]["failures"] - 1
    assert any(w.startswith(f"the router ({rf['router']}) retried") for w in summary["warnings"])
    assert "## Router (its own metrics page)" in (folder / "summary.md").read_text()


def test_metrics_passed_through_vllm_router_are_not_the_servers(sim_server, procs, tmp_path: Path) -> None:
    a, b = sim_server("--profile", "latency"), sim_server("--profile", "latency")
    port = free_port()
    router = procs(launch("vllm-router", port, free_port(), [a.url, b.url]), "vllm-router")
    host = f"http://127.0.0.1:{port}"
    wait_models(host, router.popen)
    folder = run(host, tmp_path / "r", "--server-metrics", "auto")
    warnings = json.loads((folder / "summary.json").read_text())["warnings"]
    found = [w for w in warnings if "answered it in turn" in w or "the page is part of the server" in w]
    assert len(found) == 1, warnings


def test_smgs_placeholder_model_asks_for_the_real_name(sim_server, procs, tmp_path: Path) -> None:
    """In front of an engine without SGLang's /model_info the gateway lists `unknown`: sent as the model,
    every request would fail at the engine; the run stops with one line asking for --model, and with it
    the name is taken as given."""
    from loadgen.run.target import check

    engine = sim_server("--profile", "latency")
    port = free_port()
    router = procs(launch("smg", port, free_port(), [engine.url]), "smg")
    host = f"http://127.0.0.1:{port}"
    wait_models(host, router.popen)
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(tmp_path / "r"), "-t", "2s"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, (out.stdout + out.stderr)[-3000:]
    (line,) = [x for x in out.stderr.splitlines() if "goodput: error" in x]
    assert line.endswith(f"{host}/v1/models lists only 'unknown': a router (the SGLang Model Gateway) that could "
                         "not learn its workers' model (it asks SGLang's /model_info, which vLLM and others do not "
                         "serve): pass --model NAME"), line  # fmt: skip
    assert check(host, "sim-llm", "OPENAI_API_KEY").model == "sim-llm"


def test_a_session_header_keeps_each_conversation_on_one_replica(sim_server, procs, tmp_path: Path) -> None:
    """vllm-router's consistent_hash keys on the client's session header, else on X-Request-Id — new on
    every request. Agent conversations (agentic, no think time) through it: with `--session-header
    X-Session-Id` every conversation's turns reach one replica (each replica's own trace, joined to the
    rows by request id); without it they land anywhere, so some conversation reaches both."""
    traces = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    engines = [sim_server("--profile", "latency", "--trace", str(t)) for t in traces]
    port = free_port()
    router = procs(
        launch("vllm-router", port, free_port(), [e.url for e in engines], "consistent_hash"), "router"
    )
    host = f"http://127.0.0.1:{port}"
    wait_models(host, router.popen)
    spread = {}
    for name, more in (("with", ["--session-header", "X-Session-Id"]), ("without", [])):
        folder = run(host, tmp_path / name, "--dataset", "agentic", "--think-time", "0", *more)
        with open(folder / "requests.csv", newline="") as fh:
            rows = {r["request_id"]: r for r in csv.DictReader(fh)}
        deadline = time.monotonic() + 10  # an engine writes its trace every half second
        while (
            sum(r["ok"] == "true" for r in rows.values())
            > sum(x["request_id"] in rows for t in traces for x in traced(t))
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        replicas_of: dict[tuple[str, str], set[int]] = {}
        for i, t in enumerate(traces):
            for x in traced(t):
                if (r := rows.get(x["request_id"])) is not None:
                    replicas_of.setdefault((r["session"], r["user"]), set()).add(i)
        multi = [k for k, v in replicas_of.items() if sum(r["session"] == k[0] and r["user"] == k[1]
                                                          for r in rows.values()) > 2]  # fmt: skip
        # conversations of 3 turns or more: without the header, each is on one replica by chance with
        # odds ≤ 1/4, all four of them ≤ 1/256 (measured: six of 3–5 turns, every one spread)
        assert len(multi) >= 4, replicas_of
        spread[name] = sum(len(replicas_of[k]) > 1 for k in multi)
    assert spread["with"] == 0 and spread["without"] > 0, spread
