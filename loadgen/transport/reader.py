"""Reading response bodies: cut each into SSE events as bytes arrive, stamp, fold — and, on Linux,
one reader greenlet that reads every streaming socket of the process.

Why one reader: at 1,000 streams every engine step brings one event per stream, and a greenlet per
stream pays, per chunk, a readiness wait (watcher start, a switch to the hub and back) on top of the
read itself: a third of one core's cost (bench/README.md § Where one core's time goes). Here one
greenlet waits on one epoll instance that holds every streaming socket; each wake-up reads up to
`BATCH` ready sockets, one `recvmsg` each, stamps each read with the kernel's receive stamp and folds
the events it completed. A stream's own greenlet sleeps from its response head to the end of its
body: one switch per request, not per chunk. The stamps stay the kernel's, so a read that waits for
the others of its batch keeps its true arrival; `BATCH` bounds how long one wake-up holds the event
loop (other greenlets send requests, the lag probe measures), ~1 ms at 64 reads.

Elsewhere (TLS, whose bytes may sit decrypted in the SSL object with nothing to read on the socket;
systems without epoll) the stream's greenlet reads its own socket, with the same `Body`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gevent
from gevent.hub import Waiter, get_hub
from gevent.monkey import get_original
from geventhttpclient._parser import HTTPResponseParser
from geventhttpclient.response import HTTPConnectionClosed

from core.clock import wall_and_perf
from core.result import StreamResult
from loadgen.transport.apis.base import Api
from loadgen.transport.apis.trailer import AFTER_END_S, after_end
from loadgen.transport.arrival import arrival, kernel_stamp, on_perf, plain_socket

perf_counter = time.perf_counter
_c_feed = HTTPResponseParser.feed

BLOCK = 65536  # bytes per read: a whole engine step's worth for one stream, and more
BATCH = 64  # sockets read per wake-up of the reader before other greenlets run
_ANCILLARY = 64  # room for one SO_TIMESTAMPNS control message


class Body:
    """One streaming response body: its event parser (the API's framing), its API's fold and the
    request's result.

    `take(data, t)` feeds one read (arrived at `t`, perf clock) and folds every event it completed;
    it returns True when the stream is over (the API's end, an error event, or the HTTP message's end).
    """

    __slots__ = ("_compact", "_feed", "_fold", "_next", "exc", "offset", "parser", "res", "resp", "waiter")

    def __init__(self, resp: Any, res: StreamResult, api: Api) -> None:
        self.resp = resp
        self.res = res
        self._fold = api.fold
        self.parser = api.framing(resp._body_buffer)  # geventhttpclient's C parser appends body bytes here
        self._next, self._compact = self.parser.next_event, self.parser.compact
        # Per read, the C parser itself, and its body callback a C method: the response's Python `feed`
        # (which only mends HEAD answers) and `_on_body` would be two Python calls per chunk.
        resp._on_body = resp._body_buffer.extend
        self._feed = _c_feed.__get__(resp)
        wall, perf = wall_and_perf()
        self.offset = wall - perf  # kernel stamps (wall clock) → perf clock, mapped once per request
        self.exc: BaseException | None = None  # what ended the stream in the reader, raised in its owner
        self.waiter: Waiter | None = None

    def fold_ready(self, t: float) -> bool:
        """Fold every complete event (their bytes arrived at `t`); True when the stream is over."""
        res, fold, next_event = self.res, self._fold, self._next
        while (ev := next_event()) is not None:
            res.n_events += 1
            fold(res, ev[0], ev[1], t)
            if res.done or res.error:
                res.read_to_end = True
                return True
        if self.resp.message_complete:
            res.read_to_end = True
            return True
        self._compact()  # drop what was cut before more bytes are appended
        return False

    def take(self, data: bytes, t: float) -> bool:
        self._feed(data)
        if not data and not self.resp.message_complete:
            raise HTTPConnectionClosed("connection closed before the end of the stream")
        return self.fold_ready(t)

    def finish(self, grace_s: float = AFTER_END_S) -> None:
        """After the stream's end marker: the body to the HTTP message's end, its events to
        `after_end` (loadgen/transport/apis/trailer.py), for at most `grace_s`. Read by the stream's
        own greenlet (once per request at most, and mostly from bytes already here); a body that does
        not end in time, or breaks, only leaves its connection unreusable (the response's release
        closes it): the answer was complete."""
        res, resp, next_event = self.res, self.resp, self._next
        try:
            with gevent.Timeout(grace_s, False):
                while True:
                    while (ev := next_event()) is not None:
                        after_end(res, ev[0], ev[1])
                    if resp.message_complete or resp._sock is None:
                        return
                    self._compact()
                    data = resp._sock.recv(BLOCK)
                    self._feed(data)
                    if not data:
                        return
        except Exception:  # a broken tail (a reset, a parser error): the connection is not reused
            return


def read_body(resp: Any, res: StreamResult, api: Api) -> None:
    """Read `resp`'s body to the end of the stream, folding its events into `res` with `api`'s fold.

    Bytes that came with the response head are folded first, at the head read's arrival. Raises what
    a read raised (a closed connection, a parser error, a fold's `BadSSE`) in the calling greenlet.
    After the stream's end marker the rest of the body is read to the message's end (`Body.finish`),
    so the connection can carry the next request.
    """
    body = Body(resp, res, api)
    try:
        _read(body, resp)
        if res.done and not res.error:
            body.finish()
    finally:
        res.n_bytes = body.parser.total


def _read(body: Body, resp: Any) -> None:
    """`body` to the end of its stream: by the process's reader, or by this greenlet (TLS, no epoll)."""
    sock = resp._sock
    if body.fold_ready(arrival(sock, body.offset, perf_counter())):
        return
    if _EPOLL and plain_socket(sock):
        _reader().read(body, sock._sock)
        return
    while True:
        sock = resp._sock
        if sock is None:
            raise HTTPConnectionClosed("connection closed.")
        data = sock.recv(BLOCK)
        if body.take(data, arrival(sock, body.offset, perf_counter())):
            return


def _original_epoll() -> tuple[Any, int]:
    """The system's epoll: gevent's monkey-patching removes it from `select` (Locust patches at import)."""
    try:
        return tuple(get_original("select", ["epoll", "EPOLLIN"]))
    except AttributeError:  # not Linux
        return None, 0


_epoll, _EPOLLIN = _original_epoll()
_EPOLL = _epoll is not None and os.environ.get("GOODPUT_READER", "epoll") == "epoll"


class _Reader:
    """The process's reader: an epoll instance over every streaming socket, one greenlet reading them."""

    def __init__(self) -> None:
        self.hub = get_hub()
        self.poller = _epoll()
        self.bodies: dict[int, tuple[Body, Any]] = {}  # fd → (body, raw socket)
        self.watcher = self.hub.loop.io(self.poller.fileno(), 1)
        self.greenlet: gevent.Greenlet | None = None

    def read(self, body: Body, raw: Any) -> None:
        """Hand `body` (read from the non-blocking socket `raw`) to the reader; sleep until its end.

        A timeout or a kill of the calling greenlet takes the body back from the reader on the way out.
        """
        fd = raw.fileno()
        body.waiter = Waiter(self.hub)
        self.poller.register(fd, _EPOLLIN)
        self.bodies[fd] = (body, raw)
        if self.greenlet is None:
            self.greenlet = gevent.spawn(self._run)
        try:
            body.waiter.get()
        finally:
            held = self.bodies.get(fd)
            if held is not None and held[0] is body:
                self._drop(fd)
        if body.exc is not None:
            raise body.exc

    def _drop(self, fd: int) -> None:
        """Stop watching `fd`. The HTTP parser may have closed the connection already, from inside
        the read that ended the message (a `Connection: close` answer is released so): the kernel
        dropped a closed descriptor from the epoll set by itself, nothing opened it again since."""
        self.bodies.pop(fd, None)
        try:
            self.poller.unregister(fd)
        except OSError:
            pass

    def _end(self, fd: int, body: Body, exc: BaseException | None) -> None:
        """The stream is over (or failed): stop reading it and wake its owner."""
        self._drop(fd)
        body.exc = exc
        if body.waiter is not None:
            self.hub.loop.run_callback(body.waiter.switch, None)

    def _run(self) -> None:
        bodies, poll, wait, watcher = self.bodies, self.poller.poll, self.hub.wait, self.watcher
        now = perf_counter
        try:
            while bodies:
                wait(watcher)
                for fd, _events in poll(0, BATCH):
                    held = bodies.get(fd)
                    if held is None:
                        continue
                    body, raw = held
                    try:
                        data, anc, _flags, _addr = raw.recvmsg(BLOCK, _ANCILLARY)
                        t = on_perf(kernel_stamp(anc) if anc else 0.0, body.offset, now())
                        if body.take(data, t):
                            self._end(fd, body, None)
                    except BlockingIOError:  # a spurious wake-up
                        continue
                    except Exception as e:  # the owner classifies it, as if it had read itself
                        self._end(fd, body, e)
        except BaseException as e:  # the reader itself was killed: no owner waits forever
            for fd, (body, _raw) in list(bodies.items()):
                self._end(fd, body, HTTPConnectionClosed(f"reader stopped: {type(e).__name__}"))
            raise
        finally:
            self.greenlet = None


_READERS: dict[Any, _Reader] = {}  # by hub: one per thread that streams
os.register_at_fork(after_in_child=_READERS.clear)  # a forked Locust worker starts its own


def _reader() -> _Reader:
    """This thread's reader."""
    hub = get_hub()
    r = _READERS.get(hub)
    if r is None:
        r = _READERS[hub] = _Reader()
    return r
