"""Unit tests of the load path's pure parts: SSE parsing, record rows, TPOT, step schedule, options."""

from __future__ import annotations

import orjson
import pytest

from core.durations import parse_duration_s
from core.errors import OptionError
from core.measure import fill_record
from core.record import COLUMNS, RequestRecord, tpot_s
from core.result import StreamResult
from loadgen.output.runfolder import create_run_dir
from loadgen.transport import sse
from loadgen.transport.apis import chat
from loadgen.transport.client import finish
from loadgen.transport.urls import safe_url
from shapes.step import ConstantSchedule, StepSchedule


def test_columns_are_the_contract() -> None:
    assert COLUMNS == (
        "run_id", "worker", "user", "session", "turn", "request_id", "scenario", "dataset", "step",
        "target_users", "t_scheduled_unix", "t_start_unix", "ttft_s", "e2e_s", "tpot_s", "itl_s",
        "n_chunks", "prompt_tokens", "output_tokens", "cached_tokens", "tokens_source", "ok",
        "http_status", "error", "error_detail", "finish_reason",
        # appended since (new columns only ever go at the end)
        "ttfo_s", "reasoning_tokens", "tool_ttft_s", "tool_call_tokens", "backoff_s", "tenant", "api",
        "engine_prefill_s", "engine_decode_s", "engine_load_s", "engine_queue_s", "new_connection",
        "spec_draft_tokens", "spec_accepted_tokens", "spec_steps", "model", "served_model", "gateway_attempts",
        "images",
    )  # fmt: skip
    assert len(RequestRecord().row()) == len(COLUMNS)


def test_tpot_definition() -> None:
    assert tpot_s(1.1, 0.1, 11) == pytest.approx(0.1)
    assert tpot_s(1.0, 0.1, 1) is None  # undefined for a single token, as vLLM's benchmark
    assert tpot_s(None, 0.1, 5) is None


def test_sse_event_data_and_text() -> None:
    assert sse.event_data(b'data: {"a":1}\n\n') == b'{"a":1}'
    assert sse.event_data(b": keep-alive\n\n") is None
    assert sse.event_data(b"event: x\ndata: 1\ndata: 2\n\n") == b"1\n2"
    assert sse.decode(b"[DONE]") is sse.DONE
    with pytest.raises(sse.BadSSE):
        sse.decode(b"{not json")
    role_only = {"choices": [{"delta": {"role": "assistant", "content": ""}}]}
    assert _stream([(10.1, role_only)]).text_times == []  # a role-only chunk is no token


def _stream(events: list[tuple[float, object]]) -> StreamResult:
    res = StreamResult(t_send=10.0, status=200)
    for t, obj in events:
        chat.fold(res, "message", b"[DONE]" if obj is sse.DONE else orjson.dumps(obj), t)
    finish(res)
    return res


def _delta(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"delta": {"content": text}, "finish_reason": finish}]}


def test_record_from_stream_uses_contract_definitions() -> None:
    usage = {
        "usage": {"prompt_tokens": 50, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 32}}
    }
    res = _stream(
        [
            (10.05, {"choices": [{"delta": {"role": "assistant", "content": ""}}]}),  # role only: not a token
            (10.20, _delta("a")),
            (10.30, _delta("b")),
            (10.45, _delta("c", "stop")),
            (10.46, {"choices": [], **usage}),
            (10.47, sse.DONE),
        ]
    )
    rec = RequestRecord()
    fill_record(rec, res)
    assert rec.ok and rec.error == ""
    assert rec.ttft_s == pytest.approx(0.20)
    assert rec.e2e_s == pytest.approx(0.46)  # to the last data event, the usage chunk
    assert rec.itl_s == pytest.approx([0.10, 0.15])
    assert rec.tpot_s == pytest.approx((0.46 - 0.20) / 2)
    assert (rec.prompt_tokens, rec.output_tokens, rec.cached_tokens) == (50, 3, 32)
    assert rec.tokens_source == "usage" and rec.finish_reason == "stop"


def test_stream_without_usage_counts_chunks_and_flags_disconnect() -> None:
    res = _stream([(10.1, _delta("a")), (10.2, _delta("b"))])  # no [DONE]
    rec = RequestRecord()
    fill_record(rec, res)
    assert rec.error == "disconnect" and not rec.ok
    assert rec.tokens_source == "chunks" and rec.output_tokens == 2
    empty = _stream([(10.1, _delta("", "stop")), (10.2, sse.DONE)])
    assert empty.error == "empty_output"


def test_step_schedule_is_the_research_protocol() -> None:
    s = StepSchedule()
    assert (s.level_at(0).users, s.level_at(9.9).users, s.level_at(10).users) == (1, 1, 2)
    assert s.level_at(599).step == 59 and s.level_at(600) is None
    capped = StepSchedule(step_users=2, interval_s=5, duration_s=100, max_users=5)
    assert [capped.level_at(t).users for t in (0, 5, 10, 15, 50)] == [2, 4, 5, 5, 5]
    assert capped.level_at(50).step == 2
    assert ConstantSchedule(users=20, spawn_rate=5, duration_s=60).level_at(61) is None


def test_durations_and_urls(tmp_path) -> None:
    assert parse_duration_s("10s", "x") == 10 and parse_duration_s("500ms", "x") == 0.5
    assert parse_duration_s("2m", "x") == 120 and parse_duration_s("3", "x") == 3
    with pytest.raises(OptionError, match="--step-interval"):
        parse_duration_s("ten", "--step-interval")
    assert safe_url("http://user:secret@host:8000/v1") == "http://host:8000/v1"
    a = create_run_dir(tmp_path, "demo run")
    b = create_run_dir(tmp_path, "demo run")
    assert a != b and a.name.startswith("demo-run-") and b.exists()


def test_default_shape_is_the_step_ramp_even_after_headless_defaults() -> None:
    """Headless Locust sets -u 1 when none was given; that must not turn the ramp into a plain run."""
    from locust import events
    from locust.argument_parser import get_parser

    import locustfile  # noqa: F401  (registers every Goodput option)
    from shapes import build_schedule

    parser = get_parser(default_config_files=[])
    events.init_command_line_parser.fire(parser=parser)
    opts = parser.parse_args(["-f", "locustfile.py", "--headless"])
    opts.run_time, opts.num_users, opts.goodput_users_given = 120, 1, False  # as Locust leaves them
    sched = build_schedule(opts)
    assert type(sched).__name__ == "StepSchedule"
    assert sched.level_at(115).users == 12
    opts.goodput_users_given = True  # `-u 1` typed by the user: a plain run
    assert type(build_schedule(opts)).__name__ == "ConstantSchedule"
