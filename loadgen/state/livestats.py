"""Live token-level statistics (TTFT, TTFO, TPOT, ITL, E2E, reasoning, good and sent requests), kept apart from Locust's.

Firing TTFT/TPOT as ordinary request events would count each request several times in the
Aggregated row; these live in their own `RequestStats`, merged from workers to the master
exactly as Locust merges its own (serialize on the worker, `extend` on the master). These are
cumulative counters only: the figures shown live (rates, windows) are defined from them once, in
loadgen/state/livefigures.py.
"""

from __future__ import annotations

import time

import locust.stats
from locust.stats import RequestStats, StatsEntry

METHOD = "LLM"
#: Entries: latency histograms (ms); E2E also counts completed (ok) and failed requests and carries
#: output tokens as its content length; GOOD counts good requests; SENT counts requests sent; TTFO is
#: the time to the first answer token; REASONING counts requests that reasoned, with their reasoning
#: time (TTFO − TTFT) as the response time and their reasoning tokens as the content length.
NAMES = ("TTFT", "TPOT", "ITL", "E2E", "GOOD", "SENT", "TTFO", "REASONING")


class LiveStats:
    """Response-time histograms in milliseconds; E2E carries output tokens as its content length."""

    def __init__(self) -> None:
        self.stats = RequestStats(use_response_times_cache=True)

    def log_sent(self) -> None:
        """A request left (counted when sent, so `sent` includes the requests still in flight)."""
        self.stats.get("SENT", METHOD).num_requests += 1

    def log_request(
        self,
        ttft_s: float | None,
        tpot_s: float | None,
        itl_s: list[float],
        e2e_s: float | None,
        output_tokens: int,
        ok: bool,
        good: bool,
        error: str,
        ttfo_s: float | None = None,
        reasoning_tokens: int | None = None,
    ) -> None:
        # Straight into the entries: this RequestStats' own `total` would mix TTFT with ITL gaps
        # and nobody reads it; ITL comes in one batch per request (one value per chunk).
        s = self.stats
        get = s.get
        if ttft_s is not None:
            get("TTFT", METHOD).log(ttft_s * 1000.0, 0)
        if tpot_s is not None:
            get("TPOT", METHOD).log(tpot_s * 1000.0, 0)
        if itl_s:
            log_many(get("ITL", METHOD), [gap * 1000.0 for gap in itl_s])
        if ok:
            get("E2E", METHOD).log((e2e_s or 0.0) * 1000.0, output_tokens)
        else:
            s.log_error(METHOD, "E2E", error)
        if good:
            get("GOOD", METHOD).log((e2e_s or 0.0) * 1000.0, 0)
        if ttfo_s is not None:
            get("TTFO", METHOD).log(ttfo_s * 1000.0, 0)
            if reasoning_tokens:
                get("REASONING", METHOD).log((ttfo_s - (ttft_s or ttfo_s)) * 1000.0, reasoning_tokens)

    def serialize(self) -> list[dict]:
        """Worker side: entries since the last report (they reset, as Locust's do)."""
        return self.stats.serialize_stats()

    def merge(self, data: list[dict]) -> None:
        """Master side."""
        for d in data:
            entry = StatsEntry.unserialize(d, self.stats)
            key = (entry.name, entry.method)
            if key not in self.stats.entries:
                self.stats.entries[key] = StatsEntry(
                    self.stats, entry.name, entry.method, use_response_times_cache=True
                )
            self.stats.entries[key].extend(entry)

    def entry(self, name: str) -> StatsEntry:
        return self.stats.get(name, METHOD)

    def reset(self) -> None:
        self.stats.reset_all()


_default_bucket = locust.stats.bucket_response_time


def log_many(entry: StatsEntry, values_ms: list[float]) -> None:
    """`StatsEntry.log(v, 0)` for each value, with one clock read: the same fields, ~10× cheaper.

    A request's ITL gaps are logged when it ends; one call per gap through `RequestStats` cost
    ~6 µs each here and blocked the event loop for ~0.4 ms per 64-token request (1.6 ms at 256).
    """
    if not values_ms:
        return
    now = time.time()
    t = int(now)
    last = entry.last_request_timestamp
    if entry.use_response_times_cache and last and t > int(last):
        entry._cache_response_times(t - 1)
    n = len(values_ms)
    entry.num_requests += n
    entry.num_reqs_per_sec[t] += n
    entry.last_request_timestamp = now
    entry.total_response_time += sum(values_ms)
    lo, hi = min(values_ms), max(values_ms)
    entry.min_response_time = lo if entry.min_response_time is None else min(entry.min_response_time, lo)
    entry.max_response_time = max(entry.max_response_time, hi)
    rt = entry.response_times
    bucket = locust.stats.bucket_response_time  # looked up each time: Locust lets users replace it
    if bucket is _default_bucket:
        for v in values_ms:
            rt[round(v) if v < 100 else bucket(v)] += 1
    else:
        for v in values_ms:
            rt[bucket(v)] += 1
