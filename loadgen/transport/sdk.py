"""The openai-SDK transport (`--client openai`): the SDK builds and sends each request (auth, base URL,
Azure, proxies); its raw response bytes go through the same event-stream parser and the same API
`fold` as the raw transport's (loadgen/transport/client.py), so both see the same events. It costs
several times more CPU per chunk, and its stamps are taken when httpx hands over a chunk (event-loop
delays included).
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from operator import attrgetter
from typing import Any, ClassVar

import gevent

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.apis import Api, resolve
from loadgen.transport.apis.trailer import AFTER_END_S, after_end
from loadgen.transport.client import IDENTITY, compressed, finish, http_error, not_a_stream, ran_out
from loadgen.transport.gateway import routed
from loadgen.transport.headers import static_headers
from loadgen.transport.urls import OPENAI_ROOT, openai_base, split_query

perf_counter = time.perf_counter


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
                default_headers={**IDENTITY, **self.extra},  # httpx would ask for gzip (client.IDENTITY)
                default_query=query or None,
                # the SDK follows redirects by default: each request's TTFT would hold a round trip
                # that is not the server's work (the raw client does not follow them either)
                http_client=openai.DefaultHttpxClient(
                    follow_redirects=False, event_hooks={"request": [_watch_connect]}
                ),
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
        res = self.in_flight = _SENDING.res = StreamResult(splits_reasoning=api.splits_reasoning)
        resource = attrgetter(api.sdk)(sdk)
        named = _sdk_params(api.sdk, resource)
        body = dict(body)
        extra = {k: body.pop(k) for k in list(body) if k not in named}
        timer = gevent.Timeout(timeout_s)
        timer.start()

        def exchange() -> Any:
            res.t_send = perf_counter()
            with resource.with_streaming_response.create(
                **body, extra_body=extra or None, extra_headers=headers, timeout=timeout_s
            ) as resp:
                res.status = resp.status_code
                routed(res, resp.headers.get)
                if not compressed(res, resp.headers.get("content-encoding")):  # httpx would decode it
                    _read_chunks(resp.iter_bytes(), res, api)
            return resp

        try:
            try:
                resp = exchange()
            except self.openai.APIConnectionError as e:
                # A kept-alive connection the server closed as this request went out (llama-server
                # closes after every stream): no response byte came, so it is sent once more, on a
                # fresh connection, as the raw client does (RawTransport._send) and the SDK with its
                # default retries would.
                if res.status is not None or _UNANSWERED not in str(e.__cause__):
                    raise
                resp = exchange()
            finish(res)
            not_a_stream(res, resp.headers.get("content-type"), api.media)
        except gevent.Timeout as e:
            if e is not timer:
                raise
            ran_out(res, timeout_s)
        except self.openai.APIStatusError as e:
            res.status = e.status_code
            hdrs = e.response.headers
            routed(res, hdrs.get)
            http_error(res, e.response.content[:2000], hdrs.get("retry-after"), hdrs.get("location"))
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
            _SENDING.res = None  # a later request of this greenlet outside stream() marks nothing
        return res

    def close(self) -> None:
        pass


_SDK_PARAMS: dict[str, frozenset[str]] = {}
#: The request this greenlet (thread, unpatched) is sending: the one shared SDK client serves every user.
_SENDING = threading.local()


def _watch_connect(request: Any) -> None:
    """httpx's request hook: the request's `trace` extension (httpcore's connection events) marks
    whether it opened its connection (`connection.connect_tcp`: the pool had none kept alive for it)."""
    res = getattr(_SENDING, "res", None)
    if res is None:
        return
    res.new_connection = False

    def trace(name: str, _info: dict) -> None:
        if name.endswith("connect_tcp.complete"):
            res.new_connection = True

    request.extensions["trace"] = trace


_UNANSWERED = "without sending a response"  # httpcore's error for a connection closed before any answer


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
    """The SDK transport's counterpart of `read_body`: one stamp per chunk, the same parser; after
    the stream's end marker, the rest of the body as `reader.Body.finish` reads it."""
    parser, fold = api.framing(None), api.fold
    chunks = iter(chunks)
    try:
        for chunk in chunks:
            t = perf_counter()
            parser.compact()
            parser.feed(chunk)
            while (ev := parser.next_event()) is not None:
                res.n_events += 1
                fold(res, ev[0], ev[1], t)
                if res.error:
                    return
                if res.done:
                    res.read_to_end = True
                    _sdk_tail(chunks, parser, res)
                    return
    finally:
        res.n_bytes = parser.total


def _sdk_tail(chunks: Any, parser: Any, res: StreamResult) -> None:
    """What follows the end marker, to the body's end (for at most AFTER_END_S), to `after_end`."""
    try:
        with gevent.Timeout(AFTER_END_S, False):
            while True:
                while (ev := parser.next_event()) is not None:
                    after_end(res, ev[0], ev[1])
                parser.compact()
                chunk = next(chunks, None)
                if chunk is None:
                    return
                parser.feed(chunk)
    except Exception:  # a broken tail: the SDK closes the response; the answer was complete
        return
