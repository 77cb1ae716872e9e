"""When a request reached this host: the kernel's receive stamp, read beside the asyncio transport.

The engine's trace is the truth Goodput's own timing is measured against (bench/, tests): its
`t_arrival_unix` must say when the request's last byte arrived, not when this process's event loop
got to it. The loop writes a whole engine step's chunks (one per stream) in one callback, so a
request that arrives meanwhile waits for that burst — milliseconds at 1,000 streams — and a stamp
taken when it is parsed made the engine's TTFT that much shorter than the client's, the difference
counted as the client's error (bench/README.md § On a 16-core machine: all of the error at 4 and
8 workers was this).

asyncio's transports read with recv() and hand over bytes only. So each connection is read here
instead: its transport keeps writing (reading paused), and a duplicate of its descriptor is
watched by the loop and read with recvmsg(), whose SO_TIMESTAMPNS control message is the kernel's
stamp of the newest segment returned (the same stamp the client uses, loadgen/transport/arrival.py).
Where that is unavailable (not Linux, refused, `SIMSERVER_KERNEL_STAMPS=0`) the transport reads as
before and a request's arrival is when it was parsed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import time
from collections.abc import Callable

# 35 is SO_TIMESTAMPNS on x86/arm/generic Linux (Python has no constant).
_SO_TIMESTAMPNS = 35
_TS = struct.Struct("qq")
_READ = 64 * 1024  # below malloc's mmap threshold: a large body takes a few reads
KERNEL_STAMPS = sys.platform.startswith("linux") and os.environ.get("SIMSERVER_KERNEL_STAMPS", "1") != "0"
_keeper: socket.socket | None = None


def _pause(transport: asyncio.BaseTransport) -> None:
    if not transport.is_closing() and transport.is_reading():  # type: ignore[attr-defined]
        transport.pause_reading()  # type: ignore[attr-defined]


def keep_stamping_on() -> None:
    """Linux turns receive stamping on, deferred, when a first socket asks and off when the last one
    closes; one idle socket that asks for the life of the process keeps every request stamped."""
    global _keeper
    if _keeper is None and KERNEL_STAMPS:
        try:
            keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            keeper.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            _keeper = keeper
        except OSError:
            pass  # each connection still asks for stamps; the first requests may get the parse time


class StampedReader:
    """Reads one connection for its protocol: each read's bytes with the kernel's stamp of the newest."""

    __slots__ = ("_loop", "_on_data", "_on_eof", "_sock")

    def __init__(
        self, sock: socket.socket, on_data: Callable[[bytes, float], None], on_eof: Callable[[], None]
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = sock
        self._on_data, self._on_eof = on_data, on_eof  # on_data(bytes, when the newest reached this host)

    @classmethod
    def attach(
        cls,
        transport: asyncio.BaseTransport,
        on_data: Callable[[bytes, float], None],
        on_eof: Callable[[], None],
    ) -> StampedReader | None:
        """Take over reading `transport`'s socket; None (the transport keeps reading) where it cannot."""
        sock = transport.get_extra_info("socket")
        if not KERNEL_STAMPS or sock is None:
            return None
        keep_stamping_on()
        try:
            dup = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:
            return None
        try:
            dup.setblocking(False)
            dup.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            dup.close()
            return None
        reader = cls(dup, on_data, on_eof)
        transport.pause_reading()  # type: ignore[attr-defined]
        # uvloop starts reading once connection_made returns, whatever it was told in it: pause again
        # before the loop next polls (bytes the transport reads meanwhile get the parse time)
        reader._loop.call_soon(_pause, transport)
        reader._loop.add_reader(dup.fileno(), reader._readable)
        return reader

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data, anc, _flags, _addr = sock.recvmsg(_READ, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # reset by the peer: as the transport would, treat it as the end
            data, anc = b"", []
        if not data:
            self.close()
            self._on_eof()
            return
        stamp = 0.0
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                sec, ns = _TS.unpack_from(value)
                stamp = sec + ns * 1e-9
        self._on_data(data, stamp or time.time())

    def close(self) -> None:
        """Stop reading and close the duplicate (the transport closes the connection itself)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()
