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

The spans become rows (loadgen/monitors/spanrows.py: the columns of server_spans.csv).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from loadgen.monitors.spanrows import MAX_BODY, OtlpError, Row, decode, span_rows

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"


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
