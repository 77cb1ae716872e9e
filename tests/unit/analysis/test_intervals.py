"""95 % intervals on data of known truth: coverage of the bootstrap (analysis/intervals.py), sessions
resampled together, the capacity rule's replicates, merged repeats and the rank-by-what-separates rule."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from analysis.intervals import (
    Interval,
    Resampler,
    better,
    capacity_draws,
    from_draws,
    merge_repeats,
    multi_turn_units,
    percentile_intervals,
    ranks,
)

QS = (50.0, 95.0, 99.0)
TRUE = {q: float(np.exp(NormalDist().inv_cdf(q / 100))) for q in QS}  # lognormal(0, 1) quantiles


def test_percentile_intervals_cover_the_true_quantiles_about_95_percent() -> None:
    """120 samples of 2,000 lognormal values: each interval holds the true p50/p95/p99 in ~95 % of them
    (binomial spread over 120 trials: ±4 %; the percentile bootstrap runs a little short at p99)."""
    rng = np.random.default_rng(7)
    hits = dict.fromkeys(QS, 0)
    trials = 120
    for k in range(trials):
        x = rng.lognormal(0.0, 1.0, 2000)
        ivs = percentile_intervals(
            Resampler(None, x.size, seed=k), x, {q: float(np.percentile(x, q)) for q in QS}
        )
        for q in QS:
            hits[q] += ivs[q].contains(TRUE[q])
    cover = {q: hits[q] / trials for q in QS}
    assert 0.9 <= cover[50.0] <= 0.995 and 0.9 <= cover[95.0] <= 0.995, cover
    assert 0.86 <= cover[99.0] <= 0.995, cover


def test_attainment_intervals_cover_the_true_share() -> None:
    rng = np.random.default_rng(3)
    trials, hits = 200, 0
    for k in range(trials):
        good = rng.random(500) < 0.9
        judged = np.ones(500, dtype=bool)
        rs = Resampler(None, 500, seed=k)
        hits += from_draws(rs.ratio(good, judged), float(good.mean())).contains(0.9)
    assert 0.91 <= hits / trials <= 0.99


def test_the_fast_replicates_are_the_plain_bootstrap() -> None:
    """The grid-and-counts replicates have the distribution of resampling the values themselves."""
    rng = np.random.default_rng(5)
    x = rng.lognormal(0, 1, 300)
    fast = Resampler(None, x.size, replicates=4000, seed=1).percentiles(x, QS)
    plain = np.array([np.percentile(rng.choice(x, x.size), QS) for _ in range(4000)])
    for k in range(len(QS)):
        a, b = np.quantile(fast[k], [0.025, 0.5, 0.975]), np.quantile(plain[:, k], [0.025, 0.5, 0.975])
        assert a == pytest.approx(b, rel=0.05), (QS[k], a, b)


def test_sessions_are_resampled_together_where_requests_alone_run_short() -> None:
    """Eight turns of a conversation share its latency level: resampling requests treats 800 rows as
    800 independent draws and the interval runs short; resampling the 100 sessions covers."""
    rng = np.random.default_rng(11)
    per_request = per_session = 0
    trials = 80
    for k in range(trials):
        level = np.repeat(rng.normal(0.0, 1.0, 100), 8)
        x = np.exp(level + rng.normal(0.0, 0.3, 800))  # median exp(0) = 1 across sessions
        sessions = np.repeat(np.arange(100).astype(str), 8)
        units = multi_turn_units(sessions)
        assert units is not None
        point = {50.0: float(np.percentile(x, 50))}
        per_request += percentile_intervals(Resampler(None, 800, seed=k), x, point)[50.0].contains(1.0)
        per_session += percentile_intervals(Resampler(units, 800, seed=k), x, point)[50.0].contains(1.0)
    assert per_session / trials >= 0.88 and per_request / trials <= 0.75, (per_session, per_request)


def test_single_turn_rows_resample_requests() -> None:
    assert multi_turn_units(np.array(["", "", ""], dtype=object)) is None
    assert multi_turn_units(np.array(["a", "b", "c"], dtype=object)) is None  # each session once
    units = multi_turn_units(np.array(["a", "a", "", "b"], dtype=object))
    assert units is not None and len(set(units)) == 3  # the row without a session is its own unit


def test_many_sessions_are_dealt_into_groups_with_the_same_figures() -> None:
    rng = np.random.default_rng(2)
    x = rng.lognormal(0, 1, 200_000)
    units = np.repeat(np.arange(50_000), 4)
    rs = Resampler(units, x.size)
    assert rs.units == 50_000 and rs.n_groups == 400 and rs.weights.shape == (1000, 400)
    iv = percentile_intervals(rs, x, {50.0: float(np.percentile(x, 50))})[50.0]
    assert iv.low is not None and iv.high is not None and iv.low < 1.0 < iv.high and iv.high - iv.low < 0.03


def blocks(levels: list[tuple[int, float]], spans: int = 10) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Levels of `n` requests at attainment `a`, good ones spread evenly over `spans` spans."""
    out = []
    for n, a in levels:
        j = np.full(spans, n / spans)
        out.append([(j, j * a)])
    return out


def test_capacity_replicates_apply_the_rule() -> None:
    loads = np.array([2.0, 4.0, 6.0, 8.0])
    draws, held, att = capacity_draws(loads, blocks([(100, 1.0), (100, 0.95), (100, 0.85), (100, 0.1)]), 0.9)
    # spans alike: every replicate is the point — 4 + (0.95 - 0.9) / (0.95 - 0.85) × 2 = 5
    assert np.allclose(draws, 5.0) and held == 0.0 and att.shape == (1000, 4)
    none, _, _ = capacity_draws(loads[:2], blocks([(50, 0.5), (50, 0.2)]), 0.9)
    assert np.all(none == 0.0)  # no level meets the target: 0
    top, held, _ = capacity_draws(loads[:2], blocks([(50, 1.0), (50, 1.0)]), 0.9)
    assert np.all(top == 4.0) and held == 1.0  # held up to the highest level


def test_noisy_levels_give_an_interval_around_the_crossing() -> None:
    rng = np.random.default_rng(4)
    spans = [[(np.full(10, 30.0), rng.binomial(30, a, 10).astype(float))] for a in (1.0, 0.96, 0.88, 0.5)]
    draws, _, _ = capacity_draws(np.array([10.0, 20.0, 30.0, 40.0]), spans, 0.9)
    iv = from_draws(draws, float(np.median(draws)))
    assert iv.low is not None and iv.high is not None and 10.0 <= iv.low < iv.high <= 40.0


def test_a_load_probed_twice_resamples_its_probes() -> None:
    """Two probes at 6 req/s, each steady inside (every span alike) but one at 95 %, one at 85 %: spans
    alone would see no noise; resampling the probes puts the crossing anywhere between 4 and 8."""
    even = [(np.full(10, 30.0), np.full(10, 30.0 * a)) for a in (0.95, 0.85)]
    loads = np.array([4.0, 6.0, 8.0])
    levels = [[(np.full(10, 30.0), np.full(10, 30.0))], even, [(np.full(10, 30.0), np.full(10, 6.0))]]
    draws, _, att = capacity_draws(loads, levels, 0.9)
    assert set(np.round(np.unique(att[:, 1]), 3)) == {0.85, 0.9, 0.95}  # both A, one of each, both B
    assert draws.min() < 6.0 < draws.max()


def test_merged_repeats_widen_with_their_spread() -> None:
    rng = np.random.default_rng(9)
    a = Interval(9.0, 11.0, rng.normal(10.0, 0.5, 1000))
    b = Interval(11.0, 13.0, rng.normal(12.0, 0.5, 1000))
    m = merge_repeats([a, b], [10.0, 12.0])
    assert m is not None and m.low is not None and m.high is not None
    assert m.low < 10.5 and m.high > 11.5 and m.contains(11.0)
    env = merge_repeats([Interval(9.0, 11.0), Interval(11.0, None)], [10.0, 12.0])  # no replicates: envelope
    assert env is not None and (env.low, env.high) == (9.0, None)


def test_rank_by_what_separates() -> None:
    a, b, c = Interval(10.0, 12.0), Interval(11.0, 13.0), Interval(6.0, 8.0)
    assert ranks([a, b, c], +1) == [1, 1, 3]  # a and b overlap: tied; c is below both
    assert better(b, c, +1) and not better(a, b, +1) and better(c, a, -1)
    assert ranks([Interval(5.0, None), Interval(7.0, 9.0)], +1) == [1, 1]  # an open end reaches up
