"""`python -m simserver --speculative-config …`: speculative decoding as a client and a scraper see it.

A verify step's tokens leave as one chunk (so a stream has fewer content chunks than tokens), the
last usage event's `metrics.speculative_decoding` agrees with the chunks, SGLang's meta_info and
llama.cpp's timings state the same counts, and /metrics counters are the per-request figures summed
— by one engine and by a replica set.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from simserver.tokenizer import count_tokens
from tests.conftest import PYTHON, Proc, free_port, start_server

pytestmark = pytest.mark.e2e
K = 3
SPEC = [
    "--speculative-config",
    json.dumps({"method": "ngram", "num_speculative_tokens": K, "acceptance": 0.8}),
]
FAST = """
base: default
step_time: {base_s: 0.002, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
output: {median_tokens: 30, sigma: 0.5}
"""
THINKING = """
base: default
step_time: {base_s: 0.002, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
output: {median_tokens: 12, sigma: 0}
reasoning: {tokens_median: 7, tokens_sigma: 0, skip_probability: 0}
tool_calls: {call_probability: 1.0, string_words_max: 3}
"""
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
    "city": {"type": "string"}, "days": {"type": "integer"}}}}}]  # fmt: skip
SPEC_KEYS = {"mean_acceptance_length", "draft_acceptance_rate", "acceptance_histogram", "num_spec_steps",
             "num_accepted_draft_tokens", "num_draft_tokens", "num_spec_tokens"}  # fmt: skip


def _server(d: Path, profile: str, *options: str) -> Proc:
    (d / "profile.yaml").write_text(profile)
    port = free_port()
    cmd = [PYTHON, "-m", "simserver", "--port", str(port), "--config", str(d / "profile.yaml"), "--seed", "4"]
    return start_server([*cmd, *options], d / "sim.log", port)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    p = _server(tmp_path_factory.mktemp("spec"), FAST, *SPEC, "--per-request-spec-decode-metrics", "summary",
                "--enable-per-request-metrics")  # fmt: skip
    yield p
    p.stop()


def post(url: str, path: str, body: dict[str, Any]) -> bytes:
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.read()


def sse(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(e[6:]) for e in raw.split(b"\n\n") if e.startswith(b"data: {")]


def chat_stream(url: str, max_tokens: int, **kw: Any) -> tuple[list[str], dict[str, Any]]:
    """The content of every chunk that carries some, and the last (usage) event."""
    body = {"model": "sim-llm", "messages": [{"role": "user", "content": "Tell me a story."}],
            "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}, **kw}  # fmt: skip
    events = sse(post(url, "/v1/chat/completions", body))
    texts = [c["choices"][0]["delta"]["content"] for c in events if c["choices"]]
    return [t for t in texts if t], events[-1]


def spec_counters(url: str) -> dict[str, float]:
    """The four vLLM counters, summed over every label but `position`."""
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.startswith("vllm:spec_decode_") and s.name.endswith("_total"):
                key = s.name + (f"[{s.labels['position']}]" if "position" in s.labels else "")
                out[key] = out.get(key, 0.0) + s.value
    return out


def expected_counters(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """What /metrics must have gained: the per-request figures summed (per position: steps that
    accepted more than that position)."""
    out = {
        "vllm:spec_decode_num_drafts_total": sum(s["num_spec_steps"] for s in summaries),
        "vllm:spec_decode_num_draft_tokens_total": sum(s["num_draft_tokens"] for s in summaries),
        "vllm:spec_decode_num_accepted_tokens_total": sum(s["num_accepted_draft_tokens"] for s in summaries),
    }
    for i in range(K):
        out[f"vllm:spec_decode_num_accepted_tokens_per_pos_total[{i}]"] = sum(
            sum(s["acceptance_histogram"][i + 1 :]) for s in summaries
        )
    return {k: float(v) for k, v in out.items()}


def check_summary(sd: dict[str, Any], chunks: list[int], completion: int) -> None:
    """One answer's speculative_decoding against its chunks' token counts. Exactly: the first chunk is
    the prefill's token alone, every later chunk is one verify step, and every step but the last sent
    1 + its accepted drafts (the last may be cut where the answer ends), so
    completion <= 1 + num_spec_steps + num_accepted_draft_tokens <= completion + K."""
    assert set(sd) == SPEC_KEYS
    steps, accepted, drafted = sd["num_spec_steps"], sd["num_accepted_draft_tokens"], sd["num_draft_tokens"]
    assert sum(chunks) == completion and chunks[0] == 1
    assert len(chunks) == 1 + steps
    assert sd["num_spec_tokens"] == K and drafted == K * steps and sum(sd["acceptance_histogram"]) == steps
    assert accepted == sum(j * n for j, n in enumerate(sd["acceptance_histogram"]))
    assert completion <= 1 + steps + accepted <= completion + K
    if steps:
        inner = [n - 1 for n in chunks[1:-1]]
        last = accepted - sum(inner)
        assert chunks[-1] - 1 <= last <= K
        assert [[*inner, last].count(j) for j in range(K + 1)] == sd["acceptance_histogram"]
        assert sd["mean_acceptance_length"] == pytest.approx(1 + accepted / steps)
        assert sd["draft_acceptance_rate"] == pytest.approx(accepted / drafted)


def test_a_verify_steps_tokens_are_one_chunk_and_the_summary_and_metrics_agree(spec: Proc) -> None:
    before = spec_counters(spec.url)
    assert set(before) == set(expected_counters([])), before  # the four families, zero so far
    summaries = []
    for max_tokens in (1, 2, 3, 40, 64, 64, 120, 200):
        texts, last = chat_stream(spec.url, max_tokens)
        completion = last["usage"]["completion_tokens"]
        assert completion <= max_tokens
        metrics = last["metrics"]
        assert {"time_to_first_token_ms", "speculative_decoding"} <= set(metrics)  # timing and spec
        check_summary(metrics["speculative_decoding"], [count_tokens(t) for t in texts], completion)
        if completion > 20:
            assert len(texts) < completion
        summaries.append(metrics["speculative_decoding"])
    after = spec_counters(spec.url)
    got = {k: after[k] - before[k] for k in after}
    assert got == expected_counters(summaries)


def test_each_route_sends_a_step_as_its_server_does_and_native_servers_state_the_counts(spec: Proc) -> None:
    raw = post(spec.url, "/v1/completions", {"model": "sim-llm", "prompt": "Hi", "max_tokens": 50, "stream": True,
                                             "stream_options": {"include_usage": True}})  # fmt: skip
    events = sse(raw)
    texts = [c["choices"][0]["text"] for c in events if c["choices"]]
    check_summary(events[-1]["metrics"]["speculative_decoding"], [count_tokens(t) for t in texts],
                  events[-1]["usage"]["completion_tokens"])  # fmt: skip
    events = sse(
        post(spec.url, "/generate", {"text": "Hi", "sampling_params": {"max_new_tokens": 50}, "stream": True})
    )
    meta = events[-1]["meta_info"]
    ids = [len(e["output_ids"]) for e in events]
    assert len(events) == 1 + meta["spec_verify_ct"] and ids[-1] == meta["completion_tokens"]
    assert meta["spec_draft_token_num"] == K * meta["spec_verify_ct"]
    assert meta["spec_accept_rate"] == pytest.approx(
        meta["spec_accept_token_num"] / meta["spec_draft_token_num"]
    )
    assert meta["spec_accept_length"] == pytest.approx(meta["completion_tokens"] / meta["spec_verify_ct"])
    assert "spec_verify_ct" not in events[0]["meta_info"]  # the final meta_info states them
    events = sse(
        post(spec.url, "/completion", {"prompt": "Hi", "n_predict": 50, "ignore_eos": True, "stream": True})
    )
    timings = events[-1]["timings"]
    # llama-server sends every token in its own event, a verify step's accepted ones too (a real capture
    # with a drafter: tests/fixtures/llamacpp-draft-chat-stream.txt); only its timings tell the drafting
    assert [len(e["tokens"]) for e in events[:-1]] == [1] * 50 and timings["predicted_n"] == 50
    assert timings["draft_n"] % K == 0 and 0 < timings["draft_n_accepted"] <= timings["draft_n"]
    lines = post(spec.url, "/api/chat", {"model": "sim-llm", "messages": [{"role": "user", "content": "Hi"}],
                                         "options": {"num_predict": 50}}).splitlines()  # fmt: skip
    parts = [json.loads(x)["message"]["content"] for x in lines[:-1]]
    assert sum(map(count_tokens, parts)) == json.loads(lines[-1])["eval_count"] > len(parts)


def test_phases_and_tool_calls_split_a_step_and_only_the_summary_is_stated(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Reasoning then a tool call: a step that crosses the boundary is one chunk per phase, the
    arguments still join to JSON, and without --enable-per-request-metrics `metrics` holds only
    speculative_decoding (as vLLM builds it)."""
    p = _server(tmp_path_factory.mktemp("spec-think"), THINKING, *SPEC, "--per-request-spec-decode-metrics",
                "summary")  # fmt: skip
    try:
        body = {"model": "sim-llm", "messages": [{"role": "user", "content": "Weather?"}], "tools": TOOLS,
                "max_tokens": 200, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
        events = sse(post(p.url, "/v1/chat/completions", body))
        deltas = [c["choices"][0]["delta"] for c in events if c["choices"]]
        reasoning = [d["reasoning"] for d in deltas if d.get("reasoning")]
        calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
        usage, metrics = events[-1]["usage"], events[-1]["metrics"]
        assert (
            sum(map(count_tokens, reasoning)) == usage["completion_tokens_details"]["reasoning_tokens"] == 7
        )
        assert len(reasoning) < 7
        assert calls[0]["function"]["name"] == "f"
        assert set(json.loads("".join(c["function"]["arguments"] for c in calls))) == {"city", "days"}
        assert list(metrics) == ["speculative_decoding"]
        assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"
    finally:
        p.stop()


def test_a_replica_sets_counters_sum_over_its_engines(tmp_path_factory: pytest.TempPathFactory) -> None:
    p = _server(tmp_path_factory.mktemp("spec-replicas"), FAST, *SPEC, "--replicas", "2",
                "--per-request-spec-decode-metrics", "summary")  # fmt: skip
    try:
        summaries = [chat_stream(p.url, 60)[1]["metrics"]["speculative_decoding"] for _ in range(12)]
        text = urllib.request.urlopen(p.url + "/metrics", timeout=5).read().decode()
        assert 'vllm:spec_decode_num_drafts_total{engine="1"' in text
        assert 'vllm:spec_decode_num_drafts_total{engine="0"' in text
        assert spec_counters(p.url) == expected_counters(summaries)
    finally:
        p.stop()
