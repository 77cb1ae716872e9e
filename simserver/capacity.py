"""A profile's known capacity under an SLO: the highest open-loop rate whose attainment meets the target.

`--shape search` estimates a capacity from a live run and puts a 95 % interval on it; this module
gives the figure to check it against, from the engine model alone (simserver/offline.py, virtual
time): attainment at a rate is good / sent over a long open-loop run (Poisson arrivals, the first
`warmup_s` left out, the engine left to finish what it holds), pooled over a few seeds. The same
seeds at every rate (common random numbers) keep attainment against rate smooth, so the bisection
converges on one crossing. "Good" is the SLO's one definition (core/slo.py `Slo.is_good`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from core.slo import Slo
from simserver.offline import Record, Request, simulate, simulate_open
from simserver.profiles import Profile


def good_count(records: list[Record], slo: Slo, warmup_s: float) -> tuple[int, int]:
    """(good, sent) among the requests sent after `warmup_s`."""
    good = sent = 0
    for r in records:
        if r.t_send < warmup_s:
            continue
        sent += 1
        ttft = r.ttft if r.t_first >= 0 else None
        e2e = r.t_last - r.t_send if r.t_last >= 0 else None
        good += slo.is_good(ttft, r.tpot, e2e)
    return good, sent


def attainment_at(
    profile: Profile,
    slo: Slo,
    rate_rps: float,
    make_request: Callable[[random.Random], Request],
    duration_s: float = 300.0,
    seeds: Sequence[int] = (0, 1, 2),
    warmup_s: float = 10.0,
) -> float:
    """Pooled attainment of open-loop runs at `rate_rps` (one per seed)."""
    good = sent = 0
    for seed in seeds:
        g, n = good_count(
            simulate_open(profile, rate_rps, duration_s, make_request, seed).records, slo, warmup_s
        )
        good, sent = good + g, sent + n
    return good / sent if sent else 0.0


def open_loop_capacity(
    profile: Profile,
    slo: Slo,
    make_request: Callable[[random.Random], Request],
    start_rps: float = 1.0,
    precision: float = 0.005,
    duration_s: float = 300.0,
    seeds: Sequence[int] = (0, 1, 2),
    warmup_s: float = 10.0,
) -> tuple[float, list[tuple[float, float]]]:
    """The rate where attainment crosses `slo.attain_target` (bracket by doubling from `start_rps`, then
    bisect to `precision`, relative), and every (rate, attainment) evaluated on the way."""
    seen: list[tuple[float, float]] = []

    def att(rate: float) -> float:
        a = attainment_at(profile, slo, rate, make_request, duration_s, seeds, warmup_s)
        seen.append((rate, a))
        return a

    target = slo.attain_target
    lo, hi = 0.0, start_rps
    for _ in range(30):
        if att(hi) < target:
            break
        lo, hi = hi, hi * 2
    else:
        raise RuntimeError(f"attainment never fell below {target:.0%} up to {hi:g} req/s")
    while lo <= 0 or hi - lo > precision * lo:
        mid = (lo + hi) / 2
        if mid < start_rps * 1e-3:
            raise RuntimeError(f"no rate above {mid:g} req/s meets {target:.0%} attainment")
        if att(mid) >= target:
            lo = mid
        else:
            hi = mid
    a_lo, a_hi = att(lo), att(hi)
    # linear between the last two: the crossing, not just the bracket's edge
    value = lo + (a_lo - target) / (a_lo - a_hi) * (hi - lo) if a_lo > a_hi else lo
    return value, sorted(seen)


def closed_loop_capacity(
    profile: Profile,
    slo: Slo,
    make_request: Callable[[random.Random], Request],
    max_users: int = 256,
    duration_s: float = 300.0,
    seeds: Sequence[int] = (0, 1, 2),
    warmup_s: float = 10.0,
) -> tuple[float, list[tuple[float, float]]]:
    """The user count where attainment crosses `slo.attain_target` under closed-loop users (no think
    time), by the capacity rule of a step ramp (analysis/steps.py): the highest count meeting the
    target, interpolated linearly towards the next; and every (users, attainment) evaluated."""
    seen: list[tuple[float, float]] = []

    def att(users: int) -> float:
        good = sent = 0
        for seed in seeds:
            rec = simulate(profile, lambda _t: users, duration_s, make_request, seed).records
            g, n = good_count(rec, slo, warmup_s)
            good, sent = good + g, sent + n
        seen.append((float(users), good / sent if sent else 0.0))
        return seen[-1][1]

    target = slo.attain_target
    if att(1) < target:
        return 0.0, seen
    lo, hi = 1, 2
    while att(hi) >= target:
        lo, hi = hi, hi * 2
        if hi > max_users:
            raise RuntimeError(f"attainment never fell below {target:.0%} up to {max_users} users")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if att(mid) >= target else (lo, mid)
    a_lo, a_hi = dict(seen)[float(lo)], dict(seen)[float(hi)]
    return lo + (a_lo - target) / (a_lo - a_hi) * (hi - lo), sorted(seen)
