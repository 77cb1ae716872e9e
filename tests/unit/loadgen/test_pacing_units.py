"""Failure pacing (loadgen/state/pacing.py) and the systematic-failure rule (loadgen/state/failures.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from core.record import RequestRecord
from core.result import StreamResult
from loadgen.run.failstop import hint, stop_line
from loadgen.state.failures import FIRST_N, MIN_IN_WINDOW, WINDOW_S, FailureWatch
from loadgen.state.pacing import BACKOFF_S, RETRY_AFTER_CAP_S, Pacing, retry_after_s

OK = StreamResult(status=200)


def failed(status: int | None = 400, detail: str = "bad request", error: str = "") -> StreamResult:
    return StreamResult(
        status=status, error=error or (f"http_{status}" if status else "connect"), error_detail=detail
    )


def test_backoff_doubles_from_the_first_failure_to_the_cap_and_resets_on_success() -> None:
    p = Pacing()
    first, cap = BACKOFF_S
    pauses = [p.after(failed()) for _ in range(8)]
    assert pauses == [min(cap, first * 2**i) for i in range(8)]
    assert pauses[0] == 0.05 and pauses[-1] == 1.0 and max(pauses) == cap
    assert p.take() == cap and p.take() is None, "the pause labels exactly one row"
    assert p.after(OK) == 0.0 and p.pause_s == 0.0 and p.take() is None
    assert p.after(failed(None, "refused")) == first, (
        "a success resets the streak; no answer is a failure too"
    )


def test_retry_after_seconds_and_http_date_on_429_and_503_only() -> None:
    assert retry_after_s("slow down (Retry-After: 7)") == 7.0
    assert retry_after_s("no header here") is None
    assert retry_after_s("x (Retry-After: soon)") is None
    now = 1_800_000_000.0
    date = format_datetime(datetime.fromtimestamp(now + 12, UTC), usegmt=True)
    assert retry_after_s(f"busy (Retry-After: {date})", now_unix=now) == pytest.approx(12.0)
    past = format_datetime(datetime.fromtimestamp(now - 60, UTC), usegmt=True)
    assert retry_after_s(f"busy (Retry-After: {past})", now_unix=now) == 0.0

    assert Pacing().after(failed(429, "limited (Retry-After: 3)")) == 3.0
    assert Pacing().after(failed(503, "overloaded (Retry-After: 2)")) == 2.0
    assert Pacing().after(failed(500, "oops (Retry-After: 3)")) == BACKOFF_S[0], "only 429/503 mean it"
    assert Pacing().after(failed(429, "limited (Retry-After: 3600)")) == RETRY_AFTER_CAP_S
    assert Pacing().after(failed(429, "limited (Retry-After: 20)"), remaining_s=4.0) == 4.0, (
        "not past the run's end"
    )
    p = Pacing()
    for _ in range(6):
        p.after(failed(429, "limited (Retry-After: 0)"))
    assert p.pause_s == BACKOFF_S[1], "the longer of backoff and Retry-After"


def rows(*cats: str, detail: str = "The model `x` does not exist.", status: str = "400") -> list[list[str]]:
    out = []
    for cat in cats:
        rec = RequestRecord(error=cat, error_detail=detail if cat else "", ok=not cat)
        rec.http_status = int(status) if cat.startswith("http_") else (200 if not cat else None)
        out.append(rec.row())
    return out


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_first_requests_all_failing_the_same_way_trip_once() -> None:
    w = FailureWatch(Clock())
    assert w.observe(rows(*["http_400"] * (FIRST_N - 1))) is None
    assert w.observe(rows("cancelled", "cancelled")) is None, "cancelled rows are the load generator's doing"
    v = w.observe(rows("http_400"))
    assert v is not None and v.rule == "first" and v.category == "http_400" and v.of == FIRST_N
    assert v.http_status == "400" and "does not exist" in v.error_detail
    assert w.observe(rows(*["http_400"] * 50)) is None, "one verdict per run"
    w.reset()
    assert w.verdict is None and w.observe(rows(*["http_400"] * FIRST_N)) is not None


@pytest.mark.parametrize(
    "first",
    [
        ["http_400"] * (FIRST_N - 1) + [""],  # one success
        ["http_400"] * (FIRST_N - 1) + ["http_500"],  # two categories
        [""] * FIRST_N,  # a healthy server
    ],
)
def test_mixed_or_good_starts_do_not_trip(first: list[str]) -> None:
    assert FailureWatch(Clock()).observe(rows(*first)) is None


def test_a_server_that_breaks_later_trips_after_a_full_window_of_failures() -> None:
    clock = Clock()
    w = FailureWatch(clock)
    assert w.observe(rows(*[""] * 30)) is None  # healthy at first
    for _ in range(int(WINDOW_S) - 1):  # then only timeouts, 2 a second
        clock.t += 1.0
        assert w.observe(rows("timeout", "timeout")) is None, "the good rows are still in the window"
    clock.t += 2.0
    v = w.observe(rows("timeout", "timeout"))
    assert v is not None and v.rule == "window" and v.category == "timeout" and v.of >= MIN_IN_WINDOW
    assert "of the last 30 s failed with timeout" in v.describe()


def test_a_fault_mix_like_the_fault_tests_never_trips() -> None:
    """test_faults_e2e's mix: ~45 % failures of 8 kinds among successes, over 60 s at 20 rows/s."""
    kinds = [
        "",
        "",
        "http_500",
        "",
        "http_503",
        "timeout",
        "",
        "http_429",
        "disconnect",
        "",
        "bad_sse",
        "empty_output",
    ]
    clock = Clock()
    w = FailureWatch(clock)
    for i in range(1200):
        clock.t += 0.05
        assert w.observe(rows(kinds[(i * 7) % len(kinds)])) is None


def test_a_window_of_one_percent_successes_does_not_trip() -> None:
    clock = Clock()
    w = FailureWatch(clock)
    w.observe(rows(""))
    for s in range(40):
        clock.t += 1.0
        batch = ["http_503"] * 9 + ([""] if s % 3 == 0 else ["http_503"])  # ~3 % ok
        assert w.observe(rows(*batch)) is None


def test_the_stop_line_names_category_message_and_what_to_check() -> None:
    w = FailureWatch(Clock())
    v = w.observe(rows(*["http_401"] * FIRST_N, detail="Invalid API key", status="401"))
    assert v is not None
    line = stop_line(v, "MY_KEY", keep_going=False)
    assert "\n" not in line and "http_401" in line and "HTTP 401: Invalid API key" in line
    assert "$MY_KEY" in line and "--keep-going" in line and "stopping the run" in line
    assert "--keep-going: the run goes on" in stop_line(v, "MY_KEY", keep_going=True)
    assert "--host" in hint("connect", "K") and "--model" in hint("http_404", "K")
    assert "logs" in hint("http_502", "K") and "--request-timeout" in hint("timeout", "K")
    assert "pass that URL as --host" in hint("http_308", "K")


def test_a_refused_stream_options_names_the_option_that_fixes_it() -> None:
    said = "Unknown parameter: 'stream_options'."
    assert "--stream-usage off" in hint("http_400", "K", said) and "--stream-usage" in hint(
        "http_422", "K", said
    )
    assert "--stream-usage" not in hint("http_400", "K", "prompt too long") and "--stream-usage" not in hint(
        "http_500", "K", said
    )


def test_a_refused_max_tokens_names_the_field_option() -> None:
    said = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    assert "--max-tokens-field max_completion_tokens" in hint("http_400", "K", said)


def test_the_cap_goes_in_the_field_asked_for() -> None:
    from loadgen.transport.apis import resolve
    from loadgen.transport.apis.base import Prompt

    chat, completions = resolve("chat"), resolve("completions")
    plain = chat.build(Prompt("m", [{"role": "user", "content": "hi"}], 24))
    assert plain["max_tokens"] == 24 and "max_completion_tokens" not in plain
    body = chat.build(Prompt("m", [{"role": "user", "content": "hi"}], 24, cap_field="max_completion_tokens"))
    assert body["max_completion_tokens"] == 24 and "max_tokens" not in body
    assert completions.build(Prompt("m", [], 24, cap_field="max_completion_tokens"))["max_tokens"] == 24
