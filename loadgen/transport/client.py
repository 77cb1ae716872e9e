"""Streaming clients: send one request of any API, time every event, return a `StreamResult`.

This is the hot path. The raw transport sends with geventhttpclient and reads SSE events as they
arrive (its C parser for HTTP/chunked framing; on Linux one reader greenlet reads every stream's
socket, loadgen/transport/reader.py) and stamps each with its arrival: on Linux
the kernel's receive time of its last byte (mapped onto the perf_counter clock), so neither the
event loop's other work nor this process's scheduling moves a timestamp; elsewhere (and on TLS)
`perf_counter()` right after the read. Each event is then folded into the result by the API's
parser (loadgen/transport/apis/: decoding happens after the stamp). The openai-SDK transport
(loadgen/transport/sdk.py) exists for compatibility (Azure, proxies, custom auth) and classifies its
answers with the same rules as this one (`finish`, `not_a_stream`, `http_error`, below).
"""

from __future__ import annotations

import functools
import socket
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import gevent
import orjson
from gevent import GreenletExit
from geventhttpclient.response import HTTPConnectionClosed

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.apis import Api, resolve
from loadgen.transport.arrival import sent_at, stamping_client
from loadgen.transport.gateway import routed
from loadgen.transport.headers import static_headers
from loadgen.transport.reader import read_body
from loadgen.transport.urls import safe_url

perf_counter = time.perf_counter


class Transport(Protocol):
    #: The result of the request being streamed (the last one once it ended): what had arrived
    #: when a stopped user cancels it (loadgen/request.py keeps it on the cancelled row).
    in_flight: StreamResult | None

    def stream(
        self, api: Api | str, body: dict, headers: dict[str, str], timeout_s: float
    ) -> StreamResult: ...

    def close(self) -> None: ...


def finish(res: StreamResult) -> None:
    """Classify a stream whose body ended without a transport error.

    `[DONE]` is OpenAI's end marker, but servers omit it (TGI before 2.2, ik_llama.cpp) or send it
    without the blank line that makes it an event (llama.cpp): a body that ended cleanly after a
    finish_reason is complete too.
    """
    if res.error:
        return
    if not res.done and not res.finish_reason:
        res.error, res.error_detail = "disconnect", "stream ended before a finish_reason or [DONE]"
    elif not res.text_times:
        res.error, res.error_detail = "empty_output", _empty_detail(res)


def ran_out(res: StreamResult, timeout_s: float) -> None:
    """The request's time ran out. An answer read to its end marker stays complete (only the body's
    end after it was late); anything else is a timeout."""
    if res.read_to_end:
        finish(res)
    else:
        res.error, res.error_detail = "timeout", f"no complete answer within {timeout_s:g}s"


#: Both clients ask for each answer as the server wrote it. A compressor in between (a gateway's or an
#: app's gzip: Starlette's GZipMiddleware before it left event streams alone, tower-http's
#: CompressionLayer, gin's gzip) holds events back until its buffer fills, so every timing would be
#: the compressor's; and with no Accept-Encoding at all, RFC 9110 lets a server pick any coding.
IDENTITY = {"Accept-Encoding": "identity"}


def compressed(res: StreamResult, content_encoding: str | None) -> bool:
    """A 200 in a content coding although `IDENTITY` asked for none: no event of it is read (its
    arrival times would be a compressor's), and the row says what to change."""
    coding = (content_encoding or "").strip()
    if not coding or coding.lower() == "identity":
        return False
    res.error = "bad_sse"
    res.error_detail = (
        f"the server compressed its stream (Content-Encoding: {coding}) although asked for none "
        "(Accept-Encoding: identity): a compressor holds events back until its buffer fills, so every "
        "time would be the compressor's; turn compression off for text/event-stream where it is on "
        "(a gateway, a middleware), or aim at the server behind it"
    )
    return True


def not_a_stream(res: StreamResult, content_type: str | None, media: str = "text/event-stream") -> None:
    """A 200 whose body held no event at all and was not labelled an event stream is not a broken
    stream but no stream: the server answered `stream: true` in one piece (a route or a gateway
    that does not stream: a whole `chat.completion` JSON), or something else answered (an HTML page
    of a login or captive proxy). Saying `disconnect` there would send the user to the network."""
    if res.error != "disconnect" or res.n_events or not res.n_bytes:
        return
    if content_type and media.split("/")[-1] in content_type.lower():
        return
    sse_stream = media == "text/event-stream"
    res.error = "bad_sse"
    res.error_detail = (
        f"not {'an event' if sse_stream else 'a ' + media} stream: a {res.n_bytes}-byte "
        f"{content_type or 'unlabelled'} answer without one {'data: event' if sse_stream else 'complete line'} "
        "(the server answered in one piece: it does not stream this route, or another page answered, "
        "such as a proxy's)"
    )


def _empty_detail(res: StreamResult) -> str:
    """Why a completed stream had no text. A server may count tokens it never showed: llama-server
    holds a token that ends inside a UTF-8 character until the character completes, and drops what
    is still held when the output cap ends the stream (tests/fixtures/llamacpp-held-to-end-stream.txt)."""
    counted = (res.usage or {}).get("completion_tokens")
    if counted:
        return f"no text in the stream, though the server counted {counted} output tokens (bytes of an unfinished UTF-8 character are never sent)"
    return "no text in the stream"


def empty_body_detail(status: int) -> str:
    return f"HTTP {status} with an empty body"


def http_error(res: StreamResult, body: bytes, retry_after: str | None, location: str | None = None) -> None:
    """A non-200 answer: the category names the status, the detail the server's message (or its
    absence), the wait a 429 asks for, and where a redirect points (the client does not follow it)."""
    res.error = f"http_{res.status}"
    if location and 300 <= (res.status or 0) < 400:
        res.error_detail = f"redirected to {safe_url(location) or location[:200]}: not followed"
        return
    res.error_detail = error_message(body) or empty_body_detail(res.status or 0)
    if retry_after:
        res.error_detail += f" (Retry-After: {retry_after})"


def explain_rejection(res: StreamResult, id_header: str | None) -> None:
    """A bare 400 says nothing; strict servers answer so to a request id they do not accept: say which was sent."""
    if id_header and res.status == 400 and res.error_detail.startswith(empty_body_detail(400)):
        res.error_detail += f"; the server may reject the {id_header} header: try --request-id-header none"


class RawTransport:
    """One keep-alive connection per Locust user; reads events as they arrive."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        connect_timeout_s: float = 10.0,
        headers: dict[str, str] | None = None,
    ) -> None:
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
        self.reused = False  # the connection has carried a complete answer (the next request reuses it)
        self.auth = static_headers(api_key, headers or {})  # the key, then --header's
        self.in_flight: StreamResult | None = None

    def _send(self, res: StreamResult, path: str, payload: bytes, hdrs: dict[str, str]) -> Any:
        """Send and read the response head, once more on a fresh connection if a reused one was closed.

        A server may close a keep-alive connection after an answer without saying so (llama.cpp's
        server does after every stream while announcing `Keep-Alive`): the next request on it fails
        before any response byte. That request never reached the server, so it is sent again on a
        new connection, as HTTP clients do for an idle connection the server closed (RFC 9112 §9.3.1).
        """
        try:
            return self._request(res, path, payload, hdrs)
        except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
            if not self.reused:
                raise
        self._reset()
        return self._request(res, path, payload, hdrs)

    def _request(self, res: StreamResult, path: str, payload: bytes, hdrs: dict[str, str]) -> Any:
        """One send: its stamp right before its last byte was written, and whether it opened its
        connection (the pool had none kept alive: the connect is inside its TTFT)."""
        client = self.client
        opened = client.goodput_connections
        res.t_send = perf_counter()
        resp = client.request("POST", self.prefix + path, body=payload, headers=hdrs)
        res.t_send = sent_at(client, res.t_send)
        res.new_connection = client.goodput_connections != opened
        return resp

    def stream(self, api: Api | str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult:
        """`api`: the API (or its path or name) whose `fold` reads the stream; the body goes to its path."""
        api = resolve(api)
        res = self.in_flight = StreamResult(splits_reasoning=api.splits_reasoning)
        payload = orjson.dumps(body)
        hdrs = {"Content-Type": "application/json", "Accept": api.media, **IDENTITY, **self.auth, **headers}
        if api.headers:
            hdrs.update(api.headers)
        resp = None
        timer = gevent.Timeout(timeout_s)
        timer.start()
        try:
            resp = self._send(res, api.path, payload, hdrs)
            res.status = resp.status_code
            routed(res, resp.get)
            if res.status != 200:
                http_error(res, resp.read()[:2000], resp.get("retry-after"), resp.get("location"))
                return res
            if compressed(res, resp.get("content-encoding")):
                self._reset()  # its body is left unread
                return res
            read_body(resp, res, api)
            finish(res)
            not_a_stream(res, resp.get("content-type"), api.media)
            self.reused = not res.error
        except gevent.Timeout as e:
            if e is not timer:
                raise
            ran_out(res, timeout_s)
            self._reset()
        except GreenletExit:
            # The user was stopped. When the reader had already read the whole body (the stop came
            # before this greenlet resumed), the answer is complete: classify it as one.
            if res.read_to_end:
                finish(res)
            raise
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
        self.reused = False
        old.close()

    def close(self) -> None:
        self.client.close()


def error_message(raw: bytes) -> str:
    """The message of an error body: JSON in the shapes servers use, or the text itself ("" when none)."""
    try:
        obj = orjson.loads(raw)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        return str(err.get("message", err) if isinstance(err, dict) else err)[:300]
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace").strip()[:300]


def make_transport(
    kind: str,
    base_url: str,
    api_key: str | None,
    headers: dict[str, str] | None = None,
    api: Api | None = None,
) -> Transport:
    """`headers`: sent on every request (`--header`, loadgen/transport/headers.py); `api`: the run's,
    for the SDK's base URL (`--api-path`)."""
    if kind == "openai":
        from loadgen.transport.sdk import OpenAITransport  # the SDK only where chosen: it is heavy

        return OpenAITransport(base_url, api_key, headers, api)
    return RawTransport(base_url, api_key, headers=headers)
