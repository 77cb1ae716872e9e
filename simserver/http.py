"""A lean HTTP/1.1 server on asyncio.Protocol: keep-alive, Content-Length bodies, chunked responses.

Why not a framework: every streamed token is one `transport.write` of a prebuilt chunk here, with
no ASGI message dict, no per-chunk coroutine switch and no header object — the difference between
a simulator that keeps 2,000 streams on schedule on one core and one that becomes the bottleneck
it is supposed to measure. Only what OpenAI clients use is implemented: requests with
Content-Length bodies (or none), `Expect: 100-continue`, pipelined requests served in order, and
responses with Content-Length or chunked transfer encoding.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from email.utils import formatdate

import orjson

from simserver.rxstamp import StampedReader, keep_stamping_on

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}

_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header, formatted once per second instead of once per response."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


class Request:
    """One parsed request. `t_arrival_unix`: when its last byte reached this host (the kernel's
    stamp, simserver/rxstamp.py), or when it was parsed where the kernel gives none."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query", "t_arrival_unix")

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
        arrived: float = 0.0,
    ) -> None:
        self.method = method
        self.path, _, self.query = target.partition("?")
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.t_arrival_unix = arrived or time.time()


class ServerCounters:
    """Connection-level gauges shown in /metrics."""

    __slots__ = ("connections", "streams")

    def __init__(self) -> None:
        self.connections = 0
        self.streams = 0


Handler = Callable[[Request, "Connection"], None]


class Connection(asyncio.Protocol):
    """One client connection; serves its requests one at a time, in order."""

    def __init__(self, handler: Handler, counters: ServerCounters) -> None:
        self.handler = handler
        self.counters = counters
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head: tuple[str, str, dict[str, str], int, bool] | None = None
        self.current: Request | None = None
        self.closed = False
        self.streaming = False
        self.on_close: Callable[[], None] | None = None
        self.reader: StampedReader | None = None  # reads the socket when the kernel stamps arrivals
        self.arrived = 0.0  # when the newest bytes reached this host (kernel stamp); 0.0: unknown
        self._write: Callable[[bytes], None] = lambda data: None

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports do not subclass asyncio's
        self._write = transport.write  # type: ignore[attr-defined]
        self.counters.connections += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.reader = StampedReader.attach(transport, self.stamped_data, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.reader is not None:
            self.reader.close()
        self.counters.connections -= 1
        if self.streaming:
            self.streaming = False
            self.counters.streams -= 1
        cb, self.on_close = self.on_close, None
        if cb is not None:
            cb()

    def data_received(self, data: bytes) -> None:
        """Bytes read by the transport (no kernel stamp): their requests arrive when parsed."""
        self.stamped_data(data, 0.0)

    def stamped_data(self, data: bytes, arrived: float) -> None:
        """Bytes read by the StampedReader, with when the newest of them reached this host."""
        self.arrived = arrived
        self.buf += data
        if self.current is None:
            self._parse()

    # -- parsing ------------------------------------------------------------------------------
    def _parse(self) -> None:
        while self.current is None and not self.closed:
            buf = self.buf
            if self.head is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD:
                        self._fail(431, "request head too large")
                    return
                head = bytes(buf[:end]).decode("latin-1")
                del buf[: end + 4]
                if not self._parse_head(head):
                    return
            assert self.head is not None
            method, target, headers, length, keep_alive = self.head
            if len(buf) < length:
                return
            body = bytes(buf[:length])
            del buf[:length]
            self.head = None
            self.current = Request(method, target, headers, body, keep_alive, self.arrived)
            self.handler(self.current, self)

    def _parse_head(self, head: str) -> bool:
        lines = head.split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            self._fail(400, "malformed request line")
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                self._fail(400, "malformed header line")
                return False
            headers[name.strip().lower()] = value.strip()
        if "transfer-encoding" in headers:
            self._fail(411, "chunked request bodies are not supported; send Content-Length")
            return False
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0:
            self._fail(400, "invalid Content-Length")
            return False
        if length > MAX_BODY:
            self._fail(413, "request body too large")
            return False
        conn_hdr = headers.get("connection", "").lower()
        keep_alive = "close" not in conn_hdr if version == "HTTP/1.1" else "keep-alive" in conn_hdr
        self.head = (method, target, headers, length, keep_alive)
        if headers.get("expect", "").lower() == "100-continue" and len(self.buf) < length:
            self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def _fail(self, status: int, message: str) -> None:
        """A request we cannot even parse: answer once and close (the byte stream is out of sync)."""
        body = orjson.dumps(
            {"error": {"message": message, "type": "BadRequestError", "param": None, "code": status}}
        )
        self.current = None
        self.respond(status, body, headers=(("connection", "close"),), keep_alive=False)

    # -- responses ----------------------------------------------------------------------------
    def _head(self, status: int, headers: tuple[tuple[str, str], ...]) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}",
            f"date: {http_date()}",
            "server: simserver",
        ]
        lines.extend(f"{k}: {v}" for k, v in headers)
        lines.append("\r\n")
        return "\r\n".join(lines).encode("latin-1")

    def respond(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: tuple[tuple[str, str], ...] = (),
        keep_alive: bool | None = None,
    ) -> None:
        """A complete response with Content-Length; ends the current request."""
        if self.closed:
            return
        ka = (self.current.keep_alive if self.current else False) if keep_alive is None else keep_alive
        hdrs = (("content-type", content_type), ("content-length", str(len(body))), *headers)
        if not ka:
            hdrs = (*hdrs, ("connection", "close"))
        self._write(self._head(status, hdrs) + body)
        self._done(ka)

    def start_stream(self, status: int, content_type: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        if self.closed:
            return
        self.streaming = True
        self.counters.streams += 1
        self._write(
            self._head(status, (("content-type", content_type), ("transfer-encoding", "chunked"), *headers))
        )

    def send(self, data: bytes) -> None:
        """One chunk of a streaming response (the hot path: one format and one write)."""
        if not self.closed:
            self._write(b"%x\r\n%b\r\n" % (len(data), data))

    def send_many(self, parts: list[bytes]) -> None:
        """Several chunks in one write (events that leave at the same instant)."""
        if not self.closed:
            self._write(b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in parts))

    def end_stream(self, last: list[bytes]) -> None:
        """Final chunks, then the terminating zero-length chunk; ends the current request."""
        if self.closed:
            return
        self._write(b"".join([*(b"%x\r\n%b\r\n" % (len(p), p) for p in last), b"0\r\n\r\n"]))
        self.streaming = False
        self.counters.streams -= 1
        self._done(self.current.keep_alive if self.current else False)

    def close(self) -> None:
        """Close mid-response: what the client sees as a dropped connection."""
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _done(self, keep_alive: bool) -> None:
        self.current = None
        self.on_close = None
        if not keep_alive:
            self.close()
        elif self.buf:
            asyncio.get_running_loop().call_soon(self._parse)


async def serve(
    host: str, port: int, handler: Handler, counters: ServerCounters, sock: socket.socket | None = None
) -> asyncio.Server:
    """Listen on host:port, or on `sock` when given (a replica's already-bound SO_REUSEPORT socket)."""
    loop = asyncio.get_running_loop()
    keep_stamping_on()  # from the start: the first requests' arrivals are stamped too
    factory = lambda: Connection(handler, counters)  # noqa: E731
    if sock is not None:
        return await loop.create_server(factory, sock=sock, backlog=4096)
    return await loop.create_server(factory, host, port, backlog=4096)
