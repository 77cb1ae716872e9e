"""Cost of the LLM view's sampler on the master: one sample (copy the cumulative histograms, diff a
10 s window) with large histograms, and the size of an hour of points as served by /llm/stats.

    .venv/bin/python bench/webui_sample_cost.py
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust.stats import StatsError

from loadgen.state.livefigures import LATENCIES, Counters, Series
from loadgen.state.livestats import LiveStats


def main(requests: int = 20_000, points: int = 3600) -> None:
    rng = random.Random(1)
    live = LiveStats()
    for i in range(requests):  # wide spreads: many histogram buckets, the worst case for a sample
        itl = [rng.uniform(0.001, 0.5) for _ in range(50)]
        live.log_request(
            rng.uniform(0.01, 5),
            rng.uniform(0.005, 0.3),
            itl,
            rng.uniform(0.2, 60),
            200,
            True,
            i % 3 == 0,
            "",
        )
    errors = [
        StatsError("POST", "/v1/chat/completions", f"LLMRequestError('http_{c}')", occurrences=5)
        for c in (429, 500, 503)
    ]
    keys = {n: len(live.entry(n).response_times) for n in LATENCIES}
    series = Series(max_points=points)
    series.restart(0.0, Counters.take(live.stats.entries, errors, 0.0))
    gauges = {"users": 10, "target_users": 10, "step": 1, "in_flight": 10, "state": "running"}
    t0 = time.perf_counter()
    for k in range(points):
        series.add(Counters.take(live.stats.entries, errors, 2.0 * (k + 1)), gauges)
    per_sample_ms = (time.perf_counter() - t0) / points * 1000
    body = json.dumps(list(series.points))
    print(f"histogram buckets per metric: {keys}")
    print(
        f"one sample: {per_sample_ms:.2f} ms (every {series.sample_s:.0f} s: {per_sample_ms / series.sample_s / 10:.3f} % of a core)"
    )
    print(
        f"{points} points (2 h at 2 s) as JSON: {len(body) / 1e6:.2f} MB, {len(body) / points:.0f} B per point"
    )


if __name__ == "__main__":
    main()
