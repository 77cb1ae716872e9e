"""Server-sent events framing, as the WHATWG HTML standard interprets an event stream: one parser
for every transport.

Real servers differ in framing: sse-starlette (llama-cpp-python) ends lines with CRLF by default and
may use CR alone; TGI's axum writes `data:` without a space; keep-alive comments (`: ping`) arrive
between events; a reverse proxy cuts events anywhere, even between the CR and the LF of one line
end. Cutting events on `\\n\\n` alone loses whole streams; this parser follows the standard's
"event stream interpretation" (html.spec.whatwg.org, server-sent events §9.2.6):

- lines end in CRLF, LF or CR, mixed freely; a CR at the end of one read and an LF at the start of
  the next are one line end;
- one leading UTF-8 BOM is dropped; a line starting with `:` is a comment;
- `field: value` (one space after the colon is dropped, so `data:x` and `data: x` are equal);
  `data` lines are joined with LF, `event` sets the type, `id` and `retry` are kept, other fields
  are ignored, except llama.cpp's non-standard `error:` field, read as an `error` event so a failure
  reported that way keeps its message;
- a blank line dispatches the event; an event without data is no event; bytes after the last blank
  line when the stream ends are not an event.

It works in place on a growing bytearray (the raw transport's HTTP body buffer; `feed` appends for
the others) and copies nothing but each event's data. The common event, one `data: {...}` line
ending in LF LF, is cut by a fast path of three `find`s; everything else takes the line-by-line path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MESSAGE = "message"  # the type of an event without an `event:` field
ERROR = "error"
_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"[\r\n]")
_CR, _LF, _COLON = 13, 10, 58

Event = tuple[str, bytes | bytearray]


class Cutter:
    """What every framing's incremental cutter shares (this module's SSE one, ndjson.py's lines): a
    growing byte buffer read from `pos` on, `next_event()` → the next complete (type, data) or None
    (more bytes needed), and `compact()`, which drops what was consumed (call it before more bytes are
    appended, not between the events of one read)."""

    __slots__ = ("buf", "consumed", "pos")

    def __init__(self, buf: bytearray | None = None) -> None:
        self.buf: bytearray = bytearray() if buf is None else buf
        self.pos = 0
        self.consumed = 0  # bytes consumed before the last compact()

    def feed(self, data: bytes) -> None:
        self.buf += data

    def compact(self) -> None:
        if self.pos:
            del self.buf[: self.pos]
            self.consumed += self.pos
            self.pos = 0

    @property
    def total(self) -> int:
        """Bytes of the stream received so far (what was cut into events, and what waits to be)."""
        return self.consumed + len(self.buf)

    def events(self) -> Iterator[Event]:
        """Every event the bytes so far complete."""
        while (ev := self.next_event()) is not None:
            yield ev

    def next_event(self) -> Event | None:
        raise NotImplementedError


class EventStream(Cutter):
    """The SSE cutter: `last_id` and `retry_ms` follow the standard."""

    __slots__ = ("_bom", "_clean", "_data", "_skip_lf", "_type", "last_id", "retry_ms")

    def __init__(self, buf: bytearray | None = None) -> None:
        super().__init__(buf)
        self.last_id = b""
        self.retry_ms: int | None = None
        self._data: list[bytes | bytearray] = []
        self._type: bytes | bytearray = b""
        self._skip_lf = False  # the last line ended in CR at the end of the bytes: an LF next is part of it
        self._bom = True  # at the start of the stream: a BOM may come
        self._clean = False  # no partial event, no BOM or LF pending: the fast path may run

    def next_event(self) -> Event | None:
        if self._clean:
            buf, pos = self.buf, self.pos
            if pos == len(buf):
                return None  # all consumed: the common case after the last event of a read
            end = buf.find(b"\n\n", pos)
            if end < 0:
                if buf.find(b"\r", pos) < 0:
                    return None  # no blank line yet: the lines wait, unparsed, until one comes
            elif (
                end > pos
                and buf.startswith(b"data: ", pos)
                and buf.find(b"\n", pos, end) < 0
                and buf.find(b"\r", pos, end) < 0
            ):
                self.pos = end + 2
                return MESSAGE, buf[pos + 6 : end]
        return self._lines()

    def _lines(self) -> Event | None:
        """The standard, line by line, until an event is dispatched or no complete line is left."""
        buf, pos, n = self.buf, self.pos, len(self.buf)
        event = None
        while event is None:
            if self._skip_lf:
                if pos >= n:
                    break
                if buf[pos] == _LF:
                    pos += 1
                self._skip_lf = False
            if self._bom:
                if n - pos < 3 and _BOM.startswith(buf[pos:n]):
                    break  # too few bytes to tell
                if buf.startswith(_BOM, pos):
                    pos += 3
                self._bom = False
            m = _LINE_END.search(buf, pos)
            if m is None:
                break
            i = m.start()
            line = buf[pos:i]
            pos = i + 1
            if buf[i] == _CR:
                if pos < n:
                    if buf[pos] == _LF:
                        pos += 1
                else:
                    self._skip_lf = True
            if line:
                self._field(line)
            else:
                event = self._dispatch()
        self.pos = pos
        self._clean = not (self._data or self._type or self._skip_lf or self._bom)
        return event

    def _field(self, line: bytearray) -> None:
        if line[0] == _COLON:
            return  # a comment
        colon = line.find(b":")
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._type = value
        elif name == b"id":
            if b"\0" not in value:
                self.last_id = bytes(value)
        elif name == b"retry":
            if value.isdigit():
                self.retry_ms = int(value)
        elif name == b"error":  # llama.cpp (2025 builds): `error: {...}` instead of an error event
            self._type = b"error"
            self._data.append(value)

    def _dispatch(self) -> Event | None:
        data, etype = self._data, self._type
        self._data, self._type = [], b""
        if not data:
            return None
        name = etype.decode("utf-8", "replace") if etype else MESSAGE
        return name, data[0] if len(data) == 1 else b"\n".join(data)


def parse(chunks: list[bytes]) -> list[tuple[str, bytes]]:
    """All events of a whole stream delivered in `chunks` (tests, the property check, one-off uses)."""
    p = EventStream()
    out = []
    for c in chunks:
        p.compact()
        p.feed(c)
        out.extend((t, bytes(d)) for t, d in p.events())
    return out
