"""When bytes left and arrived: the send stamp, the kernel's receive stamps, their mapping to the perf clock
(through core/clock.py's wall ↔ perf pair).

Linux stamps every received segment (CLOCK_REALTIME, ns) and recvmsg() hands the stamp of the
newest segment it returned. A token's arrival then does not depend on when this process got
around to reading it: not on the other streams' chunks in the same engine step, not on the
completion work of other requests, not on the host's scheduler. It does depend on reading each
stream before its next token arrives: the kernel merges unread segments and keeps the newest stamp,
so two tokens read together share the later one (never an earlier one). loadgen/monitors/selfmon.py reports
how late reads were (`READ_LAGS`) and flags the seconds where the event loop lagged.

A request's send is stamped right before the write that hands the kernel its last byte, not when
the client set out to send it: any yield to the hub between the two lets every other ready greenlet
run first (milliseconds at 1,000 streams), and a stamp taken before it moved every TTFT by that wait
(geventhttpclient's pool check of a kept-alive connection, a zero-timeout `select`, was such a
yield; `_idle_and_open` replaces it with a peek that does not yield). Nor is it taken when the write returned: on a host
where the server shares the cores, the write wakes the server, which can take the CPU before the
write returns (0.4–1.7 ms at p99 on a shared core, over 10 ms once in CI with vLLM on two cores),
and a late send stamp makes the TTFT shorter than the engine's own. Read before the syscall, the
stamp precedes the server's first sight of the whole request: a client TTFT is never below the
engine's. The kernel's own transmit stamp (SO_TIMESTAMPING, software) was tried too: it costs a
syscall per request and an error queue that must be drained (bench/send_stamp.py, bench/README.md).
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time
from typing import Any

from gevent import socket as gsocket
from geventhttpclient import HTTPClient

perf_counter = time.perf_counter

# Linux: the kernel stamps every received segment (CLOCK_REALTIME, ns) and recvmsg() hands the stamp
# of the newest segment it returned. 35 is SO_TIMESTAMPNS on x86/arm/generic Linux (Python has no
# constant); a socket that refuses it simply gets user-space stamps.
_SO_TIMESTAMPNS = 35
_TS = struct.Struct("qq")
_SOL_SOCKET = socket.SOL_SOCKET
KERNEL_STAMPS = sys.platform.startswith("linux") and os.environ.get("GOODPUT_KERNEL_STAMPS", "1") != "0"
# How late this process read bytes the kernel already held (s): drained once a second by loadgen/monitors/selfmon.py.
READ_LAGS: list[float] = []
_READ_LAGS_MAX = 20000


class _StampSocket(gsocket.socket):
    """A gevent socket whose every read records the kernel's receive stamp of its newest byte.

    The stamp says when the bytes reached this host, so neither this process's scheduling nor
    other greenlets' work (a burst of 100 streams' chunks from one engine step) moves a timestamp;
    geventhttpclient's header read goes through here too, so a first token that arrives with the
    response head keeps its true arrival. It also waits *before* reading: gevent's `recv` tries
    first and, between two SSE events, always gets EAGAIN (an exception and a second syscall)
    before waiting — ~7 µs per chunk.
    """

    __slots__ = ("sent", "stamp")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stamp = 0.0  # wall-clock arrival of the newest byte of the last read; 0.0: unknown
        self.sent = 0.0  # perf_counter right before the write that handed the kernel the last byte

    def sendall(self, data: Any, flags: int = 0) -> None:
        """gevent's sendall, with the clock read right before each write: the last one's is `sent`."""
        view = memoryview(data).cast("B")
        raw = self._sock
        while view:
            before = perf_counter()
            try:
                n = raw.send(view, flags)
            except BlockingIOError:  # the send buffer is full: wait until the server reads
                self._wait(self._write_event)
                continue
            self.sent = before
            view = view[n:]

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        raw = self._sock
        while True:
            self._wait(self._read_event)
            try:
                data, anc, _flags, _addr = raw.recvmsg(bufsize, 64, flags)
            except BlockingIOError:  # spurious wake-up
                continue
            self.stamp = kernel_stamp(anc) if anc else 0.0
            return data


def kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The receive stamp in a `recvmsg` control-message list (wall clock, s); 0.0 when there is none."""
    for level, kind, value in ancillary:
        if level == _SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
            sec, ns = _TS.unpack_from(value)
            return sec + ns * 1e-9
    return 0.0


def plain_socket(sock: Any) -> bool:
    """A plain TCP connection of ours (not TLS): its raw socket can be read by anyone, stamps included."""
    return type(sock) is _StampSocket


def sent_at(client: HTTPClient, before: float) -> float:
    """The send stamp of the request `client` just made (perf clock): right before its last byte was
    written, or `before` (taken before the request) where the socket is not ours (TLS)."""
    sock = getattr(client, "goodput_socket", None)
    return sock.sent if sock is not None and sock.sent >= before else before


_stamp_keeper: socket.socket | None = None


def _keep_kernel_stamps() -> None:
    """Turn the kernel's receive stamping on for the life of the process.

    Linux switches it on (deferred, a moment later) when a first socket asks and off when the last
    one closes: without a socket that stays, the first tokens of a run, or of every run after a
    pause, would arrive unstamped. One idle UDP socket holds it on.
    """
    global _stamp_keeper
    if _stamp_keeper is None and KERNEL_STAMPS:
        try:
            keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            keeper.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            _stamp_keeper = keeper
        except OSError:
            pass


def stamping_client(*args: Any, **kwargs: Any) -> HTTPClient:
    """An HTTPClient whose plain-TCP connections are `_StampSocket`s (TLS decrypts in C: left alone),
    counting the connections it opens (`goodput_connections`, TLS ones too: a request whose count
    moved paid a connect in its TTFT)."""
    client = HTTPClient(*args, **kwargs)
    _keep_kernel_stamps()
    client.goodput_connections = 0
    open_one = client._connection_pool._create_socket

    def counted() -> Any:
        sock = open_one()
        client.goodput_connections += 1
        return sock

    client._connection_pool._create_socket = counted
    if not kwargs.get("ssl"):

        def create(family: int, socktype: int, protocol: int) -> _StampSocket:
            sock = _StampSocket(family, socktype, protocol)
            if KERNEL_STAMPS:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                except OSError:
                    pass  # no kernel stamps: reads still work, stamps fall back to perf_counter
            client.goodput_socket = sock  # one connection per client (concurrency=1): the one in use
            return sock

        pool = client._connection_pool
        pool._create_tcp_socket = create
        pool._is_socket_alive = _idle_and_open
    return client


def _idle_and_open(sock: Any) -> bool:
    """The pool's check of a kept-alive connection before reuse, without a yield to the hub.

    geventhttpclient asks a zero-timeout `select` whether the idle socket is readable (a FIN or stray
    bytes: not reusable); under gevent that `select` switches to the hub and back, so each request
    waited for every other ready greenlet before it was written (and cost a watcher and two
    switches). A non-blocking peek at one byte answers the same question in one system call.
    """
    if sock is None or sock.fileno() < 0:
        return False
    try:
        sock._sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True  # nothing to read: idle and open
    except OSError:
        return False
    return False  # readable: the server closed it (b"") or sent bytes nobody asked for


def arrival(sock: Any, offset: float, now: float) -> float:
    """The arrival of `sock`'s last read on the perf clock (see `on_perf`)."""
    return on_perf(sock.stamp if type(sock) is _StampSocket else 0.0, offset, now)


def on_perf(stamp: float, offset: float, now: float) -> float:
    """A read's arrival on the perf clock: its kernel `stamp` mapped through `offset` (wall − perf),
    or `now` without one (or after a wall-clock step: never later than the read)."""
    if stamp:
        t = stamp - offset
        if t <= now:
            if len(READ_LAGS) < _READ_LAGS_MAX:
                READ_LAGS.append(now - t)
            return t
    return now
