"""The process's one reader (loadgen/transport/reader.py) against a real server: many streams at once,
each request's events in its own result; a timeout, a stopped user and a broken stream end only their
own request and leave nothing registered; the per-greenlet path (TLS, no epoll) records the same."""

from __future__ import annotations

import json
import urllib.request

import gevent
import pytest
from gevent.server import StreamServer

from core.result import StreamResult
from loadgen.transport import reader
from loadgen.transport.client import RawTransport
from loadgen.transport.ids import RequestIds
from tests.support.zoo.fixture import BODY, zoo_server

zoo = pytest.fixture(scope="module")(zoo_server)
IDS = RequestIds()

pytestmark = pytest.mark.skipif(not reader._EPOLL, reason="the reader needs Linux's epoll")


def sse(obj: object) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


def chat_pieces(tokens: list[str]) -> list[bytes]:
    """One piece (one write, one HTTP chunk) per event, as engines stream."""
    ch = lambda delta, fr=None: {"object": "chat.completion.chunk",  # noqa: E731
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": fr}]}  # fmt: skip
    return [
        sse(ch({"role": "assistant", "content": ""})),
        *(sse(ch({"content": t})) for t in tokens),
        sse(ch({}, "stop")),
        sse({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": len(tokens)}}),
        sse(b"[DONE]"),
    ]


def script(url: str, pieces: list[bytes], gap_s: float) -> str:
    rid = IDS.next()
    spec = json.dumps({"pieces": [p.hex() for p in pieces], "gap_s": gap_s}).encode()
    urllib.request.urlopen(
        urllib.request.Request(f"{url}/script/{rid}", data=spec, method="PUT"), timeout=5
    ).close()
    return rid


def send(t: RawTransport, rid: str, timeout_s: float = 10.0) -> StreamResult:
    return t.stream("/v1/chat/completions", dict(BODY, messages=[]), {"X-Request-Id": rid}, timeout_s)


def held() -> int:
    return len(reader._reader().bodies)


def test_one_reader_holds_many_streams_and_each_request_gets_its_own_events(zoo) -> None:
    n = 24
    tokens = {i: [f"s{i}t{j} " for j in range(6)] for i in range(n)}
    rids = {i: script(zoo.url, chat_pieces(tokens[i]), 0.02) for i in range(n)}
    transports = [RawTransport(f"{zoo.url}/script", None) for _ in range(n)]
    most = 0

    def watch() -> None:
        nonlocal most
        while True:
            most = max(most, held())
            gevent.sleep(0.005)

    watcher = gevent.spawn(watch)
    try:
        jobs = [gevent.spawn(send, transports[i], rids[i]) for i in range(n)]
        gevent.joinall(jobs, timeout=20, raise_error=True)
    finally:
        watcher.kill()
        for t in transports:
            t.close()
    for i, job in enumerate(jobs):
        res = job.value
        assert res is not None and not res.error, (i, res and res.error_detail)
        assert "".join(res.parts) == "".join(tokens[i]) and len(res.text_times) == 6
        assert res.text_times == sorted(res.text_times)
    assert most >= n // 2, f"at most {most} bodies were in the reader at once"
    assert held() == 0


def test_a_timeout_takes_its_body_back_and_the_transport_goes_on(zoo) -> None:
    t = RawTransport(f"{zoo.url}/script", None)
    try:
        # a gap before each piece: the role chunk at 0.5 s, "a" at 1.0 s, the timeout at 1.25 s
        res = send(t, script(zoo.url, chat_pieces(["a", "b", "c"]), 0.5), timeout_s=1.25)
        assert res.error == "timeout" and 1 <= len(res.text_times) < 3
        assert held() == 0
        again = send(t, script(zoo.url, chat_pieces(["d", "e"]), 0.0))
        assert not again.error and "".join(again.parts) == "de"
    finally:
        t.close()


def test_a_stopped_user_leaves_nothing_in_the_reader(zoo) -> None:
    t = RawTransport(f"{zoo.url}/script", None)
    try:
        job = gevent.spawn(send, t, script(zoo.url, chat_pieces(["a", "b", "c", "d"]), 0.3))
        with gevent.Timeout(5):
            while t.in_flight is None or not t.in_flight.text_times:
                gevent.sleep(0.01)
        assert held() == 1
        job.kill()  # as Locust stops a user: GreenletExit in the owner, asleep while the reader reads
        assert held() == 0
        assert t.in_flight.text_times and not t.in_flight.done  # what had arrived stays for the cancelled row
        again = send(t, script(zoo.url, chat_pieces(["e"]), 0.0))
        assert not again.error and "".join(again.parts) == "e"
    finally:
        t.close()


def test_a_broken_stream_fails_only_its_own_request(zoo) -> None:
    bad = chat_pieces(["a", "b", "c"])
    bad[2] = b"data: {not json\n\n"
    good_t, bad_t = RawTransport(f"{zoo.url}/script", None), RawTransport(f"{zoo.url}/script", None)
    try:
        good = gevent.spawn(send, good_t, script(zoo.url, chat_pieces(["x", "y", "z"]), 0.05))
        broken = gevent.spawn(send, bad_t, script(zoo.url, bad, 0.05))
        gevent.joinall([good, broken], timeout=10, raise_error=True)
    finally:
        good_t.close()
        bad_t.close()
    assert broken.value.error == "bad_sse" and "not json" in broken.value.error_detail
    assert not good.value.error and "".join(good.value.parts) == "xyz"
    assert held() == 0


def test_the_greenlet_path_records_what_the_reader_records(zoo, monkeypatch) -> None:
    tokens = ["p ", "q ", "r ", "s"]
    results = {}
    for path in ("reader", "greenlet"):
        monkeypatch.setattr(reader, "_EPOLL", path == "reader")
        t = RawTransport(f"{zoo.url}/script", None)
        try:
            results[path] = send(t, script(zoo.url, chat_pieces(tokens), 0.01))
        finally:
            t.close()
    a, b = results["reader"], results["greenlet"]
    for res in (a, b):
        assert not res.error and "".join(res.parts) == "".join(tokens)
    same = ("n_events", "n_bytes", "finish_reason", "usage", "done")
    assert {k: getattr(a, k) for k in same} == {k: getattr(b, k) for k in same}
    assert len(a.text_times) == len(b.text_times) == len(tokens)


@pytest.mark.parametrize("framing", ["chunked", "until-close"])
def test_an_answer_that_closes_its_connection_as_it_ends_is_complete(framing: str) -> None:
    """No [DONE], a finish_reason last, `Connection: close`: the HTTP parser closes the connection
    from inside the read that ends the message, before the reader stops watching it (the first
    version of the reader then failed to unregister the closed descriptor, died, and every such
    request waited for its timeout)."""
    events = chat_pieces(["hi", " there"])[:-2]  # the finish chunk last: no usage, no [DONE]

    def handle(sock, _addr) -> None:
        sock.recv(65536)
        framed = framing == "chunked"
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"
            + (b"Transfer-Encoding: chunked\r\n" if framed else b"")
            + b"\r\n"
        )
        for e in events:
            gevent.sleep(0.01)
            sock.sendall(b"%x\r\n%b\r\n" % (len(e), e) if framed else e)
        if framed:
            sock.sendall(b"0\r\n\r\n")
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    t = RawTransport(f"http://127.0.0.1:{server.server_port}", None)
    try:
        results = [t.stream("/v1/chat/completions", {"stream": True}, {}, 3.0) for _ in range(3)]
    finally:
        t.close()
        server.stop()
    for res in results:
        assert res.error == "" and "".join(res.parts) == "hi there" and res.finish_reason == "stop"
    assert held() == 0


def test_a_user_stopped_after_the_reader_read_its_whole_answer_keeps_it_complete(zoo, monkeypatch) -> None:
    """The reader ends a body, then wakes its owner on the hub's next turn; a stop (Locust kills the
    user's greenlet) scheduled in between reaches the owner first. The answer was complete: the
    result says so and is classified as one (loadgen/request.py then writes a complete row)."""
    t = RawTransport(f"{zoo.url}/script", None)
    job = None
    real_take = reader.Body.take

    def take_then_stop(body: reader.Body, data: bytes, t_read: float) -> bool:
        over = real_take(body, data, t_read)
        if over:
            job.kill(block=False)  # the stop is queued before the reader wakes the owner
        return over

    monkeypatch.setattr(reader.Body, "take", take_then_stop)
    try:
        job = gevent.spawn(send, t, script(zoo.url, chat_pieces(["a", "b"]), 0.01))
        job.join(timeout=5)
    finally:
        t.close()
    assert job.dead and isinstance(job.value, gevent.GreenletExit)  # stopped: stream() never returned
    res = t.in_flight
    assert res.read_to_end and res.done and not res.error and "".join(res.parts) == "ab"
    assert held() == 0
