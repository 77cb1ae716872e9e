"""Streaming clients: send one OpenAI request, time every event, return a `StreamResult`.

This is the hot path. The raw transport reads SSE events from the socket as they arrive
(geventhttpclient's C parser for HTTP/chunked framing) and stamps each with its arrival: on Linux
the kernel's receive time of its last byte (mapped onto the perf_counter clock), so neither the
event loop's other work nor this process's scheduling moves a timestamp; elsewhere (and on TLS)
`perf_counter()` right after the read. JSON decoding happens after the stamp. The openai-SDK
transport exists for compatibility (Azure, proxies, custom auth); it costs several times more CPU
per chunk, and its timestamps include the SDK's parsing and the event loop's delays.
"""

from __future__ import annotations

import functools
import logging
import socket
import time
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import gevent
import orjson
from geventhttpclient.response import HTTPConnectionClosed

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.arrival import arrival, stamping_client, wall_and_perf

perf_counter = time.perf_counter


class Transport(Protocol):
    #: The result of the request being streamed (the last one once it ended): what had arrived
    #: when a stopped user cancels it (loadgen/request.py keeps it on the cancelled row).
    in_flight: StreamResult | None

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
    t = arrival(sock, offset, perf_counter())  # bytes that came with the headers
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
            t = arrival(sock, offset, perf_counter())
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
            stamping_client,
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
        self.in_flight: StreamResult | None = None

    def stream(self, path: str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult:
        res = self.in_flight = StreamResult()
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
        self.in_flight: StreamResult | None = None

    def stream(self, path: str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult:
        res = self.in_flight = StreamResult()
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
