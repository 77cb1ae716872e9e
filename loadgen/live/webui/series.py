"""The LLM view's time series: one point every few seconds, each over a short sliding window.

The live stats (loadgen/state/livestats.py) are cumulative histograms, merged on the master from every
worker. A chart over time needs per-interval figures, so each sample keeps a copy of the
cumulative counters and a point is the difference between now and the snapshot `window_s` ago:
percentiles of exactly the requests that finished in that window (Locust's own "current"
percentiles use the same 10 s idea). Differencing works the same locally and on a master, needs no
hook in the hot path, and costs a dict copy of a few hundred buckets per metric per sample.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from locust.stats import StatsEntry, calculate_response_time_percentile, diff_response_time_dicts

METHOD = "LLM"  # loadgen/state/livestats.py files its entries under this method
LATENCIES = ("TTFT", "TPOT", "ITL", "E2E", "TTFO")  # TTFO: first answer token (reasoning models)
PERCENTILES = (0.5, 0.95)
_ERROR_REPR = re.compile(r"""^\w+\((['"])(.*)\1,?\)$""")


def error_category(error: str) -> str:
    """Locust stores `repr(exception)`: LLMRequestError('http_429') → http_429."""
    m = _ERROR_REPR.match(error.strip())
    return m.group(2) if m else error.strip()[:60]


@dataclass(slots=True)
class Counters:
    """Cumulative counters at one instant: the unit that windows are differences of."""

    t: float
    hist: dict[str, dict[int, int]] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    ok: int = 0
    failed: int = 0
    good: int = 0
    tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    @classmethod
    def take(cls, entries: Mapping[tuple[str, str], StatsEntry], errors: Iterable[Any], t: float) -> Counters:
        c = cls(t)
        for name in LATENCIES:
            e = entries.get((name, METHOD))
            c.hist[name] = dict(e.response_times) if e else {}
            c.count[name] = e.num_requests if e else 0
        e2e = entries.get(("E2E", METHOD))
        if e2e is not None:
            c.ok, c.failed, c.tokens = e2e.num_requests, e2e.num_failures, e2e.total_content_length
        good = entries.get(("GOOD", METHOD))
        c.good = good.num_requests if good else 0
        for err in errors:
            cat = error_category(str(err.error))
            c.errors[cat] = c.errors.get(cat, 0) + int(err.occurrences)
        return c

    def went_back(self, older: Counters) -> bool:
        """A reset between the two (new run, "Reset stats"): the older snapshot is no baseline."""
        return (
            self.ok < older.ok
            or self.failed < older.failed
            or self.good < older.good
            or any(self.count[n] < older.count.get(n, 0) for n in self.count)
            or any(v < older.errors.get(k, 0) for k, v in self.errors.items())
            or any(k not in self.errors for k in older.errors)
        )


def _pct(hist: dict[int, int], n: int, q: float) -> float | None:
    return float(calculate_response_time_percentile(hist, n, q)) if n > 0 else None


def window_point(now: Counters, base: Counters) -> dict:
    """Figures over (base.t, now.t]: percentiles in ms, rates per second, attainment as a fraction."""
    dt = max(now.t - base.t, 1e-9)
    p: dict[str, Any] = {"window_s": round(dt, 3)}
    for name in LATENCIES:
        hist = diff_response_time_dicts(now.hist[name], base.hist.get(name, {}))
        n = now.count[name] - base.count.get(name, 0)
        key = name.lower()
        for q in PERCENTILES:
            p[f"{key}_p{round(q * 100)}"] = _pct(hist, n, q)
    ok, failed = now.ok - base.ok, now.failed - base.failed
    good = now.good - base.good
    ended = ok + failed
    p["ok_rps"] = ok / dt
    p["fail_rps"] = failed / dt
    p["out_tok_s"] = (now.tokens - base.tokens) / dt
    p["goodput_rps"] = good / dt
    p["attainment"] = good / ended if ended else None
    errs = {k: (v - base.errors.get(k, 0)) / dt for k, v in now.errors.items()}
    p["errors_rps"] = {k: v for k, v in errs.items() if v > 0}
    p["error_ratio"] = failed / ended if ended else None
    return p


def _round(v: Any) -> Any:
    """4 significant digits keep an hour of points small enough to poll."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


class Series:
    """A bounded ring of points for the current run; `since(seq)` serves the increments to pollers."""

    def __init__(self, sample_s: float = 2.0, window_s: float = 10.0, max_points: int = 3600) -> None:
        self.sample_s = sample_s
        self.window_s = window_s
        self.points: deque[dict] = deque(maxlen=max_points)
        self.snaps: deque[Counters] = deque()
        self.seq = 0
        self.epoch = 0
        self.t0 = time.time()

    def restart(self, t0: float, zero: Counters | None = None) -> None:
        """A new run: new epoch (pollers drop what they hold), empty ring, baseline at the start."""
        self.epoch += 1
        self.points.clear()
        self.snaps.clear()
        self.t0 = t0
        if zero is not None:
            self.snaps.append(zero)

    def add(self, now: Counters, gauges: dict) -> dict:
        """One sample: window figures against the oldest snapshot still inside the window."""
        while self.snaps and now.went_back(self.snaps[-1]):
            self.snaps.clear()
        # Keep the newest snapshot at least ~window_s old (half a sample of slack for timer jitter).
        while len(self.snaps) > 1 and now.t - self.snaps[1].t >= self.window_s - self.sample_s / 2:
            self.snaps.popleft()
        base = (
            self.snaps[0]
            if self.snaps
            else Counters(now.t - self.sample_s, count=dict.fromkeys(LATENCIES, 0))
        )
        self.snaps.append(now)
        self.seq += 1
        point = {"seq": self.seq, "t": round(now.t, 3), "elapsed_s": round(now.t - self.t0, 1)}
        point.update(_round(window_point(now, base)))
        point.update(gauges)
        self.points.append(point)
        return point

    def since(self, seq: int) -> list[dict]:
        if not self.points or seq >= self.points[-1]["seq"]:
            return []
        return [p for p in self.points if p["seq"] > seq]
