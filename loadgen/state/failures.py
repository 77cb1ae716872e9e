"""Is the target failing systematically? The rule, applied to the rows as the run folder receives them.

A run against a server that refuses every request (wrong `--model`, missing API key, wrong path)
measures nothing: it should end at once and say why, not write thousands of identical rows. The
rule reads the rows where every one of them arrives, the master (or the local runner), so it
sees all workers together:

- **from the start**: the run's first `FIRST_N` finished requests all failed with the same
  `error` category; or
- **lately**: over the last `WINDOW_S` seconds (by arrival of the rows), at least `MIN_IN_WINDOW`
  requests finished and at least `SHARE` of them failed with the same category, the run's first
  row being at least `WINDOW_S` old (so the whole window lies inside the run).

`cancelled` rows (the load generator stopped the user) are not the server's doing and never
count. Mixed failures (a fault-injection run: 500s, timeouts and successes together) never trip
either branch. The first verdict is final for the run; loadgen/run/failstop.py acts on it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from core.record import COLUMNS

FIRST_N = 20
WINDOW_S = 30.0
SHARE = 0.99
MIN_IN_WINDOW = 20

_ERROR = COLUMNS.index("error")
_DETAIL = COLUMNS.index("error_detail")
_STATUS = COLUMNS.index("http_status")
CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why the target counts as failing: which branch, the category, and the server's last word."""

    rule: str  # "first" (the first FIRST_N requests) or "window" (the last WINDOW_S seconds)
    category: str  # the rows' `error`
    failed: int  # requests that failed with `category` …
    of: int  # … out of this many finished ones
    http_status: str  # the last such row's `http_status` ("" when the server never answered)
    error_detail: str  # the last such row's `error_detail` (the server's message)

    def describe(self) -> str:
        if self.rule == "first":
            return f"the first {self.of} requests all failed with {self.category}"
        return f"{self.failed} of the {self.of} requests of the last {WINDOW_S:.0f} s failed with {self.category}"

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "category": self.category,
            "failed": self.failed,
            "of": self.of,
            "http_status": self.http_status,
            "error_detail": self.error_detail,
        }


class FailureWatch:
    """Applies the rule above to every row the run keeps; `observe` returns the verdict once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """A new run."""
        self.first: Counter[str] = Counter()  # categories of the first FIRST_N finished requests
        self.n_first = 0
        self.t_first: float | None = None  # when the run's first row arrived
        self.buckets: deque[tuple[int, Counter[str]]] = deque()  # per second of arrival
        self.window: Counter[str] = Counter()  # the buckets' sum
        self.n_window = 0
        self.last: dict[str, tuple[str, str]] = {}  # category → (http_status, error_detail) last seen
        self.verdict: Verdict | None = None

    def observe(self, rows: Iterable[list[str]]) -> Verdict | None:
        """Take rows as they arrive; returns a Verdict the first time the rule holds, else None."""
        if self.verdict is not None:
            return None
        now = self.clock()
        second = int(now)
        for row in rows:
            cat = row[_ERROR]
            if cat == CANCELLED:
                continue
            if self.t_first is None:
                self.t_first = now
            if cat:
                self.last[cat] = (row[_STATUS], row[_DETAIL])
            self._count(second, cat)
            verdict = self._first(cat) or (self._window(now, cat) if cat else None)
            if verdict is not None:
                self.verdict = verdict
                return verdict
        return None

    def _count(self, second: int, cat: str) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] <= second - WINDOW_S:
            _, old = buckets.popleft()
            self.window.subtract(old)
            self.n_window -= sum(old.values())
        if not buckets or buckets[-1][0] != second:
            buckets.append((second, Counter()))
        buckets[-1][1][cat] += 1
        self.window[cat] += 1
        self.n_window += 1

    def _first(self, cat: str) -> Verdict | None:
        if self.n_first >= FIRST_N:
            return None
        self.first[cat] += 1
        self.n_first += 1
        if self.n_first < FIRST_N or len(self.first) != 1 or not cat:
            return None
        return self._verdict("first", cat, FIRST_N, FIRST_N)

    def _window(self, now: float, cat: str) -> Verdict | None:
        if self.t_first is None or now - self.t_first < WINDOW_S or self.n_window < MIN_IN_WINDOW:
            return None
        failed = self.window[cat]
        if failed < SHARE * self.n_window:
            return None
        return self._verdict("window", cat, failed, self.n_window)

    def _verdict(self, rule: str, cat: str, failed: int, of: int) -> Verdict:
        status, detail = self.last.get(cat, ("", ""))
        return Verdict(rule, cat, failed, of, status, detail)
