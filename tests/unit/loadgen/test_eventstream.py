"""The event-stream parser (loadgen/transport/eventstream.py) against the standard, by property: one
logical stream rendered every way servers render it (LF, CRLF, CR, mixed; comments, a BOM, field
order, unknown fields, `data:` with or without the space) and cut at any read boundaries gives the
same events; and through the real clients against a real server that writes those bytes in those
pieces, the same records, each event stamped no earlier than the write that completed it."""

from __future__ import annotations

import itertools
import json
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import clock
from core.measure import fill_record
from core.record import RequestRecord
from loadgen.transport.client import RawTransport
from loadgen.transport.eventstream import EventStream, parse
from loadgen.transport.ids import RequestIds
from loadgen.transport.sdk import OpenAITransport
from tests.support.zoo.fixture import BODY, truth, zoo_server

zoo = pytest.fixture(scope="module")(zoo_server)
IDS = RequestIds()
EOLS = [b"\n", b"\r\n", b"\r"]
# a data value: no CR/LF (a line cannot hold them), anything else, multi-byte UTF-8 included
VALUE = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12)
NAME = st.text("abcdefghijklmnopqrstuvwxyz.", min_size=1, max_size=8)


@st.composite
def logical_events(draw: st.DrawFn) -> list[tuple[str | None, list[str]]]:
    """Events as the application meant them: an optional type and one or more data lines."""
    n = draw(st.integers(1, 5))
    return [(draw(st.none() | NAME), draw(st.lists(VALUE, min_size=1, max_size=3))) for _ in range(n)]


def expected(events: list[tuple[str | None, list[str]]]) -> list[tuple[str, bytes]]:
    return [(t or "message", "\n".join(lines).encode()) for t, lines in events]


@st.composite
def rendering(draw: st.DrawFn, events: list[tuple[str | None, list[str]]]) -> bytes:
    """The bytes of `events` in a style drawn at random, per line where servers may differ per line."""
    style = draw(st.sampled_from(["lf", "crlf", "cr", "mixed"]))
    eol = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}.get(style)

    def end(blank: bool = False) -> bytes:
        e = eol or draw(st.sampled_from(EOLS))
        if blank and e == b"\n" and out and out[-1].endswith(b"\r"):
            e = b"\r\n"  # CR, then an LF alone, is one line end (CRLF), not a line end and a blank line
        return e

    def comment() -> bytes:
        return b":" + draw(VALUE).encode() + end()

    out = [b"\xef\xbb\xbf"] if draw(st.booleans()) else []
    for etype, lines in events:
        if draw(st.booleans()):
            c = comment()
            out.append(c)
            out.append(end(blank=True))  # a comment-only block: no event
        fields = [
            b"data:" + (b" " if draw(st.booleans()) or v.startswith(" ") else b"") + v.encode() for v in lines
        ]
        extra = []
        if etype is not None:
            extra.append(b"event: " + etype.encode())
        if draw(st.booleans()):
            extra.append(b"id: " + draw(NAME).encode())
        if draw(st.booleans()):
            extra.append(b"retry: " + str(draw(st.integers(0, 30000))).encode())
        if draw(st.booleans()):
            extra.append(draw(st.sampled_from([b"foo: bar", b"x-trace", b"data-ish: 1"])))  # unknown fields
        for f in extra:  # fields go anywhere among the data lines; data lines keep their order
            fields.insert(draw(st.integers(0, len(fields))), f)
        for f in fields:
            if draw(st.integers(0, 4)) == 0:
                out.append(comment())
            out.append(f + end())
        out.append(end(blank=True))  # the blank line that dispatches
    return b"".join(out)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_rendering_cut_anywhere_gives_the_same_events(data: st.DataObject) -> None:
    events = data.draw(logical_events())
    raw = data.draw(rendering(events))
    points = data.draw(st.lists(st.integers(0, 10**6), max_size=12))
    assert parse(cut(raw, points)) == expected(events)
    assert parse([bytes([b]) for b in raw]) == expected(events)  # one byte per read, every split at once


def test_the_standard_examples_and_edges() -> None:
    """The standard's own examples (html.spec.whatwg.org §9.2.6) and the edges around them."""
    assert parse([b"data: YHOO\ndata: +2\ndata: 10\n\n"]) == [("message", b"YHOO\n+2\n10")]
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
    assert parse([stream]) == [
        ("message", b"first event"),
        ("message", b"second event"),
    ]  # the third: no blank
    assert parse([b"data\n\ndata\ndata\n\ndata:\n"]) == [("message", b""), ("message", b"\n")]
    assert parse([b"data:test\n\ndata: test\n\n"]) == [("message", b"test")] * 2
    assert parse([b"event: add\ndata: 73857293\n\n"]) == [("add", b"73857293")]
    p = EventStream()
    p.feed(b"id: 7\nretry: 1500\nretry: x\nid: a\x00b\n\n")
    assert list(p.events()) == [] and (p.last_id, p.retry_ms) == (b"7", 1500)  # no data: no event
    assert parse([b"data: a\r", b"\n", b"\ndata: b\r\r"]) == [("message", b"a"), ("message", b"b")]
    assert parse([b"\xef\xbb", b"\xbfdata: x\n\n\xef\xbb\xbfdata: y\n\n"]) == [
        ("message", b"x")
    ]  # one BOM only
    assert parse([b'error: {"message": "m"}\n\n']) == [("error", b'{"message": "m"}')]  # llama.cpp's field


def test_an_event_larger_than_a_read_and_the_fast_path_buffer() -> None:
    big = b"data: " + b"x" * 200_000 + b"\r\n\r\n"
    assert parse([big[i : i + 65536] for i in range(0, len(big), 65536)]) == [("message", b"x" * 200_000)]
    buf = bytearray(b'data: {"a":1}\n\ndata: {"b":2}\n\ndata: {"c"')
    p = EventStream(buf)  # in place, as on the raw transport's buffer
    assert [bytes(d) for _, d in p.events()] == [b'{"a":1}', b'{"b":2}']
    p.compact()
    assert buf == b'data: {"c"' and p.total == 40  # every byte received, cut into events or not
    buf += b":3}\n\n"
    assert [bytes(d) for _, d in p.events()] == [b'{"c":3}'] and p.total == 45


# -- through the clients and a real server ------------------------------------------------------


def openai_stream(tokens: list[str]) -> list[tuple[str | None, list[str]]]:
    """A chat stream as logical events: role chunk, one chunk per token, finish, usage, [DONE]."""

    def ch(delta: dict | None, finish: str | None = None, **kw: object) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return json.dumps({"object": "chat.completion.chunk", "choices": choices, **kw})

    evs: list[tuple[str | None, list[str]]] = [(None, [ch({"role": "assistant", "content": ""})])]
    evs += [(None, [ch({"content": t})]) for t in tokens]
    evs += [(None, [ch({}, "stop")])]
    evs += [
        (None, [ch(None, usage={"prompt_tokens": 3, "completion_tokens": len(tokens)})]),
        (None, ["[DONE]"]),
    ]
    return evs


def run(url: str, kind: str, pieces: list[bytes]) -> tuple[RequestRecord, list[float], dict]:
    rid = IDS.next()
    spec = json.dumps({"pieces": [p.hex() for p in pieces], "gap_s": 0.001}).encode()
    req = urllib.request.Request(f"{url}/script/{rid}", data=spec, method="PUT")
    urllib.request.urlopen(req, timeout=5).close()
    t = RawTransport(f"{url}/script", None) if kind == "raw" else OpenAITransport(f"{url}/script", None)
    wall, perf = clock.wall_and_perf()
    try:
        res = t.stream("/v1/chat/completions", dict(BODY, messages=[]), {"X-Request-Id": rid}, 10.0)
    finally:
        t.close()
    rec = RequestRecord()
    fill_record(rec, res)
    return rec, [x + wall - perf for x in res.text_times], truth(url, rid)


def completing_piece(pieces: list[bytes], raw: bytes, tokens: list[str]) -> list[int]:
    """For each token's event, the index of the piece whose write completed it (its blank line)."""
    ends, p = [], EventStream()
    for i, piece in enumerate(pieces):
        p.feed(piece)
        for _, d in p.events():
            if b'"content": "' in d and b'"role"' not in d:
                ends.append(i)
    assert len(ends) == len(tokens)
    return ends


@pytest.mark.parametrize("kind", ["raw", "openai"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_clients_record_the_same_request_however_it_is_framed_and_cut(zoo, kind: str, data) -> None:
    tokens = data.draw(st.lists(st.text("abc xyz", min_size=1, max_size=4), min_size=1, max_size=5))
    events = openai_stream(tokens)
    plain = lf_render(events)
    raw = data.draw(rendering(events))
    pieces = cut(raw, data.draw(st.lists(st.integers(0, 10**6), max_size=8)))
    base, _, _ = run(zoo.url, kind, [plain])
    rec, stamps, told = run(zoo.url, kind, pieces)
    same = ("ok", "error", "error_detail", "n_chunks", "output_tokens", "tokens_source", "finish_reason")
    assert {k: getattr(rec, k) for k in same} == {k: getattr(base, k) for k in same}
    assert rec.ok and rec.n_chunks == len(tokens)
    assert stamps == sorted(stamps)
    slack = 0.0005 if kind == "raw" else 0.0  # the wall ↔ perf mapping; user-space stamps come later still
    for t, i in zip(stamps, completing_piece(pieces, raw, tokens), strict=True):
        assert t >= told["writes_unix"][i] - slack, "an event stamped before the write that completed it"


def lf_render(events: list[tuple[str | None, list[str]]]) -> bytes:
    return b"".join(b"".join(b"data: " + v.encode() + b"\n" for v in lines) + b"\n" for _, lines in events)


NOT_STREAMED = json.dumps({
    "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"},
    "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}).encode()  # fmt: skip


@pytest.mark.parametrize("kind", ["raw", "openai"])
@pytest.mark.parametrize(
    ("content_type", "body", "error", "detail"),
    [
        (
            "application/json",
            NOT_STREAMED,
            "bad_sse",
            "not an event stream: a {n}-byte application/json answer",
        ),
        ("text/html; charset=utf-8", b"<html><body>Sign in</body></html>", "bad_sse", "a {n}-byte text/html"),
        # labelled a stream, bytes but no event (a comment), then the end: a stream cut short
        ("text/event-stream", b": ping\n\n", "disconnect", "stream ended before a finish_reason or [DONE]"),
    ],
)
def test_a_200_that_is_no_event_stream_says_so(
    zoo, kind: str, content_type: str, body: bytes, error: str, detail: str
) -> None:
    """A server that answers stream=true in one piece, or a page that answers instead of the server,
    is no stream at all: `bad_sse` saying so (and what came), not `disconnect` (the network)."""
    rid = IDS.next()
    spec = json.dumps({"pieces": [body.hex()], "content_type": content_type}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{zoo.url}/script/{rid}", data=spec, method="PUT"), timeout=5
    ).close()
    t = (
        RawTransport(f"{zoo.url}/script", None)
        if kind == "raw"
        else OpenAITransport(f"{zoo.url}/script", None)
    )
    try:
        res = t.stream("/v1/chat/completions", dict(BODY, messages=[]), {"X-Request-Id": rid}, 10.0)
    finally:
        t.close()
    assert (res.status, res.error) == (200, error), res.error_detail
    assert detail.format(n=len(body)) in res.error_detail and res.n_bytes == len(body), res.error_detail
