"""Ollama's native `/api/chat` (loadgen/transport/apis/ollama.py) and the NDJSON framing it streams in
(loadgen/transport/ndjson.py): lines written as Ollama writes them (docs/api.md, api/types.go), cut
wherever a proxy might cut them, folded as the transports fold them (line i arrives at 10 + i s)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.record import RequestRecord
from core.result import StreamResult
from loadgen.transport.apis import APIS, Prompt
from loadgen.transport.client import not_a_stream
from loadgen.transport.ndjson import LineStream
from tests.support.folding import fold_events

T0 = 10.0
OLLAMA = APIS["ollama"]
STAMP = "2025-08-15T21:38:23.714020953Z"


def line(content: str = "", thinking: str | None = None, calls: list | None = None, **top: object) -> bytes:
    msg: dict = {"role": "assistant", "content": content}
    if thinking is not None:
        msg["thinking"] = thinking
    if calls is not None:
        msg["tool_calls"] = calls
    return (
        orjson.dumps({"model": "gpt-oss:20b", "created_at": STAMP, "message": msg, "done": False, **top})
        + b"\n"
    )


def last(reason: str = "stop", eval_count: int = 5, **more: object) -> bytes:
    obj = {"model": "gpt-oss:20b", "created_at": STAMP, "message": {"role": "assistant", "content": ""},
           "done": True, "done_reason": reason, "total_duration": 4883583458, "load_duration": 1334875,
           "prompt_eval_count": 26, "prompt_eval_duration": 342546000, "eval_count": eval_count,
           "eval_duration": 4535599000, **more}  # fmt: skip
    return orjson.dumps(obj) + b"\n"


def cut(body: bytes) -> list[tuple[str, bytes]]:
    p = LineStream()
    p.feed(body)
    return [(k, bytes(d)) for k, d in p.events()]


def run(lines: list[bytes]) -> tuple[StreamResult, RequestRecord]:
    return fold_events(OLLAMA, cut(b"".join(lines)), T0)


def test_a_thinking_model_ttft_at_the_first_thought_ttfo_at_the_first_answer() -> None:
    # gpt-oss on Ollama: an empty first line (no token), three thinking lines, two answer lines, the end
    lines = [
        line(),
        line("", "The"),
        line("", " user"),
        line("", " asks"),
        line("Paris"),
        line(" it is"),
        last(),
    ]
    res, rec = run(lines)
    assert rec.ok and rec.ttft_s == 2.0 and rec.ttfo_s == 5.0
    assert rec.reasoning_tokens == 3  # Ollama counts no reasoning apart: the thinking lines
    assert (rec.output_tokens, rec.tokens_source, rec.prompt_tokens) == (5, "eval_count", 26)
    assert rec.finish_reason == "stop" and res.text == "Paris it is" and rec.e2e_s == 7.0
    # Ollama's own durations, ns → s: its prompt evaluation, generation and model load
    assert (rec.engine_prefill_s, rec.engine_decode_s, rec.engine_load_s) == pytest.approx(
        (0.342546, 4.535599, 0.001334875)
    )


def test_durations_go_omits_when_zero_count_as_zero() -> None:
    """Go's `omitempty` drops a zero duration (a warm model: no load_duration); a line with neither
    prefill nor decode duration (an Ollama-like server without them) gives no engine timing."""
    done = orjson.loads(last())
    for key in ("load_duration", "total_duration"):
        del done[key]
    _res, rec = run([line("a"), orjson.dumps(done) + b"\n"])
    assert rec.engine_load_s == 0.0
    for key in ("prompt_eval_duration", "eval_duration"):
        del done[key]
    _res, rec = run([line("a"), orjson.dumps(done) + b"\n"])
    assert rec.ok and (rec.engine_prefill_s, rec.engine_decode_s, rec.engine_load_s) == (None, None, None)


def test_without_thinking_ttfo_is_ttft_and_length_is_the_cap() -> None:
    _res, rec = run([line("The"), line(" sky"), last("length", 2, prompt_eval_cached_count=20)])
    assert rec.ttft_s == rec.ttfo_s == 1.0 and rec.reasoning_tokens == 0
    assert (rec.finish_reason, rec.output_tokens, rec.cached_tokens) == ("length", 2, 20)


def test_a_tool_call_comes_whole_with_its_arguments_an_object() -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    res, rec = run([line("", "I should call"), line("", calls=[call]), last(eval_count=12)])
    assert rec.ok and rec.ttft_s == 1.0 and rec.ttfo_s == rec.tool_ttft_s == 2.0
    assert rec.tool_call_tokens == 1 and rec.output_tokens == 12 and rec.finish_reason == "tool_calls"
    assert res.tool_calls == [{"id": "", "name": "get_weather", "arguments": '{"city":"Paris"}'}]


def test_calls_on_separate_lines_stay_separate_calls() -> None:
    a = {"function": {"name": "f", "arguments": {"x": 1}}}
    b = {"function": {"name": "g", "arguments": {}}}
    res, _ = run([line(calls=[a]), line(calls=[b]), last()])
    assert [c["name"] for c in res.tool_calls or ()] == ["f", "g"]


def test_an_error_line_inside_the_stream_keeps_its_message() -> None:
    err = orjson.dumps({"error": "an error was encountered while running the model: CUDA error"}) + b"\n"
    _res, rec = run([line("Hi"), err])
    assert rec.error == "stream_error" and "CUDA error" in rec.error_detail


def test_a_stream_cut_before_the_done_line_is_a_disconnect() -> None:
    _, rec = run([line("Hi"), line(" there")])
    assert rec.error == "disconnect"


def test_a_one_piece_answer_without_a_line_end_is_no_stream() -> None:
    res = StreamResult(t_send=T0, status=200)
    res.error, res.n_bytes = "disconnect", 120
    not_a_stream(res, "application/json; charset=utf-8", OLLAMA.media)
    assert res.error == "bad_sse" and "not a application/x-ndjson stream" in res.error_detail
    labelled = StreamResult(t_send=T0, status=200, error="disconnect", n_bytes=120)
    not_a_stream(labelled, "application/x-ndjson", OLLAMA.media)
    assert labelled.error == "disconnect"  # labelled a stream, cut before its first line: a broken one


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12), st.booleans())
def test_lines_cut_anywhere_are_the_same_events(cuts: list[int], crlf: bool) -> None:
    lines = [line("a"), line("", "b"), b"\n", line("c"), last()]
    body = b"".join(lines)
    if crlf:
        body = body.replace(b"\n", b"\r\n")
    whole = cut(body)
    p, got = LineStream(), []
    prev = 0
    for c in [*sorted({min(c, len(body)) for c in cuts}), len(body)]:
        p.compact()
        p.feed(body[prev:c])
        got += [(k, bytes(d)) for k, d in p.events()]
        prev = c
    assert got == whole and len(whole) == 4  # the blank line is no event
    assert p.total == len(body)
    assert all(not d.endswith(b"\r") for _, d in whole)


def test_the_unfinished_last_line_is_not_an_event() -> None:
    assert cut(line("a") + b'{"model":"m","message":{"content":"b"') == cut(line("a"))


MESSAGES = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_1", "type": "function", "function": {"name": "broken", "arguments": "{not json"}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
]  # fmt: skip


def test_the_body_in_ollamas_form() -> None:
    extra = {
        "temperature": 0.5,
        "seed": 7,
        "think": True,
        "tools": [{"type": "function"}],
        "stream_options": {},
    }
    body = OLLAMA.build(Prompt("qwen3:0.6b", MESSAGES, 64, True, extra))
    assert body["model"] == "qwen3:0.6b" and body["stream"] is True
    assert body["options"] == {"num_predict": 64, "temperature": 0.5, "seed": 7}  # no ignore_eos in Ollama
    assert body["think"] is True and body["tools"] == extra["tools"] and "stream_options" not in body
    assert body["truncate"] is False  # a prompt longer than the context is refused, not shortened
    assert OLLAMA.build(Prompt("m", MESSAGES[:1], 8, extra={"truncate": True}))["truncate"] is True
    system, user, assistant, tool = body["messages"]
    assert system is MESSAGES[0] and tool is MESSAGES[3]  # already in Ollama's form: passed as they are
    assert user == {"role": "user", "content": "Weather?"}
    assert assistant["tool_calls"] == [
        {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
        {"function": {"name": "broken", "arguments": {}}},
    ]
    assert (
        MESSAGES[2]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    )  # not changed in place
    assert (OLLAMA.path, OLLAMA.media, OLLAMA.sdk) == ("/api/chat", "application/x-ndjson", None)
