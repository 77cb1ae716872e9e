"""Streaming clients: send one OpenAI request, time every event, return a `StreamResult`.

This is the hot path. The raw transport reads one SSE event at a time from the socket
(geventhttpclient, C parser for HTTP/chunked framing) and takes `perf_counter()` as soon as
the read returns; JSON decoding happens after the stamp. The openai-SDK transport exists for
compatibility (Azure, proxies, custom auth); it costs several times more CPU per chunk, and its
timestamps include the SDK's parsing.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import gevent
import orjson
from gevent import socket as gsocket
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed

from users import sse

perf_counter = time.perf_counter


@dataclass(slots=True)
class StreamResult:
    """What one request produced, in perf_counter seconds; errors are categories, not exceptions."""

    t_send: float = 0.0
    status: int | None = None
    text_times: list[float] = field(default_factory=list)  # arrival of each text-bearing chunk
    t_last: float | None = None  # arrival of the last data event (usage chunk included)
    n_events: int = 0
    n_bytes: int = 0
    parts: list[str] = field(default_factory=list)
    usage: dict | None = None
    finish_reason: str = ""
    done: bool = False
    error: str = ""
    error_detail: str = ""

    @property
    def text(self) -> str:
        return "".join(self.parts)


class Transport(Protocol):
    def stream(self, path: str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult: ...

    def close(self) -> None: ...


def _apply(res: StreamResult, obj: Any, t: float) -> None:
    """Fold one decoded event into the result (after its timestamp was taken)."""
    if obj is sse.DONE:
        res.done = True
        return
    res.t_last = t
    if err := obj.get("error"):
        res.error = "stream_error"
        res.error_detail = str(err.get("message", err) if isinstance(err, dict) else err)
        return
    text = sse.chunk_text(obj)
    if text:
        res.text_times.append(t)
        res.parts.append(text)
    choices = obj.get("choices")
    if choices and (fr := choices[0].get("finish_reason")):
        res.finish_reason = fr
    if usage := obj.get("usage"):
        res.usage = usage


def _finish(res: StreamResult) -> None:
    """Classify a stream that ended without a transport error."""
    if res.error:
        return
    if not res.done and not (res.finish_reason and res.usage):
        res.error, res.error_detail = "disconnect", "stream ended before [DONE]"
    elif not res.text_times:
        res.error, res.error_detail = "empty_output", "no text in the stream"


_SEP = b"\n\n"
_BLOCK = 65536
# Linux: the kernel stamps every received segment (CLOCK_REALTIME, ns) and recvmsg() hands the stamp
# of the newest segment it returned. 35 is SO_TIMESTAMPNS on x86/arm/generic Linux (Python has no
# constant); a socket that refuses it simply gets user-space stamps.
_SO_TIMESTAMPNS = 35
_TS = struct.Struct("qq")
KERNEL_STAMPS = sys.platform.startswith("linux") and os.environ.get("GOODPUT_KERNEL_STAMPS", "1") != "0"
# How late this process read bytes the kernel already held (s): drained once a second by users/selfmon.py.
READ_LAGS: list[float] = []
_READ_LAGS_MAX = 20000


def wall_and_perf(tries: int = 5) -> tuple[float, float]:
    """A (wall clock, perf_counter) pair read at the same instant, to ±1 µs.

    Rows carry wall-clock times mapped from the perf clock through such a pair; two plain
    consecutive reads can be split by a context switch on a busy host (a 1 ms shift was seen).
    The wall read bracketed by the closest pair of perf reads wins.
    """
    best = (float("inf"), 0.0, 0.0)
    for _ in range(tries):
        p0 = perf_counter()
        w = time.time()
        p1 = perf_counter()
        if p1 - p0 < best[0]:
            best = (p1 - p0, w, (p0 + p1) / 2)
            if p1 - p0 < 2e-6:
                break
    return best[1], best[2]


class _StampSocket(gsocket.socket):
    """A gevent socket whose every read records the kernel's receive stamp of its newest byte.

    The stamp says when the bytes reached this host, so neither this process's scheduling nor
    other greenlets' work (a burst of 100 streams' chunks from one engine step) moves a timestamp;
    geventhttpclient's header read goes through here too, so a first token that arrives with the
    response head keeps its true arrival. It also waits *before* reading: gevent's `recv` tries
    first and, between two SSE events, always gets EAGAIN (an exception and a second syscall)
    before waiting — ~7 µs per chunk.
    """

    __slots__ = ("stamp",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamp = 0.0  # wall-clock arrival of the newest byte of the last read; 0.0: unknown

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        raw = self._sock
        while True:
            self._wait(self._read_event)
            try:
                data, anc, _flags, _addr = raw.recvmsg(bufsize, 64, flags)
            except BlockingIOError:  # spurious wake-up
                continue
            stamp = 0.0
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    sec, ns = _TS.unpack_from(value)
                    stamp = sec + ns * 1e-9
            self.stamp = stamp
            return data


def _stamping_client(*args: Any, **kwargs: Any) -> HTTPClient:
    """An HTTPClient whose plain-TCP connections are `_StampSocket`s (TLS decrypts in C: left alone)."""
    client = HTTPClient(*args, **kwargs)
    if not kwargs.get("ssl"):

        def create(family: int, socktype: int, protocol: int) -> _StampSocket:
            sock = _StampSocket(family, socktype, protocol)
            if KERNEL_STAMPS:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                except OSError:
                    pass  # no kernel stamps: reads still work, stamps fall back to perf_counter
            return sock

        client._connection_pool._create_tcp_socket = create
    return client


def _arrival(sock: Any, offset: float, now: float) -> float:
    """The last read's arrival on the perf clock: the kernel stamp mapped through `offset`
    (wall − perf), or `now` without one (or after a wall-clock step: never later than the read)."""
    stamp = sock.stamp if type(sock) is _StampSocket else 0.0
    if stamp:
        t = stamp - offset
        if t <= now:
            if len(READ_LAGS) < _READ_LAGS_MAX:
                READ_LAGS.append(now - t)
            return t
    return now


def _read_events(resp: Any, res: StreamResult) -> None:
    """Split the body into SSE events as bytes arrive, each stamped with its arrival.

    Every event completed by one read gets that read's stamp (the arrival of its newest byte), so
    decoding one event never delays the stamp of the next. geventhttpclient's parser (C, chunked
    framing) appends body bytes to `resp._body_buffer`; events are cut from it in place.
    """
    buf: bytearray = resp._body_buffer
    feed = resp.feed
    event_data, decode = sse.event_data, sse.decode
    sock = resp._sock
    wall, perf = wall_and_perf()
    offset = wall - perf
    t = _arrival(sock, offset, perf_counter())  # bytes that came with the headers
    pos = 0
    while True:
        end = buf.find(_SEP, pos)
        if end < 0:
            if resp.message_complete:
                return
            if pos:
                del buf[:pos]
                pos = 0
            sock = resp._sock
            if sock is None:
                raise HTTPConnectionClosed("connection closed.")
            data = sock.recv(_BLOCK)
            t = _arrival(sock, offset, perf_counter())
            feed(data)
            if not data and not resp.message_complete:
                raise HTTPConnectionClosed("connection closed before the end of the stream")
            continue
        end += 2
        event = buf[pos:end]
        pos = end
        res.n_events += 1
        res.n_bytes += len(event)
        payload = event_data(event)
        if payload is None:
            continue
        _apply(res, decode(payload), t)
        if res.done or res.error:
            return


class RawTransport:
    """One keep-alive connection per Locust user; reads events as they arrive."""

    def __init__(self, base_url: str, api_key: str | None, connect_timeout_s: float = 10.0) -> None:
        u = urlsplit(base_url)
        self.prefix = u.path.rstrip("/")
        self._new_client = functools.partial(
            _stamping_client,
            u.hostname or "127.0.0.1",
            u.port or (443 if u.scheme == "https" else 80),
            ssl=u.scheme == "https",
            connection_timeout=connect_timeout_s,
            network_timeout=None,
            concurrency=1,
            block_size=16384,
        )
        self.client = self._new_client()
        self.auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def stream(self, path: str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult:
        res = StreamResult()
        payload = orjson.dumps(body)
        hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream", **self.auth, **headers}
        resp = None
        timer = gevent.Timeout(timeout_s)
        timer.start()
        try:
            res.t_send = perf_counter()
            resp = self.client.request("POST", self.prefix + path, body=payload, headers=hdrs)
            res.status = resp.status_code
            if res.status != 200:
                res.error = f"http_{res.status}"
                res.error_detail = _error_message(resp.read()[:2000])
                if ra := resp.get("retry-after"):
                    res.error_detail += f" (Retry-After: {ra})"
                return res
            _read_events(resp, res)
            _finish(res)
        except gevent.Timeout as e:
            if e is not timer:
                raise
            res.error, res.error_detail = "timeout", f"no complete answer within {timeout_s:g}s"
            self._reset()
        except sse.BadSSE as e:
            res.error, res.error_detail = "bad_sse", f"data is not JSON: {e}"
            self._reset()
        except (ConnectionRefusedError, socket.gaierror) as e:
            res.error, res.error_detail = "connect", str(e)
        except (HTTPConnectionClosed, ConnectionError, OSError) as e:
            res.error = "connect" if res.status is None else "disconnect"
            res.error_detail = f"{type(e).__name__}: {e}"
            self._reset()
        except Exception as e:  # parser errors on a broken HTTP stream
            res.error, res.error_detail = "disconnect", f"{type(e).__name__}: {e}"
            self._reset()
        finally:
            timer.cancel()
            if resp is not None:
                resp.release()
        return res

    def _reset(self) -> None:
        """A half-read response leaves the connection unusable: drop it and start a fresh pool.

        Closing the pool alone is not enough: a closed geventhttpclient pool refuses every later
        request ("connection pool closed"), and a socket released into it never returns its slot,
        so the user's next requests would hang until their timeout. A new client recovers.
        """
        old, self.client = self.client, self._new_client()
        old.close()

    def close(self) -> None:
        self.client.close()


def _error_message(raw: bytes) -> str:
    try:
        obj = orjson.loads(raw)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")[:300]


class OpenAITransport:
    """The openai SDK (one shared client per process): compatibility over per-chunk cost."""

    _shared: ClassVar[dict[tuple[str, str | None], Any]] = {}

    def __init__(self, base_url: str, api_key: str | None) -> None:
        import openai  # imported only when chosen: it is heavy

        key = (base_url, api_key)
        if key not in self._shared:
            for name in ("httpx", "httpx2"):  # one INFO line per request otherwise: noise and hot-path cost
                logging.getLogger(name).setLevel(logging.WARNING)
            sdk = openai.OpenAI(
                base_url=base_url.rstrip("/") + "/v1", api_key=api_key or "none", max_retries=0
            )
            try:  # warm up: imports, the connection pool and pydantic models, before the first timed request
                sdk.models.list()
            except openai.OpenAIError:
                pass  # the first request will report the problem with its row
            self._shared[key] = sdk
        self.sdk = self._shared[key]
        self.openai = openai

    def stream(self, path: str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult:
        res = StreamResult()
        body = dict(body)
        create = (
            self.sdk.chat.completions.create
            if path.endswith("chat/completions")
            else self.sdk.completions.create
        )
        known = {
            "model",
            "messages",
            "prompt",
            "max_tokens",
            "stream",
            "stream_options",
            "temperature",
            "top_p",
            "seed",
        }
        extra = {k: body.pop(k) for k in list(body) if k not in known}
        timer = gevent.Timeout(timeout_s)
        timer.start()
        stream = None
        try:
            res.t_send = perf_counter()
            stream = create(**body, extra_body=extra or None, extra_headers=headers, timeout=timeout_s)
            res.status = 200
            for chunk in stream:
                t = perf_counter()
                res.n_events += 1
                _apply(res, chunk.model_dump(exclude_none=True), t)
                if res.error:
                    break
            res.done = True
            _finish(res)
        except gevent.Timeout as e:
            if e is not timer:
                raise
            res.error, res.error_detail = "timeout", f"no complete answer within {timeout_s:g}s"
        except self.openai.APIStatusError as e:
            res.status = e.status_code
            res.error, res.error_detail = f"http_{e.status_code}", str(e.message)[:300]
            if ra := e.response.headers.get("retry-after"):
                res.error_detail += f" (Retry-After: {ra})"
        except self.openai.APITimeoutError:  # httpx's read timeout can fire just before our timer
            res.error, res.error_detail = "timeout", f"no complete answer within {timeout_s:g}s"
        except self.openai.APIConnectionError as e:
            res.error = "connect" if res.status is None else "disconnect"
            res.error_detail = str(e.__cause__ or e)[:300]
        except self.openai.APIError as e:  # an `error` event inside the stream, as the raw transport's
            res.error, res.error_detail = "stream_error", str(e)[:300]
        except ValueError as e:  # the SDK's json.loads on a malformed `data:` line
            res.error, res.error_detail = "bad_sse", f"data is not JSON: {e}"[:300]
        except Exception as e:  # anything else the SDK lets through: the request keeps its row
            res.error = "connect" if res.status is None else "disconnect"
            res.error_detail = f"{type(e).__name__}: {e}"[:300]
        finally:
            timer.cancel()
            if stream is not None:
                stream.close()  # a half-read response must not go back to the connection pool
        return res

    def close(self) -> None:
        pass


def make_transport(kind: str, base_url: str, api_key: str | None) -> Transport:
    return OpenAITransport(base_url, api_key) if kind == "openai" else RawTransport(base_url, api_key)
