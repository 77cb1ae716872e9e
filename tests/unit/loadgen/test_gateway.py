"""Which model answered and what a gateway did (loadgen/transport/gateway.py): the answer's own `model`
on every API that states one, read from real servers' streams, and the gateway headers of LiteLLM and
ngrok's AI gateway, which win where they say more than the body."""

from __future__ import annotations

import pytest

from core.result import StreamResult
from loadgen.transport.apis import APIS
from loadgen.transport.gateway import routed
from tests.unit.loadgen.test_apis import data, fixture, run


@pytest.mark.parametrize(
    ("api", "name", "model"),
    [
        ("chat", "vllm-cpu-tiny-chat-stream.txt", "tiny-llama"),
        ("chat", "llamacpp-chat-stream.txt", "tiny-llama"),
        ("messages", "vllm-cpu-messages-stream.txt", "tiny-llama"),  # message_start's message.model
        ("messages", "sglang-messages-stream.txt", "qwen3"),
        ("responses", "openai-responses-stream.txt", "openai/gpt-oss-20b"),  # the final response's
        ("responses", "vllm-cpu-responses-metrics-stream.txt", "tiny-llama"),
        ("llamacpp", "llamacpp-completion-stream.txt", "tiny-llama"),  # its last line's
        ("tgi", "tgi-generate-stream.txt", ""),  # TGI's native stream names no model
        ("sglang", "sglang-generate-stream.txt", ""),
    ],
)
def test_the_row_names_the_model_the_real_answer_named(api: str, name: str, model: str) -> None:
    _, rec = run(api, fixture(name))
    assert rec.ok and rec.served_model == model and rec.gateway_attempts is None


def test_ollama_lines_and_an_azure_frame_without_a_name() -> None:
    line = {"model": "llama3.2", "created_at": "2026-01-01T00:00:00Z", "message": {"role": "assistant",
            "content": "hi"}, "done": False}  # fmt: skip
    _, rec = run(
        "ollama", data(line, {**line, "message": {"role": "assistant", "content": ""}, "done": True})
    )
    assert rec.served_model == "llama3.2"
    # Azure's first frame (the prompt's filter verdict) has `model: ""`: the first real name counts
    verdict = {"choices": [], "model": "", "prompt_filter_results": []}
    chunk = {"choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}], "model": "gpt-4o-2024-11-20"}
    _, rec = run("chat", data(verdict, chunk, "[DONE]"))
    assert rec.served_model == "gpt-4o-2024-11-20"


def _routed(headers: dict[str, object], model: str = "") -> StreamResult:
    res = StreamResult(served_model=model)
    lower = {k.lower(): v for k, v in headers.items()}
    routed(res, lambda name: lower.get(name))
    return res


def test_gateway_headers() -> None:
    # LiteLLM: retries and fallbacks are extra attempts each
    res = _routed({"x-litellm-attempted-retries": "2", "x-litellm-attempted-fallbacks": "1"})
    assert (res.gateway_attempts, res.served_model) == (3, "")
    assert (
        _routed({"x-litellm-attempted-retries": "0", "x-litellm-attempted-fallbacks": "0"}).gateway_attempts
        == 0
    )
    # ngrok: attempts count the answering one; its model header names what answered
    res = _routed({"Ngrok-AIG-Attempts": "3", "Ngrok-AIG-Model": " claude-haiku-4-5 "})
    assert (res.gateway_attempts, res.served_model) == (2, "claude-haiku-4-5")
    assert _routed({"Ngrok-AIG-Attempts": "1"}).gateway_attempts == 0
    # nothing said, or nonsense: not said (never a guess)
    assert _routed({}).gateway_attempts is None
    assert (
        _routed({"x-litellm-attempted-retries": "many", "Ngrok-AIG-Attempts": "-1"}).gateway_attempts is None
    )
    # a header sent twice (geventhttpclient gives a list): the last counts
    assert _routed({"x-litellm-attempted-fallbacks": ["0", "2"]}).gateway_attempts == 2


def test_a_gateways_model_header_wins_over_the_body() -> None:
    """The headers come before the body: a name from the header is kept when the chunks name another."""
    res = _routed({"Ngrok-AIG-Model": "claude-haiku-4-5"})
    chunk = {
        "choices": [{"delta": {"content": "x"}, "finish_reason": "stop"}],
        "model": "claude-haiku-4-5-20251001",
    }
    for i, (kind, payload) in enumerate(data(chunk, "[DONE]")):
        APIS["chat"].fold(res, kind, payload, 10.0 + i)
    assert res.text == "x" and res.served_model == "claude-haiku-4-5"
