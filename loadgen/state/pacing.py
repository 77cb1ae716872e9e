"""Failure pacing: how long a closed-loop user waits after a failed request before sending the next.

A closed-loop user sends its next request as soon as the previous one ends. Against a server that
refuses at once (a 400 for a wrong model, a 401 for a missing key, a 503 from an empty pool) that
is a tight loop: two users sent ~5,000 requests/s and wrote a 27 MB requests.csv in 40 s while
measuring nothing. So after *any* failed request the user pauses, with a bounded exponential
backoff: `BACKOFF_S[0]` after the first failure in a row, doubling with each further one, at most
`BACKOFF_S[1]`; the first success resets it. A 429 or 503 that says `Retry-After` (seconds or an
HTTP date) is obeyed, at most `RETRY_AFTER_CAP_S` and never beyond the run's planned end; the
longer of the two pauses wins. The pause is recorded on the row of the request that follows it
(`backoff_s`), so an analysis can tell offered load from the server's own slowness.

Open-loop arrivals are not paced: keeping their schedule whatever the server does is their point.
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime

from core.result import StreamResult

#: First pause after a failure and the cap: 50 ms, 100 ms, 200 ms, … 1 s, then 1 s per request.
BACKOFF_S = (0.05, 1.0)
#: The longest `Retry-After` obeyed (a server asking for an hour is not left idle for an hour).
RETRY_AFTER_CAP_S = 30.0
#: Statuses whose `Retry-After` header means "come back then" (RFC 9110 § 10.2.3).
RETRY_AFTER_STATUSES = (429, 503)
# The transports append the header to the row's error_detail as " (Retry-After: VALUE)"
# (loadgen/transport/client.py; README § Error categories): the one place it is read back.
_RETRY_AFTER = re.compile(r"\(Retry-After: ([^()]*)\)\s*$")


def retry_after_s(error_detail: str, now_unix: float | None = None) -> float | None:
    """The wait a `Retry-After` value asks for, in seconds (≥ 0), or None when there is none.

    The value is either a number of seconds or an HTTP date (RFC 9110 § 10.2.3); a date in the
    past means "now". Anything else is ignored.
    """
    m = _RETRY_AFTER.search(error_detail)
    if m is None:
        return None
    value = m.group(1).strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result would be read as local time
        return None
    now = time.time() if now_unix is None else now_unix
    return max(0.0, when.timestamp() - now)


class Pacing:
    """One closed-loop user's pause after failures; `after()` decides it, `take()` labels the next row."""

    __slots__ = ("pause_s", "pending_s", "streak")

    def __init__(self) -> None:
        self.streak = 0  # failed requests in a row
        self.pause_s = 0.0  # the pause decided after the last request (0 after a success)
        self.pending_s: float | None = None  # that pause, until the next request's row takes it

    def after(self, res: StreamResult, remaining_s: float | None = None) -> float:
        """The pause before the next request, given how the last one ended (0 after a success).

        `remaining_s` is the run's time left when known: no `Retry-After` wait reaches past the
        run's end (a user stopped at the end is interrupted mid-pause anyway).
        """
        if not res.error:
            self.streak = 0
            self.pause_s = 0.0
            self.pending_s = None
            return 0.0
        self.streak += 1
        first, cap = BACKOFF_S
        pause = min(cap, first * 2.0 ** min(self.streak - 1, 32))
        if res.status in RETRY_AFTER_STATUSES:
            asked = retry_after_s(res.error_detail)
            if asked is not None:
                if remaining_s is not None and remaining_s > 0:
                    asked = min(asked, remaining_s)
                pause = max(pause, min(asked, RETRY_AFTER_CAP_S))
        self.pause_s = pause
        self.pending_s = pause
        return pause

    def take(self) -> float | None:
        """The pause that preceded the request about to be sent (None when there was none)."""
        pending, self.pending_s = self.pending_s, None
        return pending
