"""End-to-end tests of `python -m simserver` as a real process on 127.0.0.1 (issue 3's acceptance)."""

from __future__ import annotations

import http.client
import itertools
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, ROOT, Proc, free_port, start, wait_http
from tests.support.traces import by_id, traced

pytestmark = pytest.mark.e2e
FIXTURE = (
    Path(__file__).resolve().parents[1] / "fixtures" / "vllm-0.32-cpu-metrics.txt"
)  # a real vLLM 0.32 (CPU) page
FAST = """
base: default
step_time: {base_s: 0.002, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
output: {median_tokens: 20, sigma: 1.0}
faults: {stall_s: 3, trickle_interval_s: 0.15, retry_after_s: 7}
"""


# -- a small honest client ------------------------------------------------------------------------


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    events: list[tuple[float, bytes]] = field(default_factory=list)  # (seconds since send, data)
    body: bytes = b""
    broken: str = ""  # "closed" (connection dropped mid-body) or "timeout"
    t_send_unix: float = 0.0
    t_end_unix: float = 0.0

    def json(self) -> Any:
        return orjson.loads(self.body)

    def chunks(self) -> list[dict]:
        return [orjson.loads(d) for _, d in self.events if d != b"[DONE]"]

    def text_times(self) -> list[float]:
        out = []
        for t, d in self.events:
            if d != b"[DONE]":
                c = orjson.loads(d)["choices"]
                if c and (c[0].get("delta", {}).get("content") or c[0].get("text")):
                    out.append(t)
        return out


def call(
    url: str,
    path: str,
    body: Any = None,
    headers: dict | None = None,
    method: str = "POST",
    timeout: float = 20.0,
) -> Resp:
    """One request; SSE bodies are split into events as they arrive, each with its arrival time."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    raw = body if isinstance(body, bytes) else (orjson.dumps(body) if body is not None else None)
    t_wall = time.time()
    t0 = time.perf_counter()
    conn.request(method, path, raw, {"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    resp = Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, t_send_unix=t_wall)
    sse = resp.headers.get("content-type", "").startswith("text/event-stream")
    buf = b""
    try:
        while data := r.read1(65536):
            t = time.perf_counter() - t0
            if not sse:
                resp.body += data
                continue
            buf += data
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                assert ev.startswith(b"data: "), ev
                resp.events.append((t, ev[6:]))
    except (http.client.IncompleteRead, ConnectionError):
        resp.broken = "closed"
    except TimeoutError:
        resp.broken = "timeout"
    resp.body += buf if sse else b""
    resp.t_end_unix = time.time()
    conn.close()
    return resp


def chat(content: str = "Hello there, how are you?", system: str | None = None, **kw: Any) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": content}
    ]
    return {"model": "sim-llm", "messages": msgs, **kw}


STREAM = {"stream": True, "stream_options": {"include_usage": True}}


def metrics(url: str) -> dict[str, Any]:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], family: str, sample: str | None = None, **labels: str) -> float:
    return sum(
        s.value
        for s in fams[family].samples
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """One fast engine shared by the format, fault and error tests (each test is its own request)."""
    d = tmp_path_factory.mktemp("simfast")
    (d / "fast.yaml").write_text(FAST)
    port = free_port()
    cmd = [
        PYTHON,
        "-m",
        "simserver",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--config",
        str(d / "fast.yaml"),
    ]
    p = start([*cmd, "--seed", "3", "--trace", str(d / "trace.jsonl")], d / "sim.log")
    p.url, p.extra["trace"] = f"http://127.0.0.1:{port}", d / "trace.jsonl"
    try:
        wait_http(p.url + "/health", proc=p.popen)
        yield p
    finally:
        p.stop()


# -- format ------------------------------------------------------------------------------------


def test_models_health_and_keep_alive(fast: Proc) -> None:
    u = urlsplit(fast.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    for _ in range(2):  # the same connection serves both
        conn.request("GET", "/v1/models")
        r = conn.getresponse()
        data = orjson.loads(r.read())
        assert r.status == 200 and data["data"][0]["id"] == "sim-llm" and data["object"] == "list"
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()


def test_chat_stream_is_shaped_like_vllm(fast: Proc) -> None:
    r = call(
        fast.url,
        "/v1/chat/completions",
        chat(max_tokens=7, ignore_eos=True, **STREAM),
        {"X-Request-Id": "fmt-1"},
    )
    assert r.status == 200 and r.headers["x-request-id"] == "fmt-1" and not r.broken
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.events[-1][1] == b"[DONE]"
    chunks = r.chunks()
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = [c for c in chunks[1:] if c["choices"]]
    assert len(text) == 7 and all(c["choices"][0]["delta"]["content"] for c in text)
    assert [c["choices"][0]["finish_reason"] for c in text] == [None] * 6 + ["length"]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == 7 and usage["prompt_tokens"] == 7 + 8  # 7 words + template
    assert usage["total_tokens"] == 22 and usage["prompt_tokens_details"]["cached_tokens"] == 0


def test_no_usage_chunk_unless_asked_and_non_stream_chat(fast: Proc) -> None:
    r = call(fast.url, "/v1/chat/completions", chat(max_tokens=3, ignore_eos=True, stream=True))
    assert all("usage" not in c for c in r.chunks())
    r = call(fast.url, "/v1/chat/completions", chat(max_tokens=5, ignore_eos=True))
    body = r.json()
    assert r.status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert len(body["choices"][0]["message"]["content"].split()) >= 3
    assert (
        body["usage"]["completion_tokens"] == 5 and "cached_tokens" in body["usage"]["prompt_tokens_details"]
    )


def test_completions_stream_and_non_stream(fast: Proc) -> None:
    r = call(
        fast.url,
        "/v1/completions",
        {"prompt": "Once upon a time", "max_tokens": 4, "ignore_eos": True, **STREAM},
    )
    chunks = r.chunks()
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [bool(c["choices"][0]["text"]) for c in chunks[:-1]] == [True] * 4  # no role chunk here
    assert chunks[-1]["usage"]["completion_tokens"] == 4 and chunks[-1]["usage"]["prompt_tokens"] == 4
    body = call(fast.url, "/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 2}).json()
    assert body["object"] == "text_completion" and body["usage"]["prompt_tokens"] == 3


def test_max_tokens_min_tokens_and_eos(fast: Proc) -> None:
    # each request seeds its own draw, so what the engine answered before (other tests share it) moves nothing
    outs = [
        call(fast.url, "/v1/chat/completions", chat(f"q{i}", max_tokens=60, seed=i)).json()["choices"][0]
        for i in range(12)
    ]
    assert {c["finish_reason"] for c in outs} == {"stop", "length"}  # median 20 tokens, some reach 60
    assert all(len(c["message"]["content"].split()) <= 60 for c in outs)
    for i in range(4):
        body = call(fast.url, "/v1/chat/completions", chat(f"m{i}", max_tokens=80, min_tokens=50)).json()
        assert body["usage"]["completion_tokens"] >= 50


def test_pipelined_requests_expect_continue_and_connection_close(fast: Proc) -> None:
    """Raw HTTP/1.1: two pipelined requests answered in order, then a 100-continue, then close."""
    u = urlsplit(fast.url)
    body = orjson.dumps(chat(max_tokens=3, ignore_eos=True, stream=True))
    req = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: pipe-%d\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((u.hostname, u.port), timeout=5) as s:
        s.sendall(req % 1 + body + req % 2 + body)
        data = recv_until(s, lambda d: d.count(b"0\r\n\r\n") >= 2)
        assert data.index(b"x-request-id: pipe-1") < data.index(b"x-request-id: pipe-2")
        assert data.count(b"data: [DONE]") == 2
        body = orjson.dumps({"prompt": "hi", "max_tokens": 2})
        head = (
            f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        s.sendall(head)
        assert recv_until(s, lambda d: b"\r\n\r\n" in d).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(body)
        rest = recv_until(s, lambda d: False)  # until the server closes (Connection: close)
        assert rest.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in rest


def recv_until(s: socket.socket, done: Any) -> bytes:
    data = b""
    while not done(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/chat/completions", b"{not json", 400, None),
        ("/v1/chat/completions", {"model": "sim-llm"}, 400, "messages"),
        ("/v1/chat/completions", {"model": "sim-llm", "messages": []}, 400, "messages"),
        ("/v1/chat/completions", chat(max_tokens=0), 400, "max_tokens"),
        ("/v1/chat/completions", chat(max_tokens=10, min_tokens=11), 400, "min_tokens"),
        ("/v1/chat/completions", chat(max_tokens=5000), 400, "max_tokens"),
        ("/v1/chat/completions", chat(stream_options={"include_usage": True}), 400, "stream_options"),
        ("/v1/chat/completions", {**chat(), "model": "gpt-9"}, 404, "model"),
        ("/v1/completions", {"model": "sim-llm"}, 400, "prompt"),
        ("/v1/nothing", chat(), 404, None),
    ],
)
def test_bad_requests_get_openai_error_bodies(
    fast: Proc, path: str, body: Any, status: int, param: str | None
) -> None:
    r = call(fast.url, path, body)
    err = r.json()["error"]
    assert r.status == status and err["code"] == status and err["message"] and err["type"]
    assert err["param"] == param


def test_wrong_method_and_unknown_fault_header(fast: Proc) -> None:
    assert call(fast.url, "/v1/chat/completions", method="GET").status == 405
    r = call(fast.url, "/v1/chat/completions", chat(), {"X-Sim-Fault": "meteor"})
    assert r.status == 400 and "meteor" in r.json()["error"]["message"]


# -- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "status"), [("http_500", 500), ("http_503", 503), ("http_429", 429)])
def test_http_faults(fast: Proc, kind: str, status: int) -> None:
    r = call(fast.url, "/v1/chat/completions", chat(max_tokens=4, **STREAM), {"X-Sim-Fault": kind})
    assert r.status == status and r.json()["error"]["code"] == status
    if kind == "http_429":
        assert r.headers["retry-after"] == "7"


def test_disconnect_fault_closes_mid_stream(fast: Proc) -> None:
    r = call(fast.url, "/v1/chat/completions", chat(max_tokens=10, ignore_eos=True, **STREAM), {"X-Sim-Fault": "disconnect"})  # fmt: skip
    assert r.status == 200 and r.broken == "closed"
    assert 1 <= len(r.text_times()) < 10 and all(d != b"[DONE]" for _, d in r.events)


def test_bad_sse_fault_sends_a_malformed_data_line(fast: Proc) -> None:
    r = call(fast.url, "/v1/chat/completions", chat(max_tokens=6, ignore_eos=True, **STREAM), {"X-Sim-Fault": "bad_sse"})  # fmt: skip
    bad = []
    for _, d in r.events:
        try:
            orjson.loads(d) if d != b"[DONE]" else None
        except orjson.JSONDecodeError:
            bad.append(d)
    assert len(bad) == 1 and r.events[-1][1] == b"[DONE]"


def test_stall_fault_sends_headers_then_nothing(fast: Proc) -> None:
    r = call(
        fast.url, "/v1/chat/completions", chat(max_tokens=3, **STREAM), {"X-Sim-Fault": "stall"}, timeout=1.0
    )
    assert r.status == 200 and r.broken == "timeout" and r.events == []


def test_trickle_fault_slows_every_token(fast: Proc) -> None:
    r = call(fast.url, "/v1/chat/completions", chat(max_tokens=4, ignore_eos=True, **STREAM), {"X-Sim-Fault": "trickle"})  # fmt: skip
    times = r.text_times()
    assert len(times) == 4 and min(b - a for a, b in itertools.pairwise(times)) >= 0.14


def test_empty_fault_has_no_text(fast: Proc) -> None:
    r = call(fast.url, "/v1/chat/completions", chat(max_tokens=8, **STREAM), {"X-Sim-Fault": "empty"})
    chunks = r.chunks()
    assert r.text_times() == [] and r.events[-1][1] == b"[DONE]"
    assert (
        chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["completion_tokens"] == 0
    )


def test_fault_probabilities_from_the_command_line(sim_server: Any) -> None:
    srv = sim_server("--faults", "http_503=0.5,http_500=0.5", "--seed", "5")
    codes = [call(srv.url, "/v1/chat/completions", chat(max_tokens=2)).status for _ in range(30)]
    assert set(codes) == {500, 503}
    assert call(srv.url, "/v1/chat/completions", chat(max_tokens=2), {"X-Sim-Fault": "none"}).status == 200


# -- trace ------------------------------------------------------------------------------------


def test_trace_joins_client_rows_by_request_id(fast: Proc) -> None:
    ids = {f"join-{i}": call(fast.url, "/v1/chat/completions", chat(f"t{i}", max_tokens=5, **STREAM), {"X-Request-Id": f"join-{i}"}) for i in range(4)}  # fmt: skip
    ids["join-err"] = call(fast.url, "/v1/chat/completions", chat(), {"X-Request-Id": "join-err", "X-Sim-Fault": "http_500"})  # fmt: skip
    rows = by_id(traced(fast.extra["trace"], set(ids)), set(ids))
    assert set(rows) == set(ids)
    for rid, resp in ids.items():
        row = rows[rid]
        assert row["t_arrival_unix"] >= resp.t_send_unix - 0.001
        assert row["t_arrival_unix"] == round(row["t_arrival_unix"], 6)
        if rid == "join-err":
            assert row["status"] == "error" and row["fault"] == "http_500" and row["http_status"] == 500
            continue
        usage = resp.chunks()[-1]["usage"]
        assert row["status"] == "ok" and row["output_tokens"] == usage["completion_tokens"]
        assert row["prompt_tokens"] == usage["prompt_tokens"] and row["cached_tokens"] == 0
        assert row["t_arrival_unix"] <= row["t_first_emit_unix"] <= row["t_last_emit_unix"] <= resp.t_end_unix


def test_client_going_away_aborts_the_request(fast: Proc) -> None:
    before = value(metrics(fast.url), "vllm:request_success", finished_reason="abort")
    u = urlsplit(fast.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    body = orjson.dumps(chat(max_tokens=3000, ignore_eos=True, stream=True))
    conn.request("POST", "/v1/chat/completions", body, {"X-Request-Id": "gone-1"})
    r = conn.getresponse()
    r.read1(100)
    conn.close()
    row = by_id(traced(fast.extra["trace"], {"gone-1"}))["gone-1"]
    assert row["status"] == "aborted" and 0 < row["output_tokens"] < 3000
    fams = metrics(fast.url)
    assert value(fams, "vllm:request_success", finished_reason="abort") == before + 1
    assert value(fams, "vllm:num_requests_running") == 0


# -- metrics ------------------------------------------------------------------------------------

# Read from the real vLLM 0.32 sample (tests/fixtures/vllm-0.32-cpu-metrics.txt), kept here so the check runs anywhere.
EM = ("engine", "model_name")
ISSUE_METRICS = {
    "vllm:num_requests_running": ("gauge", EM),
    "vllm:num_requests_waiting": ("gauge", EM),
    "vllm:kv_cache_usage_perc": ("gauge", EM),
    "vllm:prefix_cache_queries": ("counter", EM),
    "vllm:prefix_cache_hits": ("counter", EM),
    "vllm:prompt_tokens": ("counter", EM),
    "vllm:generation_tokens": ("counter", EM),
    "vllm:request_success": ("counter", ("engine", "finished_reason", "model_name")),
    "vllm:num_preemptions": ("counter", EM),
    "vllm:time_to_first_token_seconds": ("histogram", EM),
    "vllm:e2e_request_latency_seconds": ("histogram", EM),
}
BUCKETS = {
    "vllm:time_to_first_token_seconds": "0.001 0.005 0.01 0.02 0.04 0.06 0.08 0.1 0.25 0.5 0.75 1.0 2.5 5.0 7.5 "
    "10.0 20.0 40.0 80.0 160.0 640.0 2560.0 +Inf",
    "vllm:e2e_request_latency_seconds": "0.3 0.5 0.8 1.0 1.5 2.0 2.5 5.0 10.0 15.0 20.0 30.0 40.0 50.0 60.0 "
    "120.0 240.0 480.0 960.0 1920.0 7680.0 +Inf",
}


def test_metrics_parse_and_match_vllm_names_labels_and_types(fast: Proc) -> None:
    call(fast.url, "/v1/chat/completions", chat(max_tokens=3, **STREAM))
    ours = metrics(fast.url)
    for name, (typ, labels) in ISSUE_METRICS.items():
        assert ours[name].type == typ, name
        assert {k for s in ours[name].samples for k in s.labels} - {"le"} == set(labels), name
    for name, bounds in BUCKETS.items():
        assert bucket_bounds(ours, name) == bounds.split()
    assert value(ours, "vllm:generation_tokens") >= 3
    assert all(s.labels["engine"] == "0" and s.labels["model_name"] == "sim-llm" for s in ours["vllm:prompt_tokens"].samples)  # fmt: skip
    assert ours["simserver:schedule_lag_seconds"].type == "histogram"
    assert value(ours, "simserver:schedule_lag_seconds", "simserver:schedule_lag_seconds_count") > 0
    assert {s.labels["quantile"] for s in ours["simserver:schedule_lag_recent_seconds"].samples} == {"0.5", "0.99", "1.0"}  # fmt: skip


def test_every_vllm_metric_we_export_has_the_real_samples_type(fast: Proc) -> None:
    ours = metrics(fast.url)
    real = {f.name: f for f in text_string_to_metric_families(FIXTURE.read_text())}
    shared = set(ours) & set(real)
    assert len(shared) >= 25 and {n for n in ours if n.startswith("vllm:")} <= set(real)
    for name in shared:
        assert ours[name].type == real[name].type, name
        if ours[name].type == "histogram":
            assert bucket_bounds(ours, name) == bucket_bounds(real, name), name


def bucket_bounds(fams: dict[str, Any], name: str) -> list[str]:
    return [s.labels["le"] for s in fams[name].samples if s.name.endswith("_bucket")]


# -- the engine model through HTTP ---------------------------------------------------------------


def test_shared_prefix_is_cached_and_lowers_ttft(sim_server: Any) -> None:
    srv = sim_server("--seed", "1")  # the default profile
    system = " ".join(f"rule{i}" for i in range(2000))

    def ttft(question: str) -> tuple[float, int]:
        r = call(srv.url, "/v1/chat/completions", chat(question, system=system, max_tokens=2, **STREAM))
        return r.text_times()[0], r.chunks()[-1]["usage"]["prompt_tokens_details"]["cached_tokens"]

    cold, cold_cached = ttft("first question")
    warm = [ttft(f"another question {i}") for i in range(3)]
    assert cold_cached == 0 and all(c >= 2000 for _, c in warm)
    assert max(t for t, _ in warm) < cold / 2
    fams = metrics(srv.url)
    assert value(fams, "vllm:prefix_cache_hits") >= 6000
    assert value(fams, "vllm:prefix_cache_queries") > value(fams, "vllm:prefix_cache_hits")


def test_load_above_capacity_queues_and_grows_ttft(sim_server: Any, tmp_path: Path) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text("base: default\nengine: {max_num_seqs: 4}\nstep_time: {base_s: 0.02}\n")
    srv = sim_server("--config", str(cfg))
    waiting: list[float] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            waiting.append(value(metrics(srv.url), "vllm:num_requests_waiting"))
            time.sleep(0.05)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    body = chat("a prompt of a few words", max_tokens=8, ignore_eos=True, **STREAM)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: call(srv.url, "/v1/chat/completions", body), range(16)))
    done.set()
    scraper.join()
    ttfts = sorted(r.text_times()[0] for r in results)
    assert max(waiting) >= 8
    assert ttfts[-1] > 3 * ttfts[0]  # the last wave waited for three waves ahead of it


def test_sigterm_flushes_the_trace(sim_server: Any, tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    srv = sim_server("--trace", str(trace))
    call(srv.url, "/v1/completions", {"prompt": "x", "max_tokens": 2}, {"X-Request-Id": "last-words"})
    assert srv.stop() == 0
    assert trace_lines(trace)[-1]["request_id"] == "last-words"


# -- command line ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--faults", "http_500"], "KIND=P"),
        (["--faults", "meteor=0.1"], "unknown fault 'meteor'"),
        (["--faults", "http_500=0.7,stall=0.7"], "add up to"),
        (["--config", "{bad}"], "valid YAML"),
        (["--config", "{unknown}"], "unknown key 'engine.max_seqs'"),
        (["--config", "{missing}"], "cannot read"),
        (["--port", "eighty"], "invalid int value"),
        (["--profile", "default", "--config", "x.yaml"], "not allowed with"),
    ],
)
def test_bad_command_line_is_one_line_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "bad.yaml").write_text("engine: {max_num_seqs: [1,\n")
    (tmp_path / "unknown.yaml").write_text("base: default\nengine: {max_seqs: 4}\n")
    paths = {"{bad}": "bad.yaml", "{unknown}": "unknown.yaml", "{missing}": "missing.yaml"}
    args = [str(tmp_path / paths[a]) if a in paths else a for a in args]
    r = subprocess.run(
        [PYTHON, "-m", "simserver", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simserver: error:") and needle in lines[0], r.stderr
