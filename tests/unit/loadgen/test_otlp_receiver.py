"""loadgen/monitors/otlp.py: the OTLP/HTTP receiver over real HTTP, its rows, its CSV, and gevent.

Export requests are built with opentelemetry-proto the way vLLM's SDK exporter sends them
(latencies as doubles, token counts as ints, the request id as a string).
"""

from __future__ import annotations

import csv
import gzip
import http.client
import json
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from loadgen.monitors.otlp import OtlpReceiver
from loadgen.monitors.spanrows import SPAN_COLUMNS, Row, SpanCsvWriter, client_request_id, parse_listen
from tests.conftest import PYTHON, ROOT

TRACE_ID = bytes(range(16))
SPAN_ID = bytes(range(8, 16))


def export_request(request_ids: list[str], extra: dict[str, Any] | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "vllm"
    rs.resource.attributes.add(key="vllm.process_id").value.string_value = "4242"
    ss = rs.scope_spans.add()
    ss.scope.name = "vllm.tracing.otel"
    for i, rid in enumerate(request_ids):
        sp = ss.spans.add(trace_id=TRACE_ID, span_id=SPAN_ID, name="llm_request", kind=2)
        sp.start_time_unix_nano = 1_700_000_000_000_000_000 + i
        sp.end_time_unix_nano = 1_700_000_001_500_000_000
        for key, value in {
            "gen_ai.request.id": rid,
            "gen_ai.latency.time_in_queue": 0.25,
            "gen_ai.latency.time_in_model_prefill": 0.125,
            "gen_ai.latency.time_in_model_decode": 1.0,
            "gen_ai.latency.time_to_first_token": 0.375,
            "gen_ai.latency.e2e": 1.5,
            "gen_ai.usage.prompt_tokens": 100,
            "gen_ai.usage.completion_tokens": 50,
            "gen_ai.request.top_p": 0.9,
            **(extra or {}),
        }.items():
            v = sp.attributes.add(key=key).value
            if isinstance(value, str):
                v.string_value = value
            elif isinstance(value, int):
                v.int_value = value
            else:
                v.double_value = value
    no_id = ss.spans.add(trace_id=TRACE_ID, span_id=SPAN_ID, name="load_weights")  # not a request
    no_id.attributes.add(key="code.function").value.string_value = "load"
    return req


class Collected:
    def __init__(self) -> None:
        self.rows: list[Row] = []

    def __call__(self, rows: list[Row]) -> None:
        self.rows.extend(rows)


@pytest.fixture
def receiver() -> Any:
    got = Collected()
    r = OtlpReceiver("127.0.0.1", 0, got)
    r.start()
    r.got = got  # type: ignore[attr-defined]
    yield r
    r.stop()


def post(
    port: int, body: bytes, ctype: str, path: str = "/v1/traces", headers: dict | None = None
) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body, {"Content-Type": ctype, **(headers or {})})
    resp = conn.getresponse()
    out = resp.status, resp.read(), resp.getheader("Content-Type", "")
    conn.close()
    return out


def test_protobuf_export_becomes_rows_and_gets_an_empty_response(receiver: OtlpReceiver) -> None:
    status, body, ctype = post(receiver.port, export_request(["chatcmpl-a1", "cmpl-b2-0"]).SerializeToString(), "application/x-protobuf")  # fmt: skip
    assert status == 200 and ctype == "application/x-protobuf"
    assert ExportTraceServiceResponse.FromString(body) == ExportTraceServiceResponse()
    rows = receiver.got.rows  # type: ignore[attr-defined]
    assert [r["x_request_id"] for r in rows] == ["a1", "b2"]
    row = rows[0]
    assert row["request_id"] == "chatcmpl-a1" and row["span_name"] == "llm_request"
    assert (row["queue_s"], row["prefill_s"], row["decode_s"], row["ttft_s"], row["e2e_s"]) == (0.25, 0.125, 1.0, 0.375, 1.5)  # fmt: skip
    assert (row["prompt_tokens"], row["completion_tokens"], row["top_p"]) == (100, 50, 0.9)
    assert row["t_start_unix"] == pytest.approx(1_700_000_000.0) and row["t_end_unix"] == pytest.approx(
        1_700_000_001.5
    )
    assert (row["service_name"], row["process_id"]) == ("vllm", "4242")
    assert row["trace_id"] == TRACE_ID.hex() and row["span_id"] == SPAN_ID.hex()
    assert (receiver.requests, receiver.spans, receiver.rows, receiver.ignored) == (1, 3, 2, 1)


def test_otlp_json_with_hex_ids_and_gzip_bodies(receiver: OtlpReceiver) -> None:
    data = json_format.MessageToDict(export_request(["chatcmpl-j1"], {"gen_ai.custom.thing": 7}))
    for rs in data["resourceSpans"]:  # OTLP/JSON writes ids as hex, not protobuf's base64
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                sp["traceId"], sp["spanId"] = TRACE_ID.hex(), SPAN_ID.hex()
    status, body, ctype = post(receiver.port, json.dumps(data).encode(), "application/json")
    assert (status, body, ctype) == (200, b"{}", "application/json")
    gz = gzip.compress(export_request(["cmpl-g1-0"]).SerializeToString())
    assert post(receiver.port, gz, "application/x-protobuf", headers={"Content-Encoding": "gzip"})[0] == 200
    rows = receiver.got.rows  # type: ignore[attr-defined]
    assert [r["x_request_id"] for r in rows] == ["j1", "g1"]
    assert rows[0]["trace_id"] == TRACE_ID.hex() and rows[0]["prompt_tokens"] == 100
    assert json.loads(rows[0]["other_attrs"]) == {"gen_ai.custom.thing": 7}


def test_refusals_follow_the_otlp_http_spec(receiver: OtlpReceiver) -> None:
    good = export_request(["chatcmpl-x"]).SerializeToString()
    assert post(receiver.port, good, "text/plain")[0] == 415
    assert post(receiver.port, good, "application/x-protobuf", path="/v1/metrics")[0] == 404
    assert post(receiver.port, b"\xff\xff\xff garbage", "application/x-protobuf")[0] == 400
    assert (
        post(receiver.port, b"not gzip", "application/x-protobuf", headers={"Content-Encoding": "gzip"})[0]
        == 400
    )
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    conn.request("GET", "/v1/traces")
    assert conn.getresponse().status == 405
    conn.close()
    assert receiver.rejected == 5 and receiver.rows == 0


def test_keep_alive_then_stop_returns_with_a_connection_open(receiver: OtlpReceiver) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    for rid in ("chatcmpl-k1", "chatcmpl-k2"):  # one connection, two exports (as exporters do)
        conn.request("POST", "/v1/traces", export_request([rid]).SerializeToString(), {"Content-Type": "application/x-protobuf"})  # fmt: skip
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    t0 = time.monotonic()
    receiver.stop()
    assert time.monotonic() - t0 < 3
    assert receiver.rows == 2
    with pytest.raises((OSError, http.client.HTTPException)):
        conn.request("POST", "/v1/traces", b"", {"Content-Type": "application/x-protobuf"})
        conn.getresponse()
    conn.close()


def test_a_failing_callback_is_counted_and_the_exporter_still_gets_200() -> None:
    def broken(rows: list[Row]) -> None:
        raise RuntimeError("disk full")

    r = OtlpReceiver("127.0.0.1", 0, broken)
    r.start()
    try:
        assert (
            post(r.port, export_request(["chatcmpl-z"]).SerializeToString(), "application/x-protobuf")[0]
            == 200
        )
        assert (r.callback_errors, r.rows) == (1, 0)
    finally:
        r.stop()


def test_csv_writer_columns_and_rows(receiver: OtlpReceiver, tmp_path: Path) -> None:
    path = tmp_path / "server_spans.csv"
    writer = SpanCsvWriter(path)
    post(
        receiver.port,
        export_request(["chatcmpl-c1", "cmpl-c2-0"]).SerializeToString(),
        "application/x-protobuf",
    )
    writer.write(receiver.got.rows)  # type: ignore[attr-defined]
    writer.close()
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == SPAN_COLUMNS
        rows = list(reader)
    assert [r["x_request_id"] for r in rows] == ["c1", "c2"] and writer.rows_written == 2
    assert (
        float(rows[0]["queue_s"]) == 0.25
        and rows[0]["prompt_tokens"] == "100"
        and rows[0]["max_tokens"] == ""
    )


def test_listen_option_and_request_id_rules() -> None:
    assert parse_listen("127.0.0.1:4318") == ("127.0.0.1", 4318)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("4318", "host:", "host:99999", ":4318"):
        with pytest.raises(ValueError, match="--otlp-listen: expected HOST:PORT"):
            parse_listen(bad)
    assert client_request_id("chatcmpl-abc-1") == "abc-1"  # chat: the prefix only
    assert client_request_id("cmpl-abc-1-0") == "abc-1"  # completions: prefix and prompt index
    assert client_request_id("something-else") == "something-else"


GEVENT_MASTER = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()
    import json, sys, time
    from pathlib import Path
    from loadgen.monitors.otlp import OtlpReceiver
    got = []
    r = OtlpReceiver("127.0.0.1", 0, got.extend)
    r.start()
    Path(sys.argv[1]).write_text(str(r.port))
    deadline = time.monotonic() + 20
    while not Path(sys.argv[2]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # gevent's sleep: the receiver serves meanwhile
    r.stop()
    print(json.dumps({"rows": [g["x_request_id"] for g in got], "requests": r.requests}))
    """
)


def test_receiver_serves_inside_a_gevent_patched_process(tmp_path: Path) -> None:
    port_file, stop_file = tmp_path / "port", tmp_path / "stop"
    proc = subprocess.Popen(
        [PYTHON, "-c", GEVENT_MASTER, str(port_file), str(stop_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists() or not port_file.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr and proc.stderr.read()
            time.sleep(0.05)
        port = int(port_file.read_text())
        for rid in ("chatcmpl-g1", "chatcmpl-g2"):
            assert post(port, export_request([rid]).SerializeToString(), "application/x-protobuf")[0] == 200
        stop_file.write_text("stop")
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, err
    assert json.loads(out) == {"rows": ["g1", "g2"], "requests": 2}
