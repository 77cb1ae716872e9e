"""The API parsers (loadgen/transport/apis/) on the real servers' formats in tests/fixtures/: each stream
is cut by the shared event-stream parser, folded event by event (event i arrives at t = 10 + i s,
the request left at t = 10), and the row's figures are checked against what the stream says."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from core.record import RequestRecord
from core.result import StreamResult
from loadgen.transport.apis import APIS, BY_PATH, Prompt, chosen, resolve
from loadgen.transport.eventstream import parse
from tests.support.folding import fold_events

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
T0 = 10.0


def run(api: str, events: list[tuple[str, bytes]]) -> tuple[StreamResult, RequestRecord]:
    return fold_events(APIS[api], events, T0)


def fixture(name: str) -> list[tuple[str, bytes]]:
    return parse([(FIXTURES / name).read_bytes()])


def data(*objs: dict | str, event: str = "message") -> list[tuple[str, bytes]]:
    return [(event, o.encode() if isinstance(o, str) else orjson.dumps(o)) for o in objs]


def test_vllm_reasoning_stream_ttft_at_the_first_reasoning_ttfo_at_the_first_answer() -> None:
    res, rec = run("chat", fixture("vllm-reasoning-chat-stream.txt"))
    assert rec.ok, rec.error_detail
    assert rec.ttft_s == 2.0  # event 1 is the role-only chunk; event 2 the first `reasoning` delta
    assert rec.ttfo_s == 5.0  # events 2-4 reason, event 5 is the first `content`
    assert rec.reasoning_tokens == 3  # usage.completion_tokens_details
    assert (rec.output_tokens, rec.tokens_source, rec.n_chunks) == (6, "usage", 6)
    assert res.text == "Hello there!"  # the answer only: reasoning is not kept
    assert (rec.tool_ttft_s, rec.tool_call_tokens) == (None, None)


def test_reasoning_content_field_and_counting_without_usage() -> None:
    role = {"choices": [{"delta": {"role": "assistant", "content": ""}}]}
    think = {"choices": [{"delta": {"reasoning_content": "hm"}}]}
    say = {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}
    _, rec = run("chat", data(role, think, think, say, "[DONE]"))
    assert (rec.ttft_s, rec.ttfo_s, rec.reasoning_tokens) == (2.0, 4.0, 2)  # counted chunks
    assert rec.tokens_source == "chunks" and rec.output_tokens == 3


def test_a_stream_cut_while_reasoning_has_no_ttfo() -> None:
    think = {"choices": [{"delta": {"reasoning": "hm"}}]}
    cut = {"choices": [{"delta": {"reasoning": "m"}, "finish_reason": "length"}]}
    _, rec = run("chat", data(think, cut, "[DONE]"))
    assert rec.ok and rec.ttft_s == 1.0 and rec.ttfo_s is None and rec.reasoning_tokens == 2


def test_vllm_tool_call_stream_the_name_is_the_first_token() -> None:
    res, rec = run("chat", fixture("vllm-tool-call-chat-stream.txt"))
    assert rec.ok, rec.error_detail
    assert rec.ttft_s == rec.ttfo_s == rec.tool_ttft_s == 2.0  # the delta with the function name
    assert rec.tool_call_tokens == 4  # argument fragments; the name delta carries `arguments: ""`
    assert rec.finish_reason == "tool_calls" and rec.output_tokens == 5 and rec.reasoning_tokens == 0
    assert res.tool_calls == [
        {"id": "chatcmpl-tool-9f3c2a", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    assert res.text == ""


def test_whole_tool_call_in_one_delta_counts_its_arguments() -> None:
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    first = {"choices": [{"delta": {"role": "assistant", "tool_calls": [call]}}]}  # Ollama
    res, rec = run("chat", data(first, {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]}, "[DONE]"))
    assert (rec.tool_ttft_s, rec.tool_call_tokens, rec.n_chunks) == (1.0, 1, 1)
    assert res.tool_calls == [{"id": "c1", "name": "f", "arguments": '{"a": 1}'}]


def test_real_vllm_chat_capture_without_reasoning_ttfo_is_ttft() -> None:
    _, rec = run("chat", fixture("vllm-cpu-tiny-chat-stream.txt"))
    assert rec.ok and rec.ttfo_s == rec.ttft_s == 2.0
    assert (rec.output_tokens, rec.cached_tokens, rec.reasoning_tokens) == (12, 256, 0)


def test_real_llamacpp_chat_capture() -> None:
    res, rec = run("chat", fixture("llamacpp-chat-stream.txt"))
    assert rec.ok and rec.ttft_s == 2.0  # the role chunk's content is null: no token
    assert (rec.output_tokens, rec.prompt_tokens, rec.cached_tokens) == (6, 48, 35)
    assert res.text == "awnones business IS 12 men"
    # the slot's own timings beside the usage (prompt_ms 6.44, predicted_ms 9.428): no load on this server
    assert (rec.engine_prefill_s, rec.engine_decode_s) == pytest.approx((0.00644, 0.009428))
    assert rec.engine_load_s is None


def test_llamacpp_timings_on_the_last_chunk_without_the_usage_chunk() -> None:
    """--stream-usage off: llama-server puts `timings` on the finish chunk, which has no usage."""
    timings = {"cache_n": 0, "prompt_n": 11, "prompt_ms": 5.5, "predicted_n": 2, "predicted_ms": 9.0}
    text = {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]}
    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "timings": timings}
    for api, first, last in (
        ("chat", text, end),
        ("completions", {"choices": [{"index": 0, "text": "a", "finish_reason": None}]},
         {"choices": [{"index": 0, "text": "", "finish_reason": "length"}], "timings": timings}),
    ):  # fmt: skip
        _, rec = run(api, data(first, last, "[DONE]"))
        assert (rec.engine_prefill_s, rec.engine_decode_s) == pytest.approx((0.0055, 0.009)), api
    broken = {**end, "timings": {"prompt_ms": "5.5", "predicted_ms": 9.0}}  # not a number: nothing guessed
    _, rec = run("chat", data(text, broken, "[DONE]"))
    assert rec.ok and rec.engine_prefill_s is None and rec.engine_decode_s is None
    _, rec = run("chat", fixture("vllm-cpu-tiny-chat-stream.txt"))  # vLLM's stream carries no timings
    assert (rec.engine_prefill_s, rec.engine_decode_s, rec.engine_load_s) == (None, None, None)


def test_real_vllm_per_request_metrics_become_the_rows_engine_queue_prefill_and_decode() -> None:
    """vLLM 0.32 started with --enable-per-request-metrics (real captures): `metrics` beside the last
    usage, or in response.completed's response, in ms from its engine core's stamps. Its
    time_to_first_token_ms starts at the first scheduling, so it is the row's prefill; the queue
    before it is queue_time_ms."""
    for api, name in (("chat", "vllm-cpu-per-request-metrics-stream.txt"),
                      ("responses", "vllm-cpu-responses-metrics-stream.txt")):  # fmt: skip
        events = fixture(name)
        _, rec = run(api, events)
        assert rec.ok and rec.tokens_source == "usage" and rec.output_tokens == 4, api
        last = next(orjson.loads(d) for _, d in reversed(events) if b'"metrics"' in d)
        m = last["metrics"] if api == "chat" else last["response"]["metrics"]
        assert (rec.engine_prefill_s, rec.engine_decode_s, rec.engine_queue_s) == pytest.approx(
            (m["time_to_first_token_ms"] / 1e3, m["generation_time_ms"] / 1e3, m["queue_time_ms"] / 1e3)
        ), api
        assert rec.engine_load_s is None
    text = {"choices": [{"index": 0, "text": "a", "finish_reason": "length"}]}
    one = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1},
           "metrics": {"time_to_first_token_ms": 10.4, "generation_time_ms": 0.0, "queue_time_ms": 0.01}}  # fmt: skip
    _, rec = run("completions", data(text, one, "[DONE]"))  # one token: no mean_itl_ms, decode 0
    assert (rec.engine_prefill_s, rec.engine_decode_s, rec.engine_queue_s) == pytest.approx(
        (0.0104, 0.0, 1e-5)
    )
    for metrics in ({"time_to_first_token_ms": 10.4}, {}, None, "10.4"):  # a field left out, or no object
        _, rec = run("completions", data(text, {**one, "metrics": metrics}, "[DONE]"))
        assert rec.ok and (rec.engine_prefill_s, rec.engine_decode_s, rec.engine_queue_s) == (
            None,
            None,
            None,
        )
    no_queue = {**one, "metrics": {"time_to_first_token_ms": 10.4, "generation_time_ms": 0.0}}
    _, rec = run("completions", data(text, no_queue, "[DONE]"))
    assert rec.engine_prefill_s == pytest.approx(0.0104) and rec.engine_queue_s is None


def test_real_llamacpp_capture_with_held_bytes_has_no_role_chunk() -> None:
    """llama-server holds a token that ends inside a UTF-8 character and sends the role chunk only
    with the first token's step: here the first event is already text, three tokens' worth."""
    res, rec = run("chat", fixture("llamacpp-held-utf8-stream.txt"))
    assert rec.ok and rec.ttft_s == 1.0 and rec.n_chunks == 4
    assert res.text.startswith("\ufffd\ufffd F")
    assert (rec.output_tokens, rec.tokens_source) == (6, "usage")


def test_real_llamacpp_capture_with_only_held_bytes_is_empty_output_that_says_why() -> None:
    """Every token held to the end: the server generated two, the stream showed none."""
    res, rec = run("chat", fixture("llamacpp-held-to-end-stream.txt"))
    assert (rec.ok, rec.error, rec.finish_reason, res.text) == (False, "empty_output", "length", "")
    assert rec.error_detail == (
        "no text in the stream, though the server counted 2 output tokens"
        " (bytes of an unfinished UTF-8 character are never sent)"
    )
    assert (rec.ttft_s, rec.tpot_s, rec.n_chunks) == (None, None, 0)
    assert (rec.output_tokens, rec.tokens_source) == (2, "usage")


def test_responses_stream_reasoning_then_text() -> None:
    res, rec = run("responses", fixture("openai-responses-stream.txt"))
    assert rec.ok, rec.error_detail
    assert rec.ttft_s == 4.0  # created, in_progress, output_item.added carry no token
    assert rec.ttfo_s == 11.0  # the first response.output_text.delta
    assert rec.reasoning_tokens == 3 and rec.n_chunks == 5
    assert (rec.output_tokens, rec.prompt_tokens, rec.cached_tokens) == (5, 12, 0)
    assert rec.finish_reason == "stop" and res.done and res.text == "Hello there"
    assert rec.e2e_s == 16.0  # to response.completed


def test_responses_function_call_and_incomplete() -> None:
    """OpenAI's function-call events (openai-python types/responses: ResponseFunctionToolCall,
    ResponseFunctionCallArgumentsDeltaEvent), and a response cut by max_output_tokens."""
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": "",
    }
    events = [
        ("response.created", {"type": "response.created", "response": {"status": "in_progress"}}),
        ("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": item}),
        ("response.function_call_arguments.delta",
         {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": '{"city"'}),
        ("response.function_call_arguments.delta",
         {"type": "response.function_call_arguments.delta", "output_index": 0, "delta": ': "Oslo"}'}),
        ("response.completed", {"type": "response.completed", "response": {
            "status": "completed", "usage": {"input_tokens": 9, "output_tokens": 3}}}),
    ]  # fmt: skip
    res, rec = run("responses", [(k, orjson.dumps(v)) for k, v in events])
    assert (rec.ttft_s, rec.ttfo_s, rec.tool_ttft_s, rec.tool_call_tokens) == (2.0, 2.0, 2.0, 2)
    assert res.tool_calls == [{"id": "call_1", "name": "get_weather", "arguments": '{"city": "Oslo"}'}]
    assert rec.finish_reason == "tool_calls" and rec.output_tokens == 3
    cut = {
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "usage": {"output_tokens": 1},
    }
    text = {"type": "response.output_text.delta", "delta": "a"}
    _, rec = run("responses", data(text, {"type": "response.completed", "response": cut}))
    assert rec.ok and rec.finish_reason == "length"
    _, rec = run("responses", [("error", b'{"type": "error", "message": "boom"}')])
    assert (rec.error, rec.error_detail) == ("stream_error", "boom")


def test_sglang_cumulative_text_becomes_deltas_and_meta_info_counts() -> None:
    res, rec = run("sglang", fixture("sglang-generate-stream.txt"))
    assert rec.ok, rec.error_detail
    assert res.parts == [" Paris", ",", " the", " capital"]
    assert (rec.ttft_s, rec.ttfo_s, rec.n_chunks) == (1.0, 1.0, 4)
    assert (rec.output_tokens, rec.prompt_tokens, rec.cached_tokens, rec.tokens_source) == (
        4,
        6,
        0,
        "meta_info",
    )
    assert rec.finish_reason == "length" and rec.reasoning_tokens == 0


def test_sglang_enable_metrics_timing_becomes_the_rows_engine_prefill_and_decode() -> None:
    """With --enable-metrics the last meta_info states the request's timing: prefill = the scheduler's
    first-token stamp − its forward entry (.1183 − .1061), decode = the finish − the first token
    (.1301 − .1183); the 4.2 ms in the wait queue and the 1.2 ms of tokenizing stay out of prefill, as
    a slot wait does on llama-server. The names before SGLang 0.5's time-stats classes give the same
    figures: prefill_finished_ts / decode_finished_ts, the entry = finish − inference_time; where
    inference_time is missing too, the entry = sent to the scheduler + queue_time (the hop in prefill)."""
    events = fixture("sglang-generate-metrics-stream.txt")
    _, rec = run("sglang", events)
    assert rec.ok and rec.tokens_source == "meta_info" and rec.output_tokens == 4
    assert (rec.engine_prefill_s, rec.engine_decode_s) == pytest.approx((0.0122, 0.0118), abs=1e-6)
    assert rec.engine_load_s is None and rec.engine_queue_s == 0.0042  # its queue_time, stated apart
    last = orjson.loads(events[-2][1])
    t, counts = 1765010000.0, {k: last["meta_info"][k] for k in ("id", "finish_reason", "completion_tokens")}
    earlier = {**counts, "queue_time": 0.0042, "request_received_ts": t + 0.1, "request_sent_to_scheduler_ts": t + 0.1012,
               "prefill_finished_ts": t + 0.1183, "decode_finished_ts": t + 0.1301, "inference_time": 0.024}  # fmt: skip
    for meta, prefill in (
        (earlier, 0.0122),
        ({k: v for k, v in earlier.items() if k != "inference_time"}, 0.0129),
    ):
        _, rec = run("sglang", data({**last, "meta_info": meta}, "[DONE]"))
        assert (rec.engine_prefill_s, rec.engine_decode_s) == pytest.approx((prefill, 0.0118), abs=1e-6)
    # no --enable-metrics (the plain fixture: e2e_latency only), or a stamp that is not a number: none
    _, rec = run("sglang", fixture("sglang-generate-stream.txt"))
    assert rec.ok and (rec.engine_prefill_s, rec.engine_decode_s) == (None, None)
    broken = {**last["meta_info"], "prefill_finished_time": "1765010000.1183"}
    _, rec = run("sglang", data({**last, "meta_info": broken}, "[DONE]"))
    assert rec.ok and (rec.engine_prefill_s, rec.engine_decode_s) == (None, None)


def _sgl(text: str, n: int, r: int, finish: dict | None = None) -> dict:
    meta = {"id": "x", "finish_reason": finish, "prompt_tokens": 5, "completion_tokens": n,
            "reasoning_tokens": r, "cached_tokens": 0}  # fmt: skip
    return {"text": text, "output_ids": list(range(n)), "meta_info": meta}


def test_sglang_reasoning_told_apart_by_meta_info_reasoning_tokens() -> None:
    """SGLang counts a step's tokens into reasoning_tokens up to the think-end token (schedule_batch.py
    Req.update_reasoning_tokens): the first event whose new tokens did not all go there is the answer."""
    stop = {"type": "stop", "matched": 2}
    events = data(
        _sgl("<think>", 1, 1), _sgl("<think>hm", 2, 2), _sgl("<think>hm</think>", 3, 3),
        _sgl("<think>hm</think>Yes", 4, 3), _sgl("<think>hm</think>Yes.", 5, 3, stop), "[DONE]",
    )  # fmt: skip
    res, rec = run("sglang", events)
    assert (rec.ttft_s, rec.ttfo_s, rec.reasoning_tokens, rec.output_tokens) == (1.0, 4.0, 3, 5)
    assert res.text == "Yes." and rec.finish_reason == "stop"
    incremental = data(_sgl("a", 1, 0), _sgl("b", 2, 0), _sgl("c", 3, 0, stop), "[DONE]")
    res, _ = run("sglang", incremental)  # --incremental-streaming-output: each text is new
    assert res.parts == ["a", "b", "c"]
    aborted = data(_sgl("a", 1, 0, {"type": "abort", "message": "out of memory"}))
    _, rec = run("sglang", aborted)
    assert (rec.error, rec.error_detail) == ("stream_error", "out of memory")


def test_tgi_generate_stream_details_counts() -> None:
    res, rec = run("tgi", fixture("tgi-generate-stream.txt"))
    assert rec.ok, rec.error_detail
    assert res.text == " Paris, the" and rec.n_chunks == 3 and rec.ttft_s == 1.0
    assert (rec.output_tokens, rec.prompt_tokens, rec.tokens_source) == (3, 6, "details")
    assert rec.finish_reason == "length" and res.done
    assert rec.ttfo_s is None and rec.reasoning_tokens is None  # reasoning is plain text here
    _, rec = run("tgi", data({"error": "Request failed during generation", "error_type": "generation"}))
    assert (rec.error, rec.error_detail) == ("stream_error", "Request failed during generation")


def test_real_llamacpp_completion_capture() -> None:
    res, rec = run("llamacpp", fixture("llamacpp-completion-stream.txt"))
    assert rec.ok, rec.error_detail
    assert res.text == "ires headFor Courposards" and rec.n_chunks == 6 and rec.ttft_s == 1.0
    assert rec.e2e_s == 7.0  # the stop event
    assert (rec.output_tokens, rec.prompt_tokens, rec.cached_tokens, rec.tokens_source) == (
        6,
        11,
        0,
        "timings",
    )
    assert rec.finish_reason == "length" and rec.ttfo_s is None
    assert (rec.engine_prefill_s, rec.engine_decode_s) == pytest.approx((0.005578, 0.009516))  # its ms
    err = {"error": {"code": 400, "message": "the request exceeds the available context size", "type": "x"}}
    _, rec = run("llamacpp", data(err))
    assert rec.error == "stream_error" and "context size" in rec.error_detail


def test_completions_have_no_ttfo() -> None:
    text = {"choices": [{"text": "a", "index": 0, "finish_reason": None}]}
    end = {"choices": [{"text": "b", "index": 0, "finish_reason": "length"}]}
    _, rec = run("completions", data(text, end, "[DONE]"))
    assert rec.ok and rec.ttft_s == 1.0 and rec.ttfo_s is None and rec.reasoning_tokens is None


MESSAGES = [
    {"role": "system", "content": "Be terse."},
    {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
]
EXTRA = {"temperature": 0.5, "seed": 7, "tools": [{"type": "function", "function": {"name": "f"}}]}


def test_bodies() -> None:
    p = Prompt("m", MESSAGES, 64, True, EXTRA)
    chat = APIS["chat"].build(p)
    assert chat["messages"] is MESSAGES and chat["max_tokens"] == 64 and chat["ignore_eos"] is True
    assert chat["stream_options"] == {"include_usage": True} and chat["tools"] == EXTRA["tools"]
    assert APIS["completions"].build(p)["prompt"] == "Be terse.\n\nHi"
    resp = APIS["responses"].build(p)
    assert (resp["input"][0], resp["max_output_tokens"], resp["stream"]) == (MESSAGES[0], 64, True)
    assert resp["input"][1]["content"] == [
        {"type": "input_text", "text": "Hi"}
    ]  # the Responses API's part type
    assert "tools" not in resp and resp["temperature"] == 0.5  # chat's tool shape is not the Responses one
    assert APIS["sglang"].build(p) == {
        "text": "Be terse.\n\nHi", "stream": True, "require_reasoning": True,
        "sampling_params": {"max_new_tokens": 64, "temperature": 0.5, "sampling_seed": 7, "ignore_eos": True},
    }  # fmt: skip
    assert APIS["tgi"].build(p) == {
        "inputs": "Be terse.\n\nHi",
        "parameters": {"max_new_tokens": 64, "details": True, "temperature": 0.5, "seed": 7},
    }  # TGI has no ignore-EOS parameter
    assert APIS["llamacpp"].build(p) == {
        "prompt": "Be terse.\n\nHi", "n_predict": 64, "stream": True, "ignore_eos": True, "temperature": 0.5, "seed": 7,
    }  # fmt: skip


def test_api_names_paths_and_the_endpoint_alias() -> None:
    assert list(APIS) == [
        "chat",
        "completions",
        "responses",
        "messages",
        "sglang",
        "tgi",
        "llamacpp",
        "ollama",
    ]
    assert {a.path for a in APIS.values()} == set(BY_PATH)
    assert resolve("/v1/chat/completions") is APIS["chat"] and resolve("tgi") is APIS["tgi"]
    assert chosen("", "") is APIS["chat"] and chosen("", "completions") is APIS["completions"]
    assert chosen("sglang", "") is APIS["sglang"]
    with pytest.raises(ValueError, match="alias"):
        chosen("tgi", "chat")


def test_mistralrs_timing_inside_its_usage_and_a_usage_that_timed_nothing() -> None:
    """mistral.rs states its prompt step and its decode inside `usage` (seconds, ms resolution); zeros
    everywhere (`total_time_sec` 0) timed nothing and give the row no engine timing."""
    told = {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14, "total_time_sec": 0.115,
            "total_prompt_time_sec": 0.021, "total_completion_time_sec": 0.094}  # fmt: skip
    say = {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}], "usage": told}
    _, rec = run("chat", data({"choices": [{"delta": {"content": "a"}}]}, say, "[DONE]"))
    assert (rec.engine_prefill_s, rec.engine_decode_s, rec.engine_queue_s) == (0.021, 0.094, None)
    zeros = {**told, "total_time_sec": 0.0, "total_prompt_time_sec": 0.0, "total_completion_time_sec": 0.0}
    _, rec = run("completions", data({"choices": [{"text": "ok", "finish_reason": "stop"}], "usage": zeros}))
    assert rec.ok and rec.engine_prefill_s is None and rec.engine_decode_s is None
