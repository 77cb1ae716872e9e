"""Writes `example.csv`, a small BurstGPT-like request trace (deterministic; rerun to regenerate).

    python datasets/traces/make_example_trace.py [--seed 7] [--out datasets/traces/example.csv]

Two minutes of traffic: a 4 req/s base with two bursts (12 req/s for 10 s each), gamma
inter-arrivals with shape 0.5 (CV ≈ 1.4, burstier than Poisson), log-normal prompt and reply
lengths, and 60 % of requests in four prefix groups that share a 400-token system prompt.
Replay: `--shape trace --trace-file datasets/traces/example.csv [--time-scale 0.5]`.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path

DURATION_S = 120.0
BASE_RPS = 4.0
BURSTS = ((30.0, 40.0, 12.0), (80.0, 90.0, 12.0))  # (start, end, rate)
SHAPE = 0.5  # gamma shape of the inter-arrival gaps
GROUPS = 4
GROUP_SHARE = 0.6
PREFIX_TOKENS = 400


def rate_at(t: float) -> float:
    return next((r for a, b, r in BURSTS if a <= t < b), BASE_RPS)


def lognormal(rng: random.Random, median: float, sigma: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, round(median * math.exp(rng.gauss(0.0, sigma)))))


def rows(seed: int) -> list[dict]:
    rng = random.Random(seed)
    out, t = [], 0.0
    while True:
        rate = rate_at(t)
        t += rng.gammavariate(SHAPE, 1.0 / (rate * SHAPE))
        if t >= DURATION_S:
            return out
        grouped = rng.random() < GROUP_SHARE
        inp = lognormal(rng, 600, 0.7, 16, 3000)
        if grouped:
            inp = max(inp, PREFIX_TOKENS + 32)
        out.append(
            {
                "timestamp": f"{t:.3f}",
                "input_tokens": inp,
                "output_tokens": lognormal(rng, 150, 0.8, 1, 1024),
                "prefix_id": f"sys-{rng.randrange(GROUPS)}" if grouped else "",
                "prefix_tokens": PREFIX_TOKENS if grouped else "",
            }
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).with_name("example.csv")))
    args = ap.parse_args()
    data = rows(args.seed)
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(data[0]))
        w.writeheader()
        w.writerows(data)
    print(f"wrote {len(data)} requests over {DURATION_S:.0f}s to {args.out}")


if __name__ == "__main__":
    main()
