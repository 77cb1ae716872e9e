"""The live figures, each defined once: what the console and the web UI show, over a window and the run.

The live stats (loadgen/state/livestats.py) are cumulative counters, merged on the master from
every worker. Every live figure is a difference of two snapshots of them (`Counters`) divided by
the real time between the snapshots — never Locust's `current_rps` (which reads a timestamp these
entries do not keep) and never an average since some other start:

- **sent**: requests sent (counted when they leave, so those still in flight count);
- **completed req/s**: requests that completed (`ok`) and ended in the window, per second;
- **goodput**: good requests (completed and within every per-request SLO limit, `Slo.is_good`)
  that ended in the window, per second;
- **output tok/s**: output tokens of the completed requests that ended in the window, per second;
- **SLO attainment**: good / ended (completed or failed) in the window; **error ratio**: failed / ended;
- percentiles (ms) of exactly the window's requests: the difference of two cumulative histograms.

Two windows, the same definitions: **last 10 s** (`window_figures`: the newest sample against the
oldest one still ~`window_s` old) and **the run** (`run_figures`: the newest sample against the
run's start, up to the run's stop). `LiveFigures` takes one sample every `sample_s` seconds; the
console (loadgen/live/console.py) prints its newest sample, the web UI (loadgen/live/webui) serves
the same samples — so both show the same numbers for the same window.

A third window, the same definitions: **the current stage since its warm-up ended** (`StageWindow`),
what `--shape search` judges a probe by (shapes/search.py), with the trend a growing queue shows.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from locust.stats import StatsEntry, calculate_response_time_percentile, diff_response_time_dicts

from loadgen.state.livestats import METHOD
from shapes.base import StageFigures

LATENCIES = ("TTFT", "TPOT", "ITL", "E2E", "TTFO")  # TTFO: first answer token (reasoning models)
PERCENTILES = (0.5, 0.95)
SAMPLE_S = 2.0
WINDOW_S = 10.0
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
    sent: int = 0
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
        sent = entries.get(("SENT", METHOD))
        c.sent = sent.num_requests if sent else 0
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
            or self.sent < older.sent
            or any(self.count[n] < older.count.get(n, 0) for n in self.count)
            or any(v < older.errors.get(k, 0) for k, v in self.errors.items())
            or any(k not in self.errors for k in older.errors)
        )


def _pct(hist: dict[int, int], n: int, q: float) -> float | None:
    return float(calculate_response_time_percentile(hist, n, q)) if n > 0 else None


def _rates(now: Counters, base: Counters, dt: float) -> dict:
    """The rate figures of (base, now] over `dt` seconds: the one definition both windows use."""
    ok, failed, good = now.ok - base.ok, now.failed - base.failed, now.good - base.good
    ended = ok + failed
    per_s = (lambda x: x / dt) if dt > 0 else (lambda x: None)
    return {
        "ok_rps": per_s(ok),
        "fail_rps": per_s(failed),
        "out_tok_s": per_s(now.tokens - base.tokens),
        "goodput_rps": per_s(good),
        "attainment": good / ended if ended else None,
        "error_ratio": failed / ended if ended else None,
    }


def window_figures(now: Counters, base: Counters) -> dict:
    """Figures over (base.t, now.t]: percentiles in ms, rates per second, attainment as a fraction."""
    dt = max(now.t - base.t, 1e-9)
    p: dict[str, Any] = {"window_s": round(dt, 3)}
    for name in LATENCIES:
        hist = diff_response_time_dicts(now.hist[name], base.hist.get(name, {}))
        n = now.count[name] - base.count.get(name, 0)
        key = name.lower()
        for q in PERCENTILES:
            p[f"{key}_p{round(q * 100)}"] = _pct(hist, n, q)
    p.update(_rates(now, base, dt))
    p["sent"] = now.sent
    errs = {k: (v - base.errors.get(k, 0)) / dt for k, v in now.errors.items()}
    p["errors_rps"] = {k: v for k, v in errs.items() if v > 0}
    return p


def run_figures(now: Counters, start: Counters, t_stop: float | None = None) -> dict:
    """Whole-run counts and rates: from the run's start to `now` (or to its stop, once stopped)."""
    dt = max(0.0, min(now.t, t_stop if t_stop is not None else now.t) - start.t)
    out = {
        "sent": now.sent - start.sent,
        "ok": now.ok - start.ok,
        "failed": now.failed - start.failed,
        "good": now.good - start.good,
        "output_tokens": now.tokens - start.tokens,
        "elapsed_s": round(dt, 1),
    }
    out.update(_rates(now, start, dt))
    return out


def _round(v: Any) -> Any:
    """4 significant digits keep an hour of points small enough to poll."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if isinstance(v, dict):
        return {k: _round(x) for k, x in v.items()}
    return v


class Series:
    """A bounded ring of points for the current run; `since(seq)` serves the increments to pollers."""

    def __init__(
        self, sample_s: float = SAMPLE_S, window_s: float = WINDOW_S, max_points: int = 3600
    ) -> None:
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
        point.update(_round(window_figures(now, base)))
        point.update(gauges)
        self.points.append(point)
        return point

    def since(self, seq: int) -> list[dict]:
        if not self.points or seq >= self.points[-1]["seq"]:
            return []
        return [p for p in self.points if p["seq"] > seq]


class LiveFigures:
    """The samples both live views read: the window series and the run's figures at the same instant."""

    def __init__(self, sample_s: float = SAMPLE_S, window_s: float = WINDOW_S) -> None:
        self.series = Series(sample_s=sample_s, window_s=window_s)
        self.start = Counters(time.time())
        self.t_stop: float | None = None
        #: Whole-run figures at the newest sample (`run_figures`, rounded like the points).
        self.run: dict = self.run_at(self.start)

    def restart(self, zero: Counters) -> None:
        """A run starts now: `zero` is the counters at its start (the baseline of both windows)."""
        self.series.restart(zero.t, zero)
        self.start = zero
        self.t_stop = None
        self.run = self.run_at(zero)

    def stopped(self, t: float) -> None:
        self.t_stop = t

    def add(self, now: Counters, gauges: dict) -> dict:
        """One sample: the point of the last window (returned) and the run's figures, both at `now`."""
        if now.went_back(self.start):  # "Reset stats": the run's counts restart here too
            self.start = Counters(self.series.points[-1]["t"] if self.series.points else self.start.t)
        point = self.series.add(now, gauges)
        self.run = self.run_at(now)
        self.run["seq"] = point["seq"]
        return point

    def run_at(self, now: Counters) -> dict:
        """The run's figures at `now` (the web UI asks between samples, for the freshest counts)."""
        return _round(run_figures(now, self.start, self.t_stop))

    def latest(self) -> dict | None:
        return self.series.points[-1] if self.series.points else None


def _t975(df: int) -> float:
    """The t distribution's 97.5 % quantile (Cornish-Fisher expansion around the normal's; df ≥ 1)."""
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df * df)


def slope(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope of y over x and its 95 % lower bound (None: fewer than 4 points)."""
    n = len(points)
    if n < 4:
        return None
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    rss = max(0.0, sum((y - my - b * (x - mx)) ** 2 for x, y in points))
    se = (rss / (n - 2) / sxx) ** 0.5
    return b, b - _t975(n - 2) * se


def _p50_s(now: Counters, base: Counters, name: str) -> float | None:
    hist = diff_response_time_dicts(now.hist.get(name, {}), base.hist.get(name, {}))
    ms = _pct(hist, now.count.get(name, 0) - base.count.get(name, 0), 0.5)
    return None if ms is None else ms / 1000.0


class StageWindow:
    """One stage's live figures since its warm-up ended: what the search judges a probe by.

    Over (first sample after the warm-up, newest sample]: requests ended and good (the `_rates`
    definition: good / ended), completed req/s; the requests in flight at each sample and their
    least-squares slope with its 95 % lower bound; the TTFT p50 of the first and the second half.
    """

    def __init__(self, key: object) -> None:
        self.key = key  # which stage (its step and start): a new stage starts a new window
        self.samples: list[tuple[Counters, int]] = []

    def add(self, now: Counters, in_flight: int) -> None:
        if self.samples and now.went_back(self.samples[0][0]):
            self.samples.clear()  # "Reset stats" inside the stage: start again from here
        self.samples.append((now, in_flight))

    def figures(self) -> StageFigures | None:
        if not self.samples:
            return None
        base, now = self.samples[0][0], self.samples[-1][0]
        dt = now.t - base.t
        rates = _rates(now, base, dt)
        mid_t = base.t + dt / 2
        mid = min((c for c, _ in self.samples), key=lambda c: abs(c.t - mid_t))
        trend = slope([(c.t - base.t, float(n)) for c, n in self.samples])
        return StageFigures(
            elapsed_s=dt,
            ended=(now.ok - base.ok) + (now.failed - base.failed),
            good=now.good - base.good,
            ok_rps=rates["ok_rps"],
            in_flight=self.samples[-1][1],
            in_flight_slope_rps=None if trend is None else trend[0],
            in_flight_slope_low_rps=None if trend is None else trend[1],
            ttft_p50_early_s=_p50_s(mid, base, "TTFT") if mid is not base else None,
            ttft_p50_late_s=_p50_s(now, mid, "TTFT") if mid is not now else None,
        )
