"""What a server sends after its stream's end marker (loadgen/transport/apis/trailer.py): TensorRT-LLM's
`trtllm.perf_metrics` event read into the row's engine timing, everything else there ignored, and a
Server-Timing value read as the W3C format writes it."""

from __future__ import annotations

import orjson
import pytest

from core.result import EngineTiming, StreamResult
from loadgen.transport.apis.trailer import TRTLLM_EVENT, after_end, server_timing


def timed(timing: object, event: str = TRTLLM_EVENT, **more: str) -> StreamResult:
    res = StreamResult()
    after_end(res, event, orjson.dumps({"Server-Timing": timing, **more}))
    return res


def test_trtllm_timing_becomes_queue_prefill_and_decode() -> None:
    res = timed("server_queue;dur=1.250000, server_ttft;dur=8.500000, server_e2e;dur=24.000000",
                **{"X-TRTLLM-Step-Metrics": "server-step-0-forward;dur=2.100000"})  # fmt: skip
    assert res.engine == pytest.approx(EngineTiming(0.00725, 0.0155, None, 0.00125))
    assert res.engine is not None and res.engine.load_s is None


def test_without_a_queue_figure_the_prefill_is_the_whole_ttft() -> None:
    res = timed("server_ttft;dur=8.5, server_e2e;dur=24")
    assert res.engine == pytest.approx(EngineTiming(0.0085, 0.0155, None, None))


@pytest.mark.parametrize(
    "timing",
    [
        "server_queue;dur=1.0, server_ttft;dur=8.0",  # no e2e
        "server_queue;dur=1.0, server_e2e;dur=8.0",  # no ttft
        "server_ttft;dur=9.0, server_e2e;dur=8.0",  # ends before its first token
        "server_ttft;dur=nan, server_e2e;dur=8.0",
        "server_ttft;dur=-1, server_e2e;dur=8.0",
        "disagg_queue;dur=1.0, disagg_ttft;dur=8.0",  # a disaggregated frontend's phase: not read
        "",
        42,
    ],
)
def test_what_does_not_state_a_whole_request_gives_no_timing(timing: object) -> None:
    assert timed(timing).engine is None


def test_a_queue_longer_than_the_ttft_is_not_believed() -> None:
    res = timed("server_queue;dur=9.0, server_ttft;dur=8.0, server_e2e;dur=20.0")
    assert res.engine == pytest.approx(EngineTiming(0.008, 0.012, None, None))


def test_other_events_and_broken_data_after_the_end_are_ignored() -> None:
    assert timed("server_ttft;dur=8, server_e2e;dur=9", event="message").engine is None
    res = StreamResult()
    after_end(res, TRTLLM_EVENT, b"{not json")
    after_end(res, TRTLLM_EVENT, b"[1, 2]")
    assert res.engine is None and not res.error


def test_server_timing_reads_params_in_any_order_and_quoted() -> None:
    value = 'db;desc="Database";dur=53.2, app ; dur = 47.2 ;desc=x, cache;desc="Cache Read", total;dur="7"'
    assert server_timing(value) == pytest.approx({"db": 0.0532, "app": 0.0472, "total": 0.007})
    assert server_timing(value, "ap") == pytest.approx({"p": 0.0472})
