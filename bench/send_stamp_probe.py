"""A Locust plugin for bench/send_stamp.py: every request's candidate send stamps, side by side.

Loaded after the real locustfile (`locust -f locustfile.py,bench/send_stamp_probe.py`), so the run is
an ordinary Goodput run whose rows carry the stamp Goodput uses (read right before the write of the
request's last byte). For each request it also records, on the same clock and in the same run:
- `before`: the stamp taken before the connection pool (which yields to the hub), Goodput's until
  the first 2026-12-04 change;
- `post`: the write's return, Goodput's until the second;
- `tx`: the kernel's software transmit stamp of the request's last write (SO_TIMESTAMPING,
  `SOF_TIMESTAMPING_TX_SOFTWARE`, read from the socket's error queue right after the write), and
  what reading it cost.
Each worker process writes `probe-<pid>.csv` (request_id, sent − before, post − sent, sent − tx, tx
read cost; seconds) into `$GOODPUT_STAMP_PROBE` when it quits. Bench code: it patches the client in
place.
"""

from __future__ import annotations

import os
import socket
import struct
import time
import weakref
from pathlib import Path
from typing import Any

from locust import events

from loadgen.transport import arrival, client

OUT = Path(os.environ.get("GOODPUT_STAMP_PROBE", "."))
_SO_TIMESTAMPING = 37  # also the cmsg type (SCM_TIMESTAMPING)
_TX_FLAGS = (1 << 1) | (1 << 4) | (1 << 11)  # TX_SOFTWARE | SOFTWARE | OPT_TSONLY
_MSG_ERRQUEUE = 0x2000
_TS = struct.Struct("qq")
perf_counter = time.perf_counter

# socket → (write's return, tx stamp (perf clock), tx read cost s)
_tx: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_last: tuple[float, float, float, float, float] | None = None
_lines: list[str] = []
_on: weakref.WeakSet = weakref.WeakSet()


def _read_tx(raw: socket.socket, post: float) -> float:
    """The newest transmit stamp on the error queue, mapped onto the perf clock; 0.0 if none yet."""
    found, wall = 0.0, time.time()
    for _ in range(16):
        try:
            _data, anc, _flags, _addr = raw.recvmsg(1, 256, _MSG_ERRQUEUE)
        except OSError:  # EAGAIN: drained
            break
        for level, kind, value in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPING and len(value) >= 16:
                sec, ns = _TS.unpack_from(value)
                found = sec + ns * 1e-9
    return post - (wall - found) if found else 0.0


_sendall = arrival._StampSocket.sendall


def sendall(self: Any, data: Any, flags: int = 0) -> None:
    if self not in _on:  # connected by now; transmit stamps without OPT_ID (refused before connect)
        self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPING, _TX_FLAGS)
        _on.add(self)
    _sendall(self, data, flags)
    post = perf_counter()
    tx = _read_tx(self._sock, post)
    _tx[self] = (post, tx, perf_counter() - post)


_sent_at = client.sent_at


def sent_at(http_client: Any, before: float) -> float:
    global _last
    sent = _sent_at(http_client, before)
    sock = getattr(http_client, "goodput_socket", None)
    post, tx, cost = _tx.get(sock, (sent, 0.0, 0.0)) if sock is not None else (sent, 0.0, 0.0)
    _last = (before, sent, post, tx, cost)
    return sent


_send = client.RawTransport._send


def _send_probe(self: Any, res: Any, path: str, payload: bytes, hdrs: dict[str, str]) -> Any:
    global _last
    _last = None
    resp = _send(self, res, path, payload, hdrs)
    if _last is not None:  # set by sent_at just before _send returned: no other greenlet ran since
        before, sent, post, tx, cost = _last
        rid = hdrs.get("X-Request-Id", "")
        tx_gap = (sent - tx) if tx else float("nan")
        _lines.append(f"{rid},{sent - before:.9f},{post - sent:.9f},{tx_gap:.9f},{cost:.9f}")
    return resp


arrival._StampSocket.sendall = sendall  # type: ignore[method-assign]
client.sent_at = sent_at
client.RawTransport._send = _send_probe  # type: ignore[method-assign]


@events.quitting.add_listener
def _write(**_: Any) -> None:
    if _lines:
        path = OUT / f"probe-{os.getpid()}.csv"
        path.write_text(
            "request_id,sent_minus_before_s,post_minus_sent_s,sent_minus_tx_s,tx_read_s\n"
            + "\n".join(_lines)
            + "\n"
        )
