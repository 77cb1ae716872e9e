"""95 % intervals on the figures a decision rests on: how far each could move if the run were repeated.

One method per figure (README.md § Intervals), all seeded (`SEED`, so a report is reproducible from
requests.csv) and vectorized with numpy:
- **latency percentiles** (TTFT, TPOT, E2E p50/p95/p99): percentile bootstrap, `REPLICATES` resamples
  of the run's *units* — its requests, or its sessions when the run holds multi-turn sessions (the
  turns of one conversation share a context and a user, so they are not independent draws). A
  replicate's percentile is the one numpy's default (linear) rule gives on the resampled values.
  Only the order statistics that a replicate's percentile can reach are kept apart (a band of ±8
  standard deviations of the rank around it; the rest are two lumps), so a 1M-row run costs a few
  thousand points per replicate, not a million. Requests: each replicate's counts are one
  multinomial draw over that support; sessions: (replicates × sessions) multinomial weights times the
  sessions' counts (more than `MAX_GROUPS` sessions are first dealt at random into that many groups).
- **SLO attainment and goodput**: the same resampling; attainment = good / judged of the replicate,
  goodput = its good completions / the window (a fixed length).
- **capacity at SLO**: a block bootstrap within each complete load level — its window cut into
  `BLOCKS` spans of consecutive sends, resampled with replacement (requests sent close together
  share the server's queue and batch, so they are not independent draws); a load probed several
  times (a search's confirmed edges) has its probes resampled too — and the capacity rule
  (analysis/steps.py) applied to every replicate.
  A replicate where no level meets the target counts as 0; when more than 2.5 % of the replicates
  held the target up to the highest level, the interval has no upper end ("≥").
The interval is the 2.5 and 97.5 percentiles of the replicates, widened if need be to hold the
figure itself. `Interval.draws` keeps the replicates (not written anywhere) so repeats can be merged
(analysis/compare.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REPLICATES = 1000
SEED = 0
LEVEL = 0.95
MAX_GROUPS = 400  # resampling units beyond this many are dealt at random into this many groups
BAND_SD = 8.0  # a replicate's percentile is looked for within ±8 sd of its rank
BLOCKS = 10  # a load level's window is resampled in this many spans of consecutive sends
GRID = 400  # order statistics in that band on which replicates are resolved (all of them when fewer)


@dataclass(frozen=True)
class Interval:
    """A 95 % interval `[low, high]` (None: open at that end); `draws` the replicates behind it."""

    low: float | None
    high: float | None
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_list(self) -> list[float | None]:
        return [self.low, self.high]

    def contains(self, x: float) -> bool:
        return (self.low is None or self.low <= x) and (self.high is None or x <= self.high)

    def overlaps(self, other: Interval) -> bool:
        """Whether the two share a point (an open end reaches every value on its side)."""
        below = self.high is not None and other.low is not None and self.high < other.low
        above = self.low is not None and other.high is not None and self.low > other.high
        return not (below or above)


def from_draws(draws: np.ndarray, point: float | None, open_high: bool = False) -> Interval:
    """The percentile interval of `draws`, widened to hold `point`; `open_high`: no upper end."""
    d = np.asarray(draws, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return Interval(None, None, None)
    a = (1 - LEVEL) / 2
    lo, hi = (float(x) for x in np.quantile(d, [a, 1 - a]))
    if point is not None:
        lo, hi = min(lo, point), max(hi, point)
    return Interval(lo, None if open_high else hi, d)


class Resampler:
    """Bootstrap replicates over one set of rows: resampling their requests, or their sessions (`units`).

    The units (more than `MAX_GROUPS` of them dealt at random into that many groups: a bootstrap
    over groups of independent units is a bootstrap over the units) get multinomial weights per
    replicate, `weights` (replicates × groups); every figure of the run is a weighted sum over groups.
    """

    def __init__(self, units: np.ndarray | None, n: int, replicates: int = REPLICATES, seed: int = SEED):
        self.n = n
        self.b = replicates
        self.by_session = units is not None
        rng = np.random.default_rng(seed)
        codes = np.arange(n) if units is None else np.unique(units, return_inverse=True)[1].ravel()
        n_units = int(codes.max()) + 1 if n else 0
        self.units = n_units  # requests, or sessions
        if n_units > MAX_GROUPS:
            codes = rng.permutation(n_units)[codes] % MAX_GROUPS
            n_units = MAX_GROUPS
        self.groups = codes.astype(np.int64)
        self.n_groups = n_units
        self.weights = (
            rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=replicates).astype(np.float64)
            if n_units
            else np.zeros((replicates, 0))
        )

    def counts(self, mask: np.ndarray) -> np.ndarray:
        """Each replicate's number of rows in `mask`."""
        return self.weights @ np.bincount(self.groups[mask], minlength=self.n_groups).astype(np.float64)

    def ratio(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        """Each replicate's count(num) / count(den) (`num` a subset of `den`); NaN where den is empty."""
        top, bottom = self.counts(num), self.counts(den)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.maximum(bottom, 1e-300), np.nan)

    def percentiles(self, values: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
        """Each replicate's percentiles `qs` (in %) of `values` (NaN rows are absent), one array per q."""
        keep = ~np.isnan(values)
        v, groups = values[keep], self.groups[keep]
        if v.size == 0:
            return [np.full(self.b, np.nan) for _ in qs]
        sv = np.sort(v)
        per_group = np.bincount(groups, minlength=self.n_groups).astype(np.float64)
        return [self._percentile(v, groups, sv, per_group, q / 100.0) for q in qs]

    def _percentile(
        self, v: np.ndarray, groups: np.ndarray, sv: np.ndarray, per_group: np.ndarray, q: float
    ) -> np.ndarray:
        """Replicates of one percentile: each replicate's count of values ≤ each point of a grid of
        order statistics around it, from the groups' counts below each point."""
        n = sv.size
        r = q * (n - 1)
        x = sv[int(np.floor(r))]
        below = np.bincount(groups[v <= x], minlength=self.n_groups) - q * per_group
        sd = max(float(np.sqrt(np.sum(below * below))), 1.0)  # the rank's spread over replicates
        a = max(0, int(np.floor(r - BAND_SD * sd)) - 1)
        z = min(n, int(np.ceil(r + BAND_SD * sd)) + 2)
        ranks = np.unique(np.linspace(a, z - 1, min(z - a, GRID)).round().astype(np.int64))
        grid = np.unique(sv[ranks])
        floor = a > 0 and sv[a - 1] < grid[0]  # values below the band: a sentinel point marks them
        if floor:
            grid = np.concatenate(([sv[a - 1]], grid))
        cell = np.searchsorted(grid, v, side="left")  # value ≤ grid[m] ⇔ cell ≤ m
        h = np.bincount(groups * (grid.size + 1) + cell, minlength=self.n_groups * (grid.size + 1))
        below_grid = np.cumsum(h.reshape(self.n_groups, grid.size + 1), axis=1)[:, : grid.size]
        cum = self.weights @ below_grid.astype(np.float64)  # (replicates, grid): values ≤ grid[m]
        total = self.weights @ per_group
        return _replicate_percentile(cum, total, grid, q, floor)


def _replicate_percentile(
    cum: np.ndarray, total: np.ndarray, grid: np.ndarray, q: float, floor: bool
) -> np.ndarray:
    """numpy's linear percentile of each replicate from its counts of values ≤ each grid point: the
    order statistic of rank k (0-based) is the first grid point with more than k values at or below it.
    A rank beyond the grid (or, with `floor`, at its first point, which stands for every value below
    the band) lies outside the band: NaN (beyond ±8 sd, practically never), dropped by `from_draws`."""
    h = q * (total - 1)
    k = np.floor(h)
    frac = h - k
    k2 = np.minimum(k + 1, total - 1)
    over_lo, over_hi = cum > k[:, None], cum > k2[:, None]
    lo_at, hi_at = over_lo.argmax(axis=1), over_hi.argmax(axis=1)
    bad = ~over_lo.any(axis=1) | ~over_hi.any(axis=1) | (total <= 0)
    if floor:
        bad |= lo_at == 0
    out = grid[lo_at] + frac * (grid[hi_at] - grid[lo_at])
    out[bad] = np.nan
    return out


def percentile_intervals(
    rs: Resampler, values: np.ndarray, points: dict[float, float | None]
) -> dict[float, Interval]:
    """Intervals of the percentiles `points` ({q in %: the figure itself}) of `values`."""
    qs = tuple(points)
    draws = rs.percentiles(np.asarray(values, dtype=np.float64), qs)
    return {q: from_draws(d, points[q]) for q, d in zip(qs, draws, strict=True)}


def capacity_draws(
    loads: np.ndarray,
    blocks: list[list[tuple[np.ndarray, np.ndarray]]],
    target: float,
    replicates: int = REPLICATES,
    seed: int = SEED,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Replicates of the capacity rule over levels (`loads` ascending, distinct), the share of
    replicates held up to the highest level, and each level's attainment replicates (replicates × levels).

    `blocks[i]` holds level i's parts — one per stage run at that load (a search probes a load more
    than once) — each its judged and good counts per block of its window (consecutive sends; one
    block per request resamples requests). Each replicate resamples a level's parts with replacement
    and, within each, its blocks — consecutive requests share the server's state (a queue, a full
    batch), so they go together, and two probes of one load differ by more than either shows — then
    applies the rule of analysis/steps.py: the highest level meeting the target, interpolated
    linearly towards the next level; the highest level itself when it is the last; 0 when none meets it.
    """
    rng = np.random.default_rng(seed)
    att = np.empty((replicates, len(blocks)))
    for i, parts in enumerate(blocks):
        tj, tg = np.empty((replicates, len(parts))), np.empty((replicates, len(parts)))
        for p, (judged, good) in enumerate(parts):
            j, g = np.asarray(judged, dtype=np.float64), np.asarray(good, dtype=np.float64)
            pick = rng.integers(0, j.size, size=(replicates, j.size))
            tj[:, p], tg[:, p] = j[pick].sum(axis=1), g[pick].sum(axis=1)
        if len(parts) > 1:  # the parts themselves resampled: a replicate sums a draw of them
            which = rng.integers(0, len(parts), size=(replicates, len(parts)))
            tj, tg = np.take_along_axis(tj, which, axis=1), np.take_along_axis(tg, which, axis=1)
        sj, sg = tj.sum(axis=1), tg.sum(axis=1)
        point = sum(float(np.sum(g)) for _, g in parts) / max(sum(float(np.sum(j)) for j, _ in parts), 1.0)
        att[:, i] = np.where(sj > 0, sg / np.maximum(sj, 1.0), point)
    passing = att >= target
    last = len(blocks) - 1
    any_pass = passing.any(axis=1)
    i = np.where(any_pass, last - np.argmax(passing[:, ::-1], axis=1), 0)
    x = np.asarray(loads, dtype=np.float64)
    nxt = np.minimum(i + 1, last)
    rows = np.arange(replicates)
    a0, a1 = att[rows, i], att[rows, nxt]
    with np.errstate(invalid="ignore", divide="ignore"):
        interp = x[i] + (a0 - target) / (a0 - a1) * (x[nxt] - x[i])
    out = np.where(i == last, x[last], interp)
    out = np.where(any_pass, out, 0.0)
    return out, float(np.mean(any_pass & (i == last))), att


@dataclass(frozen=True)
class Headline:
    """95 % intervals of a run's headline figures, and how they were made."""

    resampled: str  # "requests" or "sessions"
    units: int
    ttft: dict[str, Interval]  # "p50", "p95", "p99"
    tpot: dict[str, Interval]
    e2e: dict[str, Interval]
    goodput_req_per_s: Interval
    slo_attainment: Interval
    replicates: int = REPLICATES
    seed: int = SEED

    def to_dict(self) -> dict:
        """summary.json `intervals`."""
        pcts = {k: {q: iv.to_list() for q, iv in getattr(self, k).items()} for k in ("ttft", "tpot", "e2e")}
        return {
            "level": LEVEL,
            "method": f"percentile bootstrap over {self.resampled}",
            "resampled": self.resampled,
            "units": self.units,
            "replicates": self.replicates,
            "seed": self.seed,
            "ttft_s": pcts["ttft"],
            "tpot_s": pcts["tpot"],
            "e2e_s": pcts["e2e"],
            "goodput_req_per_s": self.goodput_req_per_s.to_list(),
            "slo_attainment": self.slo_attainment.to_list(),
        }


PCTS = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def multi_turn_units(sessions: np.ndarray | None) -> np.ndarray | None:
    """The session of each row when the rows hold multi-turn sessions (a non-empty session seen
    twice), else None: single requests are the units."""
    if sessions is None or sessions.size == 0:
        return None
    s = np.asarray(sessions, dtype=object)
    named = s[(s != "") & (s != None)]  # noqa: E711 - elementwise
    if named.size == 0 or np.unique(named).size == named.size:
        return None
    # a row without a session is its own unit
    return np.where((s == "") | (s == None), np.arange(s.size).astype(str), s)  # noqa: E711


def resampler(sessions: np.ndarray | None, n: int) -> Resampler:
    """The run's resampler: over its sessions when it holds multi-turn ones, else over its requests."""
    return Resampler(multi_turn_units(sessions), n)


def headline(
    rs: Resampler,
    latencies: dict[str, np.ndarray],
    points: dict[str, dict[str, float | None]],
    good: np.ndarray,
    judged: np.ndarray,
    attainment: float | None,
    good_done: np.ndarray,
    goodput: float | None,
) -> Headline:
    """Intervals of the headline figures over the resampler's rows (every array aligned with them).

    `latencies`: "ttft"/"tpot"/"e2e" → values (NaN where a row has none, e.g. failed); `points`: the
    same keys → {"p50": figure, …}; `good`/`judged`: attainment's numerator and denominator;
    `good_done`: the rows whose good completion counts in goodput (`goodput` the figure).
    """
    pct = {}
    for k, v in latencies.items():
        ivs = percentile_intervals(rs, v, {PCTS[q]: points[k][q] for q in PCTS})
        pct[k] = {q: ivs[PCTS[q]] for q in PCTS}
    k = int(good_done.sum())
    gp_draws = rs.counts(good_done) * (goodput / k) if goodput is not None and k else None
    return Headline(
        resampled="sessions" if rs.by_session else "requests",
        units=rs.units,
        ttft=pct["ttft"],
        tpot=pct["tpot"],
        e2e=pct["e2e"],
        goodput_req_per_s=Interval(None, None) if gp_draws is None else from_draws(gp_draws, goodput),
        slo_attainment=from_draws(rs.ratio(good & judged, judged), attainment),
    )


def merge_repeats(parts: list[Interval | None], points: list[float], seed: int = SEED) -> Interval | None:
    """The interval of the median of a configuration's repeats (their figures `points`, their own
    intervals `parts`): a two-stage bootstrap — the repeats resampled with replacement, each drawn
    at one of its own replicates, the median taken — so the run-to-run spread and each run's own
    noise both widen it. Repeats without replicates (read back from JSON) give the envelope instead."""
    if not parts or any(p is None for p in parts):
        return None
    if any(p.draws is None or p.draws.size == 0 for p in parts):  # type: ignore[union-attr]
        lows = [p.low for p in parts]  # type: ignore[union-attr]
        highs = [p.high for p in parts]  # type: ignore[union-attr]
        return Interval(
            None if None in lows else min(lows),  # type: ignore[type-var]
            None if None in highs else max(highs),  # type: ignore[type-var]
        )
    rng = np.random.default_rng(seed)
    k = len(parts)
    runs = rng.integers(0, k, size=(REPLICATES, k))
    values = np.empty((REPLICATES, k))
    for r, p in enumerate(parts):
        d = p.draws  # type: ignore[union-attr]
        values[runs == r] = d[rng.integers(0, d.size, size=int((runs == r).sum()))]
    draws = np.median(values, axis=1)
    open_high = any(p.high is None for p in parts)  # type: ignore[union-attr]
    open_low = any(p.low is None for p in parts)  # type: ignore[union-attr]
    iv = from_draws(draws, float(np.median(points)), open_high)
    return Interval(None, iv.high, iv.draws) if open_low else iv


def better(a: Interval, b: Interval, direction: int) -> bool:
    """Whether `a` is better than `b` beyond noise: their intervals do not overlap and `a` lies on the
    better side (`direction` +1: higher is better, −1: lower is better)."""
    if direction > 0:
        return a.low is not None and b.high is not None and a.low > b.high
    return a.high is not None and b.low is not None and a.high < b.low


def ranks(intervals: list[Interval], direction: int) -> list[int]:
    """Rank by what separates: 1 + the number of others better beyond noise (`better`). Entries whose
    intervals overlap the best one's share rank 1: a tie within noise."""
    return [1 + sum(better(o, iv, direction) for o in intervals if o is not iv) for iv in intervals]
