"""OTLP/HTTP trace receiver: the engine's own per-request spans, as flat rows, for Goodput's master.

vLLM (`--otlp-traces-endpoint`, with OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf) and the
simulated engine send one span per finished request; joined with the client's rows by request
id, it splits each request's latency into queue, prefill and decode as the engine saw them. This
module is the receiving end, kept small so the master can own its lifecycle:

    receiver = OtlpReceiver("127.0.0.1", 4318, on_rows=writer.write)   # port 0: pick a free one
    receiver.start()          # listening when it returns; receiver.url is the endpoint to give
    ...                       # counters: requests, rejected, spans, rows, ignored, callback_errors
    receiver.stop()           # closes open connections, joins its threads (bounded)

It answers `POST /v1/traces` per the OTLP/HTTP spec: `application/x-protobuf` (and OTLP/JSON,
`application/json`, whose hex trace/span ids are converted) with optional gzip, 200 with an empty
ExportTraceServiceResponse; 400 for a body that does not decode, 404 for another path, 405 for
another method, 413 for bodies over 64 MiB, 415 for another content type.

Server choice: a ThreadingHTTPServer on its own thread. Inside Locust's gevent-patched master
the thread and sockets are gevent's, so it serves cooperatively beside the master's greenlets; in
an unpatched process (tests, analysis) it is a plain OS thread. gevent.pywsgi would serve only
while the caller yields to the gevent hub, which an unpatched caller never does. Decoding runs in
the receiving thread (or greenlet), off any request path: ~13 µs per span (7 ms for a 512-span
batch on the 2-core dev host), during which a gevent master's other greenlets wait.

Rows: one per span that carries `gen_ai.request.id` (other spans are counted in `ignored`).
`on_rows(rows)` may be called from several threads at once. server_spans.csv (SpanCsvWriter)
has the columns SPAN_COLUMNS, in this order:

    request_id        gen_ai.request.id as sent (vLLM 0.32: chatcmpl-<X-Request-Id> for chat,
                      cmpl-<X-Request-Id>-<prompt index> for completions)
    x_request_id      the client's X-Request-Id recovered from it (the join key with client rows)
    span_name         `llm_request` for vLLM's request span
    t_start_unix, t_end_unix   span start (the engine's arrival) and end, Unix seconds
    queue_s, prefill_s, decode_s, inference_s, ttft_s, e2e_s      gen_ai.latency.* (seconds):
                      time_in_queue, time_in_model_prefill, time_in_model_decode,
                      time_in_model_inference, time_to_first_token, e2e
    scheduler_s, model_forward_s, model_execute_s   gen_ai.latency.time_in_scheduler,
                      time_in_model_forward, time_in_model_execute (named by vLLM, rarely sent)
    prompt_tokens, completion_tokens, num_sequences   gen_ai.usage.*
    max_tokens, n, temperature, top_p, model    gen_ai.request.* and gen_ai.response.model
    service_name, process_id   resource attributes service.name and vllm.process_id
    trace_id, span_id          hex
    other_attrs       any other gen_ai.* attribute, as a JSON object (empty when none)

Empty cells are attributes the span did not carry.
"""

from __future__ import annotations

import base64
import csv
import json
import logging
import re
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

log = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"
MAX_BODY = 64 * 1024 * 1024
ATTRIBUTE_COLUMNS = {  # vLLM 0.32 vllm/tracing/utils.py SpanAttributes → column
    "gen_ai.request.id": "request_id",
    "gen_ai.latency.time_in_queue": "queue_s",
    "gen_ai.latency.time_in_model_prefill": "prefill_s",
    "gen_ai.latency.time_in_model_decode": "decode_s",
    "gen_ai.latency.time_in_model_inference": "inference_s",
    "gen_ai.latency.time_to_first_token": "ttft_s",
    "gen_ai.latency.e2e": "e2e_s",
    "gen_ai.latency.time_in_scheduler": "scheduler_s",
    "gen_ai.latency.time_in_model_forward": "model_forward_s",
    "gen_ai.latency.time_in_model_execute": "model_execute_s",
    "gen_ai.usage.prompt_tokens": "prompt_tokens",
    "gen_ai.usage.completion_tokens": "completion_tokens",
    "gen_ai.usage.num_sequences": "num_sequences",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.n": "n",
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.top_p": "top_p",
    "gen_ai.response.model": "model",
}
SPAN_COLUMNS = (
    "request_id",
    "x_request_id",
    "span_name",
    "t_start_unix",
    "t_end_unix",
    "queue_s",
    "prefill_s",
    "decode_s",
    "inference_s",
    "ttft_s",
    "e2e_s",
    "scheduler_s",
    "model_forward_s",
    "model_execute_s",
    "prompt_tokens",
    "completion_tokens",
    "num_sequences",
    "max_tokens",
    "n",
    "temperature",
    "top_p",
    "model",
    "service_name",
    "process_id",
    "trace_id",
    "span_id",
    "other_attrs",
)
Row = dict[str, Any]
_COMPLETION_ID = re.compile(r"^cmpl-(.*)-\d+$")


class OtlpError(ValueError):
    """A request the receiver refuses: `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_listen(text: str, place: str = "--otlp-listen") -> tuple[str, int]:
    """'HOST:PORT' (IPv6 as [::1]:PORT) → (host, port); a one-line error naming `place` otherwise."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or "/" in host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{place}: expected HOST:PORT (e.g. 127.0.0.1:4318), got '{text}'")
    return host, int(port)


def client_request_id(request_id: str) -> str:
    """The client's X-Request-Id inside vLLM's engine request id (see the module docstring)."""
    if request_id.startswith("chatcmpl-"):
        return request_id[len("chatcmpl-") :]
    m = _COMPLETION_ID.match(request_id)
    return m.group(1) if m else request_id


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind in ("array_value", "kvlist_value"):
        return json_format.MessageToDict(getattr(v, kind))
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def span_rows(request: ExportTraceServiceRequest) -> tuple[list[Row], int]:
    """(rows of the spans that carry gen_ai.request.id, number of spans without one)."""
    rows: list[Row] = []
    ignored = 0
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {kv.key: _value(kv.value) for kv in span.attributes}
                if "gen_ai.request.id" not in attrs:
                    ignored += 1
                    continue
                row: Row = dict.fromkeys(SPAN_COLUMNS)
                other = {}
                for key, value in attrs.items():
                    column = ATTRIBUTE_COLUMNS.get(key)
                    if column is not None:
                        row[column] = value
                    elif key.startswith("gen_ai."):
                        other[key] = value
                row["request_id"] = str(row["request_id"])
                row["x_request_id"] = client_request_id(row["request_id"])
                row["span_name"] = span.name
                row["t_start_unix"] = span.start_time_unix_nano / 1e9
                row["t_end_unix"] = span.end_time_unix_nano / 1e9
                row["service_name"] = resource.get("service.name")
                row["process_id"] = resource.get("vllm.process_id")
                row["trace_id"] = span.trace_id.hex()
                row["span_id"] = span.span_id.hex()
                row["other_attrs"] = json.dumps(other, sort_keys=True) if other else ""
                rows.append(row)
    return rows, ignored


def _hex_ids_to_base64(data: Any) -> None:
    """OTLP/JSON writes trace and span ids as hex, protobuf's JSON mapping expects base64."""
    for rs in data.get("resourceSpans", []) if isinstance(data, dict) else []:
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for item in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if isinstance(item.get(key), str) and item[key]:
                            item[key] = base64.b64encode(bytes.fromhex(item[key])).decode()


def decode(body: bytes, content_type: str, content_encoding: str = "") -> ExportTraceServiceRequest:
    """The request body as an ExportTraceServiceRequest, or OtlpError(400/415)."""
    if content_encoding.lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_BODY)
        except zlib.error as e:
            raise OtlpError(400, f"bad gzip body: {e}") from None
        if inflater.unconsumed_tail:
            raise OtlpError(413, "decompressed body over 64 MiB")
    elif content_encoding not in ("", "identity"):
        raise OtlpError(415, f"unsupported Content-Encoding '{content_encoding}'")
    media = content_type.split(";")[0].strip().lower()
    msg = ExportTraceServiceRequest()
    try:
        if media == "application/x-protobuf":
            msg.ParseFromString(body)
        elif media == "application/json":
            data = json.loads(body)
            _hex_ids_to_base64(data)
            json_format.ParseDict(data, msg, ignore_unknown_fields=True)
        else:
            raise OtlpError(415, f"unsupported Content-Type '{content_type}' (use application/x-protobuf)")
    except (DecodeError, json_format.ParseError, ValueError, AttributeError, TypeError) as e:
        if isinstance(e, OtlpError):
            raise
        raise OtlpError(400, f"body is not an ExportTraceServiceRequest: {e}") from None
    return msg


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse their connection
    timeout = 60  # an idle keep-alive connection is closed after a minute
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per export batch would flood the master's log

    def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        receiver._count("requests")
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                raise OtlpError(411, "send Content-Length (chunked bodies are not read)")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise OtlpError(411, "invalid Content-Length") from None
            if not 0 <= length <= MAX_BODY:
                raise OtlpError(413, "body over 64 MiB")
            body = self.rfile.read(length)  # read before any answer: the connection stays in sync
            if self.path.split("?")[0] != TRACES_PATH:
                raise OtlpError(404, f"no such path {self.path}; OTLP traces go to {TRACES_PATH}")
            ctype = self.headers.get("Content-Type", "")
            msg = decode(body, ctype, self.headers.get("Content-Encoding", ""))
        except OtlpError as e:
            receiver._count("rejected")
            self.close_connection = e.status in (411, 413)
            self._answer(e.status, str(e).encode())
            return
        receiver._deliver(msg)
        if ctype.split(";")[0].strip().lower() == "application/json":
            self._answer(200, b"{}", "application/json")
        else:
            self._answer(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")

    def _not_allowed(self) -> None:
        self.server.receiver._count("requests")
        self.server.receiver._count("rejected")
        self.close_connection = True  # a body, if any, was not read
        self._answer(405, f"use POST {TRACES_PATH}".encode())

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_allowed


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes connections and waits for handlers itself
    receiver: OtlpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection shut by stop() (gevent raises cancel_wait_ex in the waiting handler) or
        # dropped by the exporter is no error of ours: only anything else earns socketserver's traceback.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class OtlpReceiver:
    """Listens on host:port for OTLP/HTTP trace exports and hands decoded rows to `on_rows`."""

    def __init__(self, host: str, port: int, on_rows: Callable[[list[Row]], None]) -> None:
        self.host, self.port, self.on_rows = host, port, on_rows
        self.requests = 0  # HTTP requests received (any method, path, body)
        self.rejected = 0  # answered 4xx
        self.spans = 0  # spans decoded
        self.rows = 0  # rows handed to on_rows (spans with gen_ai.request.id)
        self.ignored = 0  # spans without gen_ai.request.id
        self.callback_errors = 0  # on_rows raised (the rows are lost; the exporter still gets 200)
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint to give an exporter (e.g. simserver --otlp-traces-endpoint)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{TRACES_PATH}"

    def start(self) -> None:
        """Bind (OSError if the address is taken) and serve on a background thread."""
        server_cls = _Server
        if ":" in self.host:
            server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
        server = server_cls((self.host, self.port), _Handler)
        server.receiver = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="otlp-receiver", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, close open connections, wait (bounded) for handlers to finish."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout_s
        if self._thread is not None:
            self._thread.join(timeout_s)
        while time.monotonic() < deadline:  # handlers end once their connection is shut down
            with self._lock:
                if not self._conns:
                    return
            time.sleep(0.02)

    # -- called by the handler threads ----------------------------------------------------------
    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def _opened(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)

    def _closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _deliver(self, msg: ExportTraceServiceRequest) -> None:
        rows, ignored = span_rows(msg)
        self._count("spans", len(rows) + ignored)
        self._count("ignored", ignored)
        if not rows:
            return
        try:
            self.on_rows(rows)
        except Exception:
            if not self.callback_errors:
                log.exception("otlp receiver: on_rows failed; its rows are lost (counted in callback_errors)")
            self._count("callback_errors")
            return
        self._count("rows", len(rows))


class SpanCsvWriter:
    """server_spans.csv: a header, then rows as they arrive (flushed per batch); thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=SPAN_COLUMNS, extrasaction="ignore")
        self._writer.writeheader()
        self._fh.flush()
        self._lock = threading.Lock()
        self.rows_written = 0

    def write(self, rows: list[Row]) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._writer.writerows(rows)
            self._fh.flush()
            self.rows_written += len(rows)

    def close(self) -> None:
        with self._lock:
            self._fh.close()
