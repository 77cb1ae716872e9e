"""What one server-metrics scrape costs the load process, and how long it can hold the event loop.

On a local runner the scraper shares the gevent loop with the users that time tokens, so what matters
is not the total parse time but the longest slice between two yields (loadgen/monitors/servermetrics.py yields
after each metric family). For each engine page (tests/fixtures) this prints: samples kept, the
full parse + CSV-row time, and the longest uninterrupted slice, as medians over repeats. Then it
analyses a synthetic hour of scrapes to show the post-run cost. With `--url`, it also runs the real
scraper against a live /metrics page in this (gevent) process beside a probe greenlet that sleeps
2 ms and records how late it wakes — the delay a user's token or send would see — alternating
runs without and with scraping. Not a timed test: run it by hand.

    .venv/bin/python bench/servermetrics_cost.py [--repeats 20] [--hour-samples 1800]
    .venv/bin/python bench/servermetrics_cost.py --url http://127.0.0.1:8000/metrics --interval 0.25
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gevent import monkey  # noqa: E402

monkey.patch_all()  # as Locust does: urllib becomes cooperative

import gevent  # noqa: E402

from loadgen.monitors.promtext import parse  # noqa: E402
from loadgen.monitors.servermetrics import Scraper  # noqa: E402

PAGES = {
    "vLLM 0.32 (CPU)": ROOT / "tests/fixtures/vllm-cpu-tiny-metrics.txt",
    "SGLang": ROOT / "tests/fixtures/sglang-metrics.txt",
    "TGI": ROOT / "tests/fixtures/tgi-metrics.txt",
}


def one(text: str) -> tuple[int, float, float]:
    """(rows, total ms, longest slice ms) of one cooperative parse."""
    marks = [time.perf_counter()]
    t0 = marks[0]
    rows = list(parse(text, lambda: marks.append(time.perf_counter())))
    t1 = time.perf_counter()
    marks.append(t1)
    slices = [b - a for a, b in itertools.pairwise(marks)]
    return len(rows), (t1 - t0) * 1000, max(slices) * 1000


def hour(scrapes: int) -> None:
    """A run folder with `scrapes` scrapes of the vLLM page (counters growing) → analysis.server figures."""
    import pandas as pd

    from analysis.server import build, load_server_metrics, window_figures

    base = list(parse(PAGES["vLLM 0.32 (CPU)"].read_text()))
    rows = []
    for i in range(scrapes):
        t = f"{1_700_000_000 + 2.0 * i:.3f}"
        for m, lab, v in base:
            grow = m.endswith(("_total", "_sum", "_count", "_bucket"))
            rows.append((t, m, lab, repr(float(v) * (1 + i) if grow else float(v))))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)
        pd.DataFrame(rows, columns=["t", "metric", "labels", "value"]).to_csv(
            p / "server_metrics.csv", index=False
        )
        size = (p / "server_metrics.csv").stat().st_size / 1e6
        t0 = time.perf_counter()
        df, _ = load_server_metrics(p)
        t1 = time.perf_counter()
        data, _ = build(df)
        t2 = time.perf_counter()
        for k in range(30):  # 30 steps
            window_figures(data, float(data.times[0]) + k * 120, float(data.times[0]) + (k + 1) * 120)
        t3 = time.perf_counter()
    print(
        f"\npost-run: {scrapes} scrapes ({scrapes * 2 / 3600:.1f} h at 2 s), {len(rows):,} rows, {size:.1f} MB: "
        f"load {t1 - t0:.2f} s, build {t2 - t1:.2f} s, 30 step windows {t3 - t2:.2f} s"
    )


def loop_lag(url: str, seconds: float, interval: float, rounds: int) -> None:
    """Probe-greenlet lateness (ms) with and without a scraper running on `url`."""
    print(f"\nevent-loop lag, probe sleeps 2 ms, {seconds:g} s per run, scrape every {interval:g} s:")
    for i in range(2 * rounds):
        on = i % 2 == 1
        lags: list[float] = []

        def probe(lags: list[float] = lags) -> None:
            while True:
                t = time.perf_counter()
                gevent.sleep(0.002)
                lags.append(time.perf_counter() - t - 0.002)

        g = gevent.spawn(probe)
        with tempfile.TemporaryDirectory() as d:
            sc = Scraper(url, "url", interval, Path(d) / "x.csv") if on else None
            if sc is not None:
                sc.start()
            gevent.sleep(seconds)
            if sc is not None:
                sc.stop()
        g.kill()
        lags.sort()
        q = [lags[int(p * (len(lags) - 1))] * 1000 for p in (0.5, 0.99, 0.999, 1.0)]
        scrapes = f"{sc.scrapes} scrapes, {sc.failures} failures" if sc else "no scraper"
        print(f"  {scrapes:<26} p50 {q[0]:.2f}  p99 {q[1]:.2f}  p99.9 {q[2]:.2f}  max {q[3]:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--hour-samples", type=int, default=1800, help="scrapes in the post-run part (0: skip)")
    ap.add_argument("--url", help="a live /metrics page: also measure the event-loop lag a scraper adds")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=0.25, help="scrape interval for --url (default 0.25 s)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(
        f"{'page':<18} {'kept samples':>12} {'parse ms (median)':>18} {'longest slice ms (median / max)':>32}"
    )
    for name, path in PAGES.items():
        text = path.read_text()
        runs = [one(text) for _ in range(args.repeats)]
        n = runs[0][0]
        total = statistics.median(r[1] for r in runs)
        sl = [r[2] for r in runs]
        print(f"{name:<18} {n:>12,} {total:>18.1f} {statistics.median(sl):>20.2f} / {max(sl):.2f}")
    if args.hour_samples:
        hour(args.hour_samples)
    if args.url:
        loop_lag(args.url, args.seconds, args.interval, args.rounds)


if __name__ == "__main__":
    main()
