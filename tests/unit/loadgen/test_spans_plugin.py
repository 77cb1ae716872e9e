"""loadgen/monitors/spans.py: `--otlp-listen`'s checks and one run's capture, over real sockets and HTTP."""

from __future__ import annotations

import csv
import http.client
import socket
import time
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from core.errors import OptionError
from loadgen.monitors.spans import CSV_NAME, META_KEY, SpanCapture, check_free, resolve, wait_of


def export(ids: list[str], without_id: int = 0) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for rid in ids:
        sp = ss.spans.add(name="llm_request", trace_id=bytes(16), span_id=bytes(8))
        sp.attributes.add(key="gen_ai.request.id").value.string_value = rid
        sp.attributes.add(key="gen_ai.latency.time_in_queue").value.double_value = 0.5
    for _ in range(without_id):
        ss.spans.add(name="load_weights", trace_id=bytes(16), span_id=bytes(8))
    return req.SerializeToString()


def post(url_port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=5)
    conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_option_values() -> None:
    for off in ("off", "", "none", "OFF", None):
        assert resolve(off) is None
    assert resolve("127.0.0.1:4318") == ("127.0.0.1", 4318)
    assert resolve("[::1]:0") == ("::1", 0)
    for bad in ("4318", "localhost", "host:99999", "http://127.0.0.1:4318"):
        with pytest.raises(OptionError, match=r"^--otlp-listen: expected HOST:PORT"):
            resolve(bad)
    assert wait_of("7s") == 7.0 and wait_of("500ms") == 0.5
    with pytest.raises(OptionError, match=r"^--otlp-wait: "):
        wait_of("soon")


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(
            OptionError, match=rf"^--otlp-listen: 127\.0\.0\.1:{port} is in use; pick a free port"
        ):
            check_free("127.0.0.1", port)
    check_free("127.0.0.1", port)  # free again
    check_free("127.0.0.1", 0)


def test_capture_writes_spans_and_counts_them(tmp_path: Path) -> None:
    meta: dict = {}
    cap = SpanCapture("127.0.0.1", 0, tmp_path / CSV_NAME, meta, wait_s=10.0)
    cap.start()
    port = cap.receiver.port
    assert (
        meta[META_KEY]["endpoint"] == f"http://127.0.0.1:{port}/v1/traces" and meta[META_KEY]["received"] == 0
    )
    assert post(port, export(["chatcmpl-a-1", "cmpl-a-2-0"], without_id=1)) == 200
    t0 = time.monotonic()
    cap.stop(expected=2)  # both already here: no waiting
    assert time.monotonic() - t0 < 2.0
    m = meta[META_KEY]
    assert (m["received"], m["written"], m["ignored"], m["rejected"], m["exports"]) == (2, 2, 1, 0, 1)
    assert m["file"] == CSV_NAME and "note" not in m
    with open(tmp_path / CSV_NAME, newline="") as fh:
        assert [r["x_request_id"] for r in csv.DictReader(fh)] == ["a-1", "a-2"]
    with pytest.raises(OSError):
        post(port, export(["late"]))  # stopped: nothing listens any more


def test_stop_waits_for_late_spans_then_counts_the_shortfall(tmp_path: Path) -> None:
    meta: dict = {}
    cap = SpanCapture("127.0.0.1", 0, tmp_path / CSV_NAME, meta, wait_s=0.3)
    cap.start()
    assert post(cap.receiver.port, export(["chatcmpl-b-1"])) == 200
    cap.stop(expected=3)
    m = meta[META_KEY]
    assert 0.25 <= m["waited_s"] < 2.0 and m["received"] == 1
    assert m["note"].startswith("1 spans for 3 completed requests after waiting")


def test_nothing_received_says_how_to_send(tmp_path: Path) -> None:
    meta: dict = {}
    cap = SpanCapture("127.0.0.1", 0, tmp_path / CSV_NAME, meta, wait_s=0.1)
    cap.start()
    url = cap.receiver.url
    cap.stop(expected=4)
    note = meta[META_KEY]["note"]
    assert note.startswith("no span received") and f"--otlp-traces-endpoint {url}" in note
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf" in note
    assert (tmp_path / CSV_NAME).read_text().startswith("request_id,x_request_id,")


def test_start_on_a_taken_port_raises_and_closes_the_file(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cap = SpanCapture("127.0.0.1", taken.getsockname()[1], tmp_path / CSV_NAME, {}, wait_s=0.1)
        with pytest.raises(OSError):
            cap.start()
    assert cap.writer._fh.closed
