"""Open-loop generator statistics: per stage, arrivals due and sent, and the send lag.

Send lag = actual send time − intended (scheduled) time; it includes waiting for a free slot when
`--max-concurrency` is reached. Lags are kept as 0.1 ms histograms, so workers' figures merge
exactly on the master and memory stays bounded however long the run.
"""

from __future__ import annotations

import time
from typing import Any

BUCKET_S = 1e-4  # 0.1 ms
MAX_BUCKET = 10**6  # 100 s
LATE_S = 0.010  # the acceptance bound: a send later than this is "late"


def _bucket(lag_s: float) -> int:
    return min(MAX_BUCKET, max(0, int(lag_s / BUCKET_S)))


def hist_percentile(hist: dict[int, int], q: float) -> float | None:
    """Seconds at quantile q (bucket upper edge: never optimistic)."""
    total = sum(hist.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return (b + 1) * BUCKET_S
    return (max(hist) + 1) * BUCKET_S


class StepStats:
    __slots__ = ("due", "lag", "late", "sent", "unsent", "waited")

    def __init__(self) -> None:
        self.due = 0  # arrivals whose intended time came
        self.sent = 0
        self.waited = 0  # arrivals that waited for a free slot (the in-flight cap was reached)
        self.unsent = 0  # arrivals still waiting for a slot when the run stopped
        self.late = 0  # sent more than LATE_S after the intended time
        self.lag: dict[int, int] = {}

    def to_dict(self) -> dict:
        return {
            "due": self.due,
            "sent": self.sent,
            "waited": self.waited,
            "unsent": self.unsent,
            "late": self.late,
            "lag": {str(k): v for k, v in self.lag.items()},
        }

    def add(self, d: dict) -> None:
        for name in ("due", "sent", "waited", "unsent", "late"):
            setattr(self, name, getattr(self, name) + int(d.get(name, 0)))
        for k, v in d.get("lag", {}).items():
            b = int(k)
            self.lag[b] = self.lag.get(b, 0) + int(v)


class OpenLoopStats:
    """One per load process; workers drain it into each report, the master merges."""

    def __init__(self) -> None:
        self.steps: dict[int, StepStats] = {}
        self.warnings = 0

    def step(self, step: int) -> StepStats:
        s = self.steps.get(step)
        if s is None:
            s = self.steps[step] = StepStats()
        return s

    def record_send(self, step: int, lag_s: float, waited: bool) -> None:
        s = self.step(step)
        s.sent += 1
        s.waited += waited
        s.late += lag_s > LATE_S
        b = _bucket(lag_s)
        s.lag[b] = s.lag.get(b, 0) + 1

    def drain(self) -> dict:
        if not self.steps and not self.warnings:
            return {}
        out = {"steps": {str(k): v.to_dict() for k, v in self.steps.items()}, "warnings": self.warnings}
        self.reset()
        return out

    def merge(self, data: dict) -> None:
        for k, d in data.get("steps", {}).items():
            self.step(int(k)).add(d)
        self.warnings += int(data.get("warnings", 0))

    def reset(self) -> None:
        self.steps = {}
        self.warnings = 0

    def summary(
        self, stages: list[Any], opts: Any, now: float | None = None, span_s: float | None = None
    ) -> dict:
        """run.json's `open_loop`: per open-loop stage, target vs achieved rate and send lag.

        Rates are per stage duration; a trace's over its (scaled) span, since its stage also
        waits for the last responses."""
        now = now or time.time()
        rows, total_sent, total_s, all_lag = [], 0, 0.0, StepStats()
        for st in stages:
            if st.rate_rps is None or st.step not in self.steps:
                continue
            s = self.steps[st.step]
            duration = span_s if span_s else max(0.0, (st.t_end_unix or now) - st.t_start_unix)
            rows.append(
                {
                    "step": st.step,
                    "label": st.label,
                    "target_rps": st.rate_rps,
                    "duration_s": round(duration, 3),
                    "due": s.due,
                    "sent": s.sent,
                    "achieved_rps": round(s.sent / duration, 4) if duration > 0 else None,
                    "waited_for_slot": s.waited,
                    "unsent": s.unsent,
                    "late_over_10ms": s.late,
                    "send_lag_ms": lag_ms(s.lag),
                }
            )
            total_sent += s.sent
            total_s += duration
            all_lag.add({"lag": {str(k): v for k, v in s.lag.items()}})
        return {
            "arrival": "trace" if span_s else opts.arrival,
            "burstiness": float(opts.burstiness),
            "max_concurrency": int(opts.max_concurrency),
            "sent": total_sent,
            "achieved_rps": round(total_sent / total_s, 4) if total_s > 0 else None,
            "send_lag_ms": lag_ms(all_lag.lag),
            "behind_warnings": self.warnings,
            "stages": rows,
        }


def lag_ms(hist: dict[int, int]) -> dict:
    def ms(q: float) -> float | None:
        v = hist_percentile(hist, q)
        return None if v is None else round(v * 1000.0, 2)

    return {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": ms(1.0)}
