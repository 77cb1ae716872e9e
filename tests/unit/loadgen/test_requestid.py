"""Request ids (loadgen/requestid.py) and `--request-id-header`: UUIDv7 by the RFC's layout, ordered,
unique across processes, the worker's mark in the last group; the option parsed, refused with one
line when malformed, and shown on the web form."""

from __future__ import annotations

import time
import uuid

import pytest

from core.errors import OptionError
from loadgen.transport.ids import RequestIds, request_id_header, session_header, worker_mark


def test_ids_are_uuid_v7_with_the_time_first_and_sort_by_it() -> None:
    g = RequestIds()
    t0 = time.time()
    ids = [g.next() for _ in range(50_000)]  # many per millisecond: the counter orders them
    u = uuid.UUID(ids[0])
    assert (u.version, u.variant) == (7, uuid.RFC_4122) and str(u) == ids[0]
    assert abs(int(u.hex[:12], 16) / 1000 - t0) < 1.0, "48 bits of Unix milliseconds first"
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids[::997])


def test_each_process_has_its_mark_and_ids_never_collide_across_processes() -> None:
    a, b = RequestIds(), RequestIds()
    ia, ib = [a.next() for _ in range(2000)], [b.next() for _ in range(2000)]
    assert not set(ia) & set(ib)
    assert {worker_mark(i) for i in ia} == {worker_mark(ia[0])} != {worker_mark(ib[0])}
    assert worker_mark(RequestIds(mark=0x9C1F0A2B3C4D).next()) == "-9c1f0a2b3c4d"


def test_the_counter_borrows_the_next_millisecond_when_exhausted() -> None:
    g = RequestIds(mark=1)
    g._ms, g._counter = time.time_ns() // 1_000_000 + 10_000, (1 << 26) - 2  # ahead of the clock, nearly full
    a, b = g.next(), g.next()  # the last count of that millisecond, then the first of the next
    ms = [int(i.replace("-", "")[:12], 16) for i in (a, b)]
    assert a < b and ms[1] == ms[0] + 1 and a[19:23] == "bfff" and b[14:23] == "7000-8000"


def test_the_option_takes_a_header_name_or_none() -> None:
    assert request_id_header("X-Request-Id") == "X-Request-Id"
    assert request_id_header(" X-Correlation-ID ") == "X-Correlation-ID"
    assert request_id_header("none") is None and request_id_header("NONE") is None
    for bad in ("X Request", "X-Id:", "", "Ünïcode"):
        with pytest.raises(OptionError, match=r"^--request-id-header: .* is not an HTTP header name"):
            request_id_header(bad)


def test_the_web_form_shows_the_option() -> None:
    from locust import events
    from locust.argument_parser import get_parser

    import locustfile  # noqa: F401  (registers every Goodput option)

    parser = get_parser(default_config_files=[])
    events.init_command_line_parser.fire(parser=parser)
    assert "request_id_header" in parser.args_included_in_web_ui
    assert parser.parse_args(["-f", "locustfile.py"]).request_id_header == "X-Request-Id"
    assert "session_header" in parser.args_included_in_web_ui
    assert parser.parse_args(["-f", "locustfile.py"]).session_header == "none"


def test_a_session_header_names_the_client_session_beside_the_request() -> None:
    """`--session-header`: one value per (conversation, user, process) — what a router's consistent
    hash keys on — while the request id stays new on every request; none by default."""
    g = RequestIds(mark=0xABC)
    assert g.headers("r1", "agentic-0007", 3) == {"X-Request-Id": "r1"}
    g.session_header = session_header("X-Session-Id")
    one, two = g.headers("r1", "agentic-0007", 3), g.headers("r2", "agentic-0007", 3)
    assert one == {"X-Request-Id": "r1", "X-Session-Id": "agentic-0007.u3.000000000abc"}
    assert two["X-Session-Id"] == one["X-Session-Id"] and two["X-Request-Id"] == "r2"
    assert g.headers("r3", "agentic-0007", 4)["X-Session-Id"] != one["X-Session-Id"]  # another user's session
    assert RequestIds(mark=0xABD).headers("r", "s", 1) == {"X-Request-Id": "r"}
    other = RequestIds(mark=0xABD)
    other.session_header = "X-Session-Id"
    assert other.headers("r", "agentic-0007", 3)["X-Session-Id"] != one["X-Session-Id"]  # another process's
    assert g.headers("r4", "", 3) == {"X-Request-Id": "r4"}  # a request of no conversation names none
    g.header = None
    assert g.headers("r5", "s", 1) == {"X-Session-Id": "s.u1.000000000abc"}
    assert session_header("none") is None
    with pytest.raises(
        OptionError,
        match=r"^--session-header: 'X Session' is not an HTTP header name \(expected e.g. X-Session-Id, or none\)$",
    ):
        session_header("X Session")
