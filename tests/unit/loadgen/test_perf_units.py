"""Unit tests of the load generator's own performance work: kernel receive stamps, cheap ITL
logging and formatting, and the self-measurement's merge of seconds into saturated windows."""

from __future__ import annotations

import socket
import sys
import time

import gevent
import gevent.socket
import pytest
from gevent.server import StreamServer
from locust.stats import RequestStats

from core import clock
from core.record import RequestRecord, _gaps
from loadgen.monitors.selfjudge import Aggregate, pct
from loadgen.state.iofirst import IoFirst
from loadgen.state.livestats import METHOD, log_many
from loadgen.transport import arrival, client

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="kernel receive stamps are Linux's")


def _block(seconds: float) -> None:
    """Hold the event loop (time.sleep may be gevent's once Locust has patched the process)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _event(text: str) -> bytes:
    data = (
        b'data: {"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n' % text.encode()
    )
    return b"%x\r\n%b\r\n" % (len(data), data)


class SseServer:
    """Streams two tokens, holding the whole event loop (as a busy client process would) for
    `block_s` after each write (`together=False`: the client reads each token late) or after both
    (`together=True`: one read takes both). Records when each token was written."""

    def __init__(self, block_s: float, together: bool = False) -> None:
        self.block_s, self.together = block_s, together
        self.written: list[float] = []
        self.server = StreamServer(("127.0.0.1", 0), self.handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def handle(self, sock: socket.socket, _addr: tuple) -> None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += sock.recv(65536)
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        gevent.sleep(0.02)
        for text in ("a", "b"):
            self.written.append(time.time())
            sock.sendall(_event(text))
            if not self.together:
                _block(self.block_s)  # the client cannot read meanwhile
                gevent.sleep(0.01)  # now it reads, late
        if self.together:
            _block(self.block_s)
            gevent.sleep(0.01)  # the client reads both before [DONE] comes
        done = b"data: [DONE]\n\n"
        sock.sendall(b"%x\r\n%b\r\n0\r\n\r\n" % (len(done), done))
        gevent.sleep(0.05)


def _stream(
    server: SseServer | ArrivalServer, warm: bool = False, hold_s: float = 0.0
) -> tuple[client.StreamResult, float, client.RawTransport]:
    """One streamed request to `server`, which then stops: the result, the wall − perf offset read
    right before it, and the transport. `warm`: after a first request on the same kept-alive
    connection; `hold_s`: a greenlet holds the loop that long at the client's first yield."""
    transport = client.RawTransport(server.url, None)
    gevent.sleep(0.1)  # the kernel turns receive stamping on a moment after the first socket asks
    try:
        if warm:
            first = transport.stream("/v1/chat/completions", {"stream": True}, {}, 10.0)
            assert first.error == "" and first.text == "a"
        if hold_s:
            gevent.spawn(_block, hold_s)  # runs at the client's first yield, before its write
        wall, perf = clock.wall_and_perf()
        res = transport.stream("/v1/chat/completions", {"stream": True}, {}, 10.0)
    finally:
        transport.close()
        server.server.stop()
    return res, wall - perf, transport


@linux
def test_a_token_read_late_keeps_its_arrival_time() -> None:
    """The loop is held 40 ms after each write; the stamps are still the arrival times."""
    server = SseServer(block_s=0.04)
    res, offset, _ = _stream(server)
    assert res.error == "" and res.done and res.text == "ab"
    for t, written in zip(res.text_times, server.written, strict=True):
        assert 0 <= t + offset - written < 0.002, (t + offset - written, "arrival, not the read 40 ms later")


@linux
def test_tokens_read_together_get_the_later_arrival_never_an_earlier_one() -> None:
    """Both tokens wait in the kernel until one read takes them: the kernel keeps one stamp, the
    newest, so the first token is late by the gap (the saturation windows flag such stalls)."""
    server = SseServer(block_s=0.03, together=True)
    res, offset, _ = _stream(server)
    assert res.text == "ab"
    first, second = (t + offset for t in res.text_times)
    assert first == second
    assert 0 <= second - server.written[1] < 0.002
    assert first >= server.written[0]


class ArrivalServer:
    """Answers every request on a kept-alive connection with one token, and records when each
    request's last byte reached this host: the kernel's receive stamp, not when this (shared) loop
    read it."""

    def __init__(self) -> None:
        self.arrived: list[float] = []
        self.server = StreamServer(("127.0.0.1", 0), self.handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def handle(self, sock: socket.socket, _addr: tuple) -> None:
        sock.setsockopt(socket.SOL_SOCKET, arrival._SO_TIMESTAMPNS, 1)
        buf, stamp = b"", 0.0
        while True:
            while b"\r\n\r\n" not in buf:
                data, anc, _flags, _addr2 = sock.recvmsg(65536, 64)
                if not data:
                    return
                buf += data
                for level, kind, value in anc:
                    if level == socket.SOL_SOCKET and kind == arrival._SO_TIMESTAMPNS:
                        sec, ns = arrival._TS.unpack_from(value)
                        stamp = sec + ns * 1e-9
            buf = buf[
                buf.index(b"\r\n\r\n") + 4 + int(buf.lower().split(b"content-length: ")[1].split(b"\r")[0]) :
            ]
            self.arrived.append(stamp)
            done = b"data: [DONE]\n\n"
            sock.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                + _event("a")
                + b"%x\r\n%b\r\n0\r\n\r\n" % (len(done), done)
            )


@linux
def test_send_is_stamped_when_the_request_was_written_not_when_the_client_set_out() -> None:
    """A greenlet that holds the loop 50 ms at the client's first yield must not move the send stamp
    off the request's arrival (until 2026-12-05 that yield came before the write, in the pool's
    check of the kept-alive connection, and the stamp taken before it made the TTFT 50 ms too long)."""
    server = ArrivalServer()
    res, offset, _ = _stream(server, warm=True, hold_s=0.05)
    assert res.error == "" and res.text == "a" and len(server.arrived) == 2
    sent_unix = res.t_send + offset
    assert -0.002 < server.arrived[1] - sent_unix < 0.002, (
        server.arrived[1] - sent_unix,
        "send stamp vs arrival",
    )


@linux
def test_a_kept_alive_connection_is_written_without_a_yield_to_the_hub() -> None:
    """geventhttpclient checks a pooled connection with a zero-timeout `select`, which under gevent
    runs every other ready greenlet before the request is written; the check that replaces it
    (`arrival._idle_and_open`) is one non-blocking peek."""
    server = ArrivalServer()
    transport = client.RawTransport(server.url, None)
    ran_at: list[float] = []
    try:
        first = transport.stream("/v1/chat/completions", {"stream": True}, {}, 10.0)
        assert first.error == ""
        gevent.spawn(lambda: ran_at.append(time.perf_counter()))
        res = transport.stream("/v1/chat/completions", {"stream": True}, {}, 10.0)
    finally:
        transport.close()
        server.server.stop()
    assert res.error == "" and len(server.arrived) == 2 and transport.reused
    assert ran_at and ran_at[0] > res.t_send, "another greenlet ran between setting out and the write"


def test_a_pooled_connection_the_server_closed_or_wrote_to_is_not_reused() -> None:
    for peer_does in ("nothing", "close", "write"):
        a, b = socket.socketpair()
        ours = arrival._StampSocket(fileno=a.detach())
        if peer_does == "close":
            b.close()
        elif peer_does == "write":
            b.sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        gevent.sleep(0.01)
        assert arrival._idle_and_open(ours) is (peer_does == "nothing"), peer_does
        ours.close()
        assert not arrival._idle_and_open(ours)
        if peer_does != "close":
            b.close()


class _PreemptedAfterWrite(gevent.socket.socket._gevent_sock_class):  # type: ignore[name-defined]
    """A raw socket whose writes return 30 ms late, as when the server the write woke took the core."""

    def send(self, data: bytes, flags: int = 0) -> int:
        n = super().send(data, flags)
        _block(0.03)
        return n


class _LateReturningSocket(arrival._StampSocket):
    _gevent_sock_class = _PreemptedAfterWrite


@linux
def test_send_stamp_precedes_the_servers_arrival_when_the_write_returns_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client descheduled right after its write (the server it woke took the core) must not stamp
    the send then: its TTFT would come out below the engine's (a stamp on the write's return was
    30 ms late here, and >10 ms once in CI with vLLM sharing two cores)."""
    monkeypatch.setattr(arrival, "_StampSocket", _LateReturningSocket)
    server = ArrivalServer()
    res, offset, transport = _stream(server)
    assert res.error == "" and res.text == "a" and len(server.arrived) == 1
    assert type(transport.client.goodput_socket) is _LateReturningSocket
    early = server.arrived[0] - (res.t_send + offset)
    assert -0.0005 <= early < 0.002, (early, "send stamp before the arrival of the request's last byte")


def test_stamps_fall_back_to_the_read_time_without_kernel_stamps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrival, "KERNEL_STAMPS", False)
    server = SseServer(block_s=0.04)
    res, offset, _ = _stream(server)
    assert res.text == "ab"
    assert res.text_times[0] + offset - server.written[0] >= 0.035, "read after the 40 ms hold, stamped then"


def test_wall_and_perf_pair_is_tight() -> None:
    w, p = clock.wall_and_perf()
    assert abs((time.time() - time.perf_counter()) - (w - p)) < 0.001


def test_log_many_is_log_for_each_value() -> None:
    values = [0.4, 12.6, 99.4, 99.6, 150.0, 1234.0, 45678.0, 3.0]
    one, many = RequestStats(use_response_times_cache=True), RequestStats(use_response_times_cache=True)
    for v in values:
        one.get("ITL", METHOD).log(v, 0)
    log_many(many.get("ITL", METHOD), values)
    a, b = one.get("ITL", METHOD), many.get("ITL", METHOD)
    for attr in ("num_requests", "total_response_time", "min_response_time", "max_response_time",
                 "response_times", "total_content_length", "num_failures"):  # fmt: skip
        assert getattr(a, attr) == getattr(b, attr), attr
    assert sum(a.num_reqs_per_sec.values()) == sum(b.num_reqs_per_sec.values()) == len(values)


def test_itl_column_format_is_unchanged() -> None:
    gaps = [0.0123456789, 0.02, 1.5, 0.0]
    assert _gaps(gaps) == ";".join(f"{g:.6f}" for g in gaps) == "0.012346;0.020000;1.500000;0.000000"
    assert _gaps([]) == ""
    rec = RequestRecord(itl_s=gaps)
    assert rec.row()[15] == _gaps(gaps)


def _sec(t0: float, lag: list[float], cpu: float, t1: float | None = None) -> dict:
    return {"t0": t0, "t1": t0 + 1.0 if t1 is None else t1, "lag": lag, "read": [0.1], "cpu": cpu}


CALM = [0.2] * 99 + [30.0]  # one hiccup: p99 calm
STALL = [0.2] * 60 + [400.0]  # one long stall: a stall second, not saturation
HOT = [0.2] * 90 + [25.0] * 10  # p99 25 ms


def test_saturation_needs_sustained_lag_and_a_busy_process() -> None:
    """Saturated: 3 seconds in a row whose pooled lag p99 > threshold at ≥ 50 % CPU. Not: one stall,
    lag while the process idles (the host is busy elsewhere), the start-up or the shutdown."""
    agg = Aggregate(threshold_ms=10.0)
    agg.steady_from, agg.steady_until = 100.0, 130.0
    recs = [
        _sec(96.0, HOT, 95.0), _sec(97.0, HOT, 95.0), _sec(98.0, HOT, 95.0), _sec(99.0, HOT, 95.0),  # start-up
        _sec(100.0, CALM, 20.0), _sec(101.0, STALL, 20.0), _sec(102.0, CALM, 20.0),  # one stall
        _sec(104.0, HOT, 3.0), _sec(105.0, HOT, 3.0), _sec(106.0, HOT, 3.0),  # lag at 3 % CPU: not ours
        _sec(108.0, HOT, 95.0), _sec(109.0, HOT, 95.0),  # two hot seconds, then a gap: not sustained
        _sec(111.0, HOT, 90.0), _sec(112.0, [], 100.0, 113.4), _sec(113.4, HOT, 90.0), _sec(114.4, HOT, 90.0),
        _sec(128.0, HOT, 95.0), _sec(129.0, HOT, 95.0), _sec(130.0, HOT, 95.0),  # the last crosses the stop
    ]  # fmt: skip
    hot = agg.add("w1", recs)
    assert [(h["t0"], h["t1"]) for h in hot] == [(111.0, 114.4), (112.0, 115.4)]
    assert hot[0]["lag_p99_ms"] == 25.0 and hot[0]["cpu_percent"] == 93.3 and hot[0]["span_s"] == 3
    agg.add(
        "w2", [_sec(115.6, HOT, 99.0), _sec(116.6, HOT, 99.0), _sec(117.6, [0.2] * 50 + [40.0] * 3, 99.0)]
    )
    meta = agg.meta()
    assert meta["saturated_windows"] == [[111.0, 118.6]]  # w2's span is 0.2 s after w1's: merged
    assert meta["saturated_detail"] == [
        {"worker": "w2", "lag_p99_ms": 40.0, "cpu_percent": 99.0, "span_s": 3}
    ]
    w1 = meta["workers"]["w1"]
    assert w1["seconds"] == len(recs) and w1["saturated_seconds"] == 4
    assert w1["stalled_seconds"] == 17  # every hot second and the stall: diagnostics, not a verdict
    assert [101.0, 102.0] in meta["stall_windows"] and [96.0, 100.0] in meta["stall_windows"]
    assert w1["lag_ms"]["max"] == 400.0 and w1["lag_ms"]["p50"] == 0.2
    assert meta["threshold_ms"] == 10.0


def test_nothing_is_judged_before_spawning_completes() -> None:
    agg = Aggregate(threshold_ms=10.0)
    assert agg.add("w1", [_sec(float(t), HOT, 99.0) for t in range(10)]) == []
    agg.steady_from = 5.0
    assert [h["t0"] for h in agg.add("w1", [_sec(float(t), HOT, 99.0) for t in range(10, 13)])] == [10.0]


def test_nearest_rank_percentile() -> None:
    xs = sorted(float(i) for i in range(1, 101))
    assert (pct(xs, 0.5), pct(xs, 0.99), pct(xs, 1.0)) == (50.0, 99.0, 100.0)
    assert pct([3.0], 0.99) == 3.0


def test_request_bookkeeping_waits_for_io() -> None:
    """60 finished requests, 5 ms of bookkeeping each, behind the gate: a token arriving meanwhile is
    read within a few ms instead of after the 300 ms burst; every request still gets through."""
    gate = IoFirst()
    done: list[int] = []

    def finished(i: int) -> None:
        gate.wait()
        _block(0.005)
        done.append(i)

    a, b = socket.socketpair()
    ga, gb = gevent.socket.socket(fileno=a.detach()), gevent.socket.socket(fileno=b.detach())
    delays: list[float] = []

    def reader() -> None:
        for _ in range(3):
            sent = float(gb.recv(64))
            delays.append(time.perf_counter() - sent)

    def writer() -> None:
        for _ in range(3):
            gevent.sleep(0.03)
            ga.send(b"%.9f" % time.perf_counter())

    rd = gevent.spawn(reader)
    burst = [gevent.spawn(finished, i) for i in range(60)]
    victim = gevent.spawn(finished, -1)
    gevent.sleep(0)
    victim.kill()  # a user stopped while it waited: the others must not hang
    wr = gevent.spawn(writer)
    gevent.joinall([rd, wr, *burst], timeout=10)
    assert sorted(done) == list(range(60))
    assert len(delays) == 3 and max(delays) < 0.06, delays
    ga.close()
    gb.close()
