"""Request ids that strict servers accept: UUIDs, version 7 (RFC 9562), unique across workers and runs.

Every request carries its id (`X-Request-Id` by default) so rows join with the server's logs and
the simulated engine's trace. Servers and gateways that validate that header accept a UUID and
refuse anything else (a 400 with an empty body, seen in practice), so the id is one. Version 7
puts the Unix time in milliseconds first, so ids sort by send time; Python 3.11 has no uuid7, so
the RFC's layout is built here:

    48 bits unix_ts_ms | 4 bits version (7) | 12 bits rand_a | 2 bits variant (10) | 62 bits rand_b

rand_a and the top 14 bits of rand_b are a 26-bit counter (RFC 9562 §6.2, method 1), started at a
random value each millisecond and incremented within it, so one process's ids are strictly
increasing; the low 48 bits of rand_b are this process's random mark (os.urandom), the same in all
its ids: two processes (workers, runs) differ in it, and a worker's requests can be found in a
server's log by the id's last group (`worker_mark`).

The header is `X-Request-Id` unless `--request-id-header NAME|none` says otherwise (`none`: no
header is sent, the row still keeps its id).

`--session-header NAME` sends, beside it, the conversation's id as a session-aware client or agent
harness does: a router that keeps a session on one replica (vllm-router's `consistent_hash` reads
`X-Session-Id`, an Envoy ring hash a header named in its route) then sees each conversation, not each
request. Without it such a router hashes what it finds — vllm-router takes `X-Request-Id` next, new on
every request, so a conversation's turns land anywhere. The value is unique per client session: the
conversation, the user that plays it and this process's mark.
"""

from __future__ import annotations

import os
import re
import time

from core.errors import OptionError

DEFAULT_HEADER = "X-Request-Id"
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP field name (RFC 9110 §5.1)

_COUNTER_BITS = 26
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_MARK_BITS = 48


class RequestIds:
    """The id generator of one load process, and the header that carries the ids (None: no header)."""

    def __init__(self, mark: int | None = None, header: str | None = DEFAULT_HEADER) -> None:
        self.header = header
        self.session_header: str | None = None  # --session-header (None: no session header)
        self.mark = int.from_bytes(os.urandom(6), "big") if mark is None else mark & ((1 << _MARK_BITS) - 1)
        self._ms = 0
        self._counter = 0

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms > self._ms:
            # a random start leaves most of the counter's range for this millisecond (RFC 9562 §6.2)
            self._ms, self._counter = ms, int.from_bytes(os.urandom(4), "big") >> (32 - _COUNTER_BITS + 1)
        elif self._counter < _COUNTER_MAX:
            self._counter += 1  # same millisecond, or the clock stepped back: keep counting
        else:
            self._ms, self._counter = self._ms + 1, 0  # counter exhausted: borrow the next millisecond
        c = self._counter
        rand_a = c >> 14
        rand_b = ((c & 0x3FFF) << _MARK_BITS) | self.mark
        value = (self._ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def headers(self, request_id: str, session: str = "", user: int | str = "") -> dict[str, str]:
        """The header(s) that carry `request_id` (none when the header is switched off) and, with a
        session header, the client session of user `user` playing conversation `session`."""
        out = {self.header: request_id} if self.header else {}
        if self.session_header and session:
            out[self.session_header] = f"{session}.u{user}.{self.mark:012x}"
        return out


def worker_mark(request_id: str) -> str:
    """The part of an id that names the process that sent it (the last group, with its dash)."""
    return "-" + request_id.rpartition("-")[2]


def request_id_header(
    value: str, option: str = "--request-id-header", example: str = DEFAULT_HEADER
) -> str | None:
    """`--request-id-header` (or `option`): the header name, or None for `none` (no such header is sent)."""
    name = str(value).strip()
    if name.lower() == "none":
        return None
    if not _TOKEN.match(name):
        raise OptionError(
            f"{option}: '{value}' is not an HTTP header name (expected e.g. {example}, or none)"
        )
    return name


def session_header(value: str) -> str | None:
    """`--session-header`: the header name, or None for `none` (the default)."""
    return request_id_header(value, "--session-header", "X-Session-Id")
