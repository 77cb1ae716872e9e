"""Streaming clients: send one request of any API, time every event, return a `StreamResult`.

This is the hot path. The raw transport sends with geventhttpclient and reads SSE events as they
arrive (its C parser for HTTP/chunked framing; on Linux one reader greenlet reads every stream's
socket, loadgen/transport/reader.py) and stamps each with its arrival: on Linux
the kernel's receive time of its last byte (mapped onto the perf_counter clock), so neither the
event loop's other work nor this process's scheduling moves a timestamp; elsewhere (and on TLS)
`perf_counter()` right after the read. Each event is then folded into the result by the API's
parser (loadgen/transport/apis/: decoding happens after the stamp). The openai-SDK
transport exists for compatibility (Azure, proxies, custom auth): the SDK builds and sends the
request, and its raw response bytes go through the same event-stream parser
(loadgen/transport/eventstream.py), so both transports see the same events; it costs several times
more CPU per chunk, and its stamps are taken when httpx hands over a chunk (event-loop delays included).
"""

from __future__ import annotations

import functools
import inspect
import logging
import socket
import time
from operator import attrgetter
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import gevent
import orjson
from gevent import GreenletExit
from geventhttpclient.response import HTTPConnectionClosed

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.apis import Api, resolve
from loadgen.transport.arrival import sent_at, stamping_client
from loadgen.transport.headers import static_headers
from loadgen.transport.reader import read_body
from loadgen.transport.urls import OPENAI_ROOT, openai_base, safe_url, split_query

perf_counter = time.perf_counter


class Transport(Protocol):
    #: The result of the request being streamed (the last one once it ended): what had arrived
    #: when a stopped user cancels it (loadgen/request.py keeps it on the cancelled row).
    in_flight: StreamResult | None

    def stream(
        self, api: Api | str, body: dict, headers: dict[str, str], timeout_s: float
    ) -> StreamResult: ...

    def close(self) -> None: ...


def _finish(res: StreamResult) -> None:
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


def _http_error(res: StreamResult, body: bytes, retry_after: str | None, location: str | None = None) -> None:
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
            res.t_send = perf_counter()
            resp = self.client.request("POST", self.prefix + path, body=payload, headers=hdrs)
            res.t_send = sent_at(self.client, res.t_send)  # right before its last byte was written
            return resp
        except (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError):
            if not self.reused:
                raise
        self._reset()
        res.t_send = perf_counter()
        resp = self.client.request("POST", self.prefix + path, body=payload, headers=hdrs)
        res.t_send = sent_at(self.client, res.t_send)
        return resp

    def stream(self, api: Api | str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult:
        """`api`: the API (or its path or name) whose `fold` reads the stream; the body goes to its path."""
        api = resolve(api)
        res = self.in_flight = StreamResult(splits_reasoning=api.splits_reasoning)
        payload = orjson.dumps(body)
        hdrs = {"Content-Type": "application/json", "Accept": api.media, **self.auth, **headers}
        if api.headers:
            hdrs.update(api.headers)
        resp = None
        timer = gevent.Timeout(timeout_s)
        timer.start()
        try:
            resp = self._send(res, api.path, payload, hdrs)
            res.status = resp.status_code
            if res.status != 200:
                _http_error(res, resp.read()[:2000], resp.get("retry-after"), resp.get("location"))
                return res
            read_body(resp, res, api)
            _finish(res)
            not_a_stream(res, resp.get("content-type"), api.media)
            self.reused = not res.error
        except gevent.Timeout as e:
            if e is not timer:
                raise
            res.error, res.error_detail = "timeout", f"no complete answer within {timeout_s:g}s"
            self._reset()
        except GreenletExit:
            # The user was stopped. When the reader had already read the whole body (the stop came
            # before this greenlet resumed), the answer is complete: classify it as one.
            if res.read_to_end:
                _finish(res)
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


class OpenAITransport:
    """The openai SDK (one shared client per process): compatibility over per-chunk cost."""

    _shared: ClassVar[dict[tuple[str, str | None, tuple], Any]] = {}

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        headers: dict[str, str] | None = None,
        api: Api | None = None,
    ) -> None:
        import openai  # imported only when chosen: it is heavy

        self.root, self.api_key = base_url.rstrip("/"), api_key
        # an Authorization of another scheme replaces the SDK's Bearer (the same name: one header)
        self.extra = static_headers(None, headers or {})
        self.openai = openai
        self.in_flight: StreamResult | None = None
        self._last: tuple[Api, Any] | None = None  # the API of the last request and its client
        if api is not None and api.sdk is not None:
            self._sdk(api)  # made and warmed up now, as the user starts, not in its first request's time

    def _sdk(self, api: Api) -> Any:
        """The shared client whose base URL serves `api`: `--host` + /v1, or what precedes the SDK's
        resource in `--api-path` (its query sent on every request: an api-version). A run speaks one
        API: its client is found once, not on every request."""
        if self._last is not None and self._last[0] is api:
            return self._last[1]
        path, query = split_query(api.path)
        base = self.root + (openai_base(path, api.sdk) or OPENAI_ROOT)
        key = (base, tuple(sorted(query.items())), self.api_key, tuple(sorted(self.extra.items())))
        if key not in self._shared:
            openai = self.openai
            for name in ("httpx", "httpx2"):  # one INFO line per request otherwise: noise and hot-path cost
                logging.getLogger(name).setLevel(logging.WARNING)
            sdk = openai.OpenAI(
                base_url=base,
                api_key=self.api_key or "none",
                max_retries=0,
                default_headers=self.extra or None,
                default_query=query or None,
                # the SDK follows redirects by default: each request's TTFT would hold a round trip
                # that is not the server's work (the raw client does not follow them either)
                http_client=openai.DefaultHttpxClient(follow_redirects=False),
            )
            try:  # warm up: imports, the connection pool and pydantic models, before the first timed request
                sdk.models.list()
            except openai.OpenAIError:
                pass  # the first request will report the problem with its row
            self._shared[key] = sdk
        self._last = (api, self._shared[key])
        return self._last[1]

    def stream(self, api: Api | str, body: dict, headers: dict[str, str], timeout_s: float) -> StreamResult:
        """The SDK builds and sends the request (auth, base URL, Azure, proxies); its raw response
        bytes go through the same event-stream parser and the same API `fold` as the raw transport's,
        so both see the same events. Each chunk the SDK yields is stamped when it arrives here.
        Only the APIs the SDK has a resource for can be sent (`Api.sdk`: chat, completions, responses)."""
        api = resolve(api)
        if api.sdk is None:
            raise ValueError(f"the openai SDK cannot send --api {api.name} (its {api.server} route)")
        sdk = self._sdk(api)
        res = self.in_flight = StreamResult(splits_reasoning=api.splits_reasoning)
        resource = attrgetter(api.sdk)(sdk)
        named = _sdk_params(api.sdk, resource)
        body = dict(body)
        extra = {k: body.pop(k) for k in list(body) if k not in named}
        timer = gevent.Timeout(timeout_s)
        timer.start()
        try:
            res.t_send = perf_counter()
            with resource.with_streaming_response.create(
                **body, extra_body=extra or None, extra_headers=headers, timeout=timeout_s
            ) as resp:
                res.status = resp.status_code
                _read_chunks(resp.iter_bytes(), res, api)
            _finish(res)
            not_a_stream(res, resp.headers.get("content-type"), api.media)
        except gevent.Timeout as e:
            if e is not timer:
                raise
            res.error, res.error_detail = "timeout", f"no complete answer within {timeout_s:g}s"
        except self.openai.APIStatusError as e:
            res.status = e.status_code
            hdrs = e.response.headers
            _http_error(res, e.response.content[:2000], hdrs.get("retry-after"), hdrs.get("location"))
        except self.openai.APITimeoutError:  # httpx's read timeout can fire just before our timer
            res.error, res.error_detail = "timeout", f"no complete answer within {timeout_s:g}s"
        except self.openai.APIConnectionError as e:
            res.error = "connect" if res.status is None else "disconnect"
            res.error_detail = str(e.__cause__ or e)[:300]
        except sse.BadSSE as e:
            res.error, res.error_detail = "bad_sse", f"data is not JSON: {e}"[:300]
        except Exception as e:  # httpx's errors on a broken body, anything else: the request keeps its row
            res.error = "connect" if res.status is None else "disconnect"
            res.error_detail = f"{type(e).__name__}: {e}"[:300]
        finally:
            timer.cancel()  # leaving the `with` closed the response: a half-read one is not reused
        return res

    def close(self) -> None:
        pass


_SDK_PARAMS: dict[str, frozenset[str]] = {}


def _sdk_params(name: str, resource: Any) -> frozenset[str]:
    """What the SDK resource's create() takes by name (read from its signature once); the rest of a
    body travels as extra_body (`ignore_eos` and other server extensions)."""
    if name not in _SDK_PARAMS:
        params = inspect.signature(resource.create).parameters
        _SDK_PARAMS[name] = frozenset(
            p for p in params if p not in ("extra_headers", "extra_query", "extra_body", "timeout")
        )
    return _SDK_PARAMS[name]


def _read_chunks(chunks: Any, res: StreamResult, api: Api) -> None:
    """The SDK transport's counterpart of `read_body`: one stamp per chunk, the same parser."""
    parser, fold = api.framing(None), api.fold
    try:
        for chunk in chunks:
            t = perf_counter()
            parser.compact()
            parser.feed(chunk)
            while (ev := parser.next_event()) is not None:
                res.n_events += 1
                fold(res, ev[0], ev[1], t)
                if res.done or res.error:
                    return
    finally:
        res.n_bytes = parser.total


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
        return OpenAITransport(base_url, api_key, headers, api)
    return RawTransport(base_url, api_key, headers=headers)
