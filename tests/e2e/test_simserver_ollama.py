"""The simulated engine's Ollama route (`POST /api/chat`, simserver/wire_ollama.py) over real HTTP:
NDJSON lines as Ollama writes them, the counts in the last line equal to what the engine traced,
Ollama's own refusals (what Go's decoder will not take), and the faults in Ollama's shapes."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from simserver.tokenizer import count_tokens
from tests.conftest import PYTHON, Proc, free_port, start, wait_http
from tests.support.traces import by_id, traced

pytestmark = pytest.mark.e2e
PROFILE = """
base: default
model: sim-reasoner
step_time: {base_s: 0.002, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
output: {median_tokens: 4, sigma: 0}
reasoning: {tokens_median: 3, tokens_sigma: 0, skip_probability: 0, delta_field: reasoning}
"""
MSGS = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    d = tmp_path_factory.mktemp("simollama")
    (d / "profile.yaml").write_text(PROFILE)
    port = free_port()
    cmd = [PYTHON, "-m", "simserver", "--port", str(port), "--config", str(d / "profile.yaml"), "--seed", "2"]
    p = start([*cmd, "--trace", str(d / "trace.jsonl"), "--trace-tokens"], d / "sim.log")
    p.extra["trace"], p.extra["port"] = d / "trace.jsonl", port
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc=p.popen)
        yield p
    finally:
        p.stop()


def post(sim: Proc, body: dict[str, Any], rid: str, fault: str = "none") -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", sim.extra["port"], timeout=20)
    headers = {"Content-Type": "application/json", "X-Request-Id": rid, "X-Sim-Fault": fault}
    conn.request("POST", "/api/chat", orjson.dumps({"model": "sim-reasoner", **body}), headers)
    r = conn.getresponse()
    out = r.status, r.getheader("content-type") or "", r.read()
    conn.close()
    return out


def lines(raw: bytes) -> list[dict]:
    assert raw.endswith(b"\n") and b"\n\n" not in raw  # one object per line, nothing between
    return [orjson.loads(x) for x in raw.splitlines()]


def test_lines_counts_and_the_trace(sim: Proc) -> None:
    status, media, raw = post(sim, {"messages": MSGS}, "ol-1")  # Ollama streams unless told not to
    assert status == 200 and media == "application/x-ndjson"
    ev = lines(raw)
    steps, last = ev[:-1], ev[-1]
    assert all(e["done"] is False and e["message"]["role"] == "assistant" for e in steps)
    thinking = [e for e in steps if e["message"].get("thinking")]
    assert len(thinking) == 3 and all(e["message"]["content"] == "" for e in thinking)
    assert steps[:3] == thinking  # the thoughts come first
    assert last["done"] is True and last["done_reason"] == "stop" and last["message"]["content"] == ""
    assert last["eval_count"] == len(steps) == 7  # thinking included, as Ollama counts
    assert last["prompt_eval_count"] > 0 and last["prompt_eval_duration"] > 0 and last["eval_duration"] > 0
    assert last["total_duration"] >= last["prompt_eval_duration"] + last["eval_duration"]
    row = by_id(traced(sim.extra["trace"], {"ol-1"})).get("ol-1")
    assert row is not None, "ol-1 not traced"
    assert row["endpoint"] == "api_chat" and row["output_tokens"] == 7 and row["reasoning_tokens"] == 3
    assert len(row["emit_unix"]) == 7 and row["prompt_tokens"] == last["prompt_eval_count"]


def test_no_thinking_a_cap_and_one_piece(sim: Proc) -> None:
    _, _, raw = post(sim, {"messages": MSGS, "think": False, "options": {"num_predict": 2}}, "ol-2")
    ev = lines(raw)
    assert [("thinking" in e["message"]) for e in ev[:-1]] == [False, False]
    assert ev[-1]["done_reason"] == "length" and ev[-1]["eval_count"] == 2
    status, media, raw = post(sim, {"messages": MSGS, "stream": False, "options": {"num_predict": 5}}, "ol-3")
    whole = orjson.loads(raw)
    assert status == 200 and media.startswith("application/json") and whole["done"] is True
    assert count_tokens(whole["message"]["thinking"]) == 3 and count_tokens(whole["message"]["content"]) == 2
    assert whole["eval_count"] == 5


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "llama3.2"}, 404, "model 'llama3.2' not found"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, 400,
         "cannot unmarshal array into Go struct field ChatRequest.messages.content of type string"),
        ({"messages": [*MSGS, {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": '{"city": "Paris"}'}}]}]}, 400,
         "cannot unmarshal string into Go struct field ChatRequest.messages.tool_calls.function.arguments"),
        ({"messages": MSGS, "think": 3}, 400, "'think' must be a boolean"),
    ],
)  # fmt: skip
def test_what_ollama_refuses(sim: Proc, body: dict, status: int, says: str) -> None:
    got, media, raw = post(sim, {"messages": MSGS, **body}, "ol-err")
    assert (got, media) == (status, "application/json") and set(orjson.loads(raw)) == {"error"}
    assert says in orjson.loads(raw)["error"]


def test_faults_in_ollamas_shapes(sim: Proc) -> None:
    _, _, raw = post(sim, {"messages": MSGS}, "ol-empty", fault="empty")
    (only,) = lines(raw)
    assert only["done"] is True and only["message"]["content"] == ""
    status, _, raw = post(sim, {"messages": MSGS}, "ol-busy", fault="http_503")
    assert status == 503 and set(orjson.loads(raw)) == {"error"}
