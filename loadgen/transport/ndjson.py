"""Newline-delimited JSON framing: the other way servers stream, cut with the event parser's interface.

Ollama's native routes (`/api/chat`, `/api/generate`) answer `stream: true` not with server-sent
events but with one JSON object per line (`application/x-ndjson`: Go's `json.Encoder` writes each
object and a `\\n`, and the handler flushes after each). An API whose `Api.framing` is `LineStream`
has its body cut here instead of by eventstream.py; everything after the cut — the stamp taken
before, the API's `fold` after — is the same, so both framings are timed alike.

A line is an event of type `message` whose data is the line; a CR before the LF is dropped, blank
lines are skipped; bytes after the last LF when the body ends are not an event (as with SSE: an
object the server never finished is not a chunk). Works in place on the raw transport's growing
body buffer, like `EventStream`, and copies nothing but each line.
"""

from __future__ import annotations

from loadgen.transport.eventstream import MESSAGE, Cutter, Event


class LineStream(Cutter):
    """The NDJSON cutter, with `EventStream`'s interface (eventstream.py `Cutter`)."""

    __slots__ = ()

    def next_event(self) -> Event | None:
        buf, pos = self.buf, self.pos
        while True:
            end = buf.find(b"\n", pos)
            if end < 0:
                self.pos = pos
                return None
            stop = end - 1 if end > pos and buf[end - 1] == 13 else end  # a CR before the LF
            line, pos = buf[pos:stop], end + 1
            if line.strip():
                self.pos = pos
                return MESSAGE, line
