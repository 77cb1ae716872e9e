"""`--shape search`: the highest load whose SLO attainment stays ≥ the target, found by probing.

  probe 0   synchronous    1 request at a time (closed loop): the unloaded latency and its rate r_sync.
                           If even that misses the SLO, no load meets it: the search ends there.
  bracket   doubling       open-loop probes at r_sync, 2·r_sync, 4·r_sync … until one fails clearly
                           (stopped early, or `clearly_fails`: the capacity's interval needs a level
                           above it that fails beyond noise)
                           (`--search-by users`: closed-loop probes at 1, 2, 4 … users)
  bisect    (lo + hi) / 2  between the highest passing load (lo) and the lowest failing one (hi),
                           until hi − lo ≤ --search-precision × lo (users: or hi − lo ≤ 1)
  confirm   lo, hi again   each edge of that bracket probed CONFIRM times: a load is judged on all
                           its probes pooled, so one lucky probe cannot decide the answer; when the
                           pooled verdict turns, the bracket moves and bisection goes on

Each probe is a stage of --search-probe-duration (default 20s) whose first part is a warm-up the
analysis leaves out (--warmup, or 25 % of the probe when --warmup is 0). It passes when the
requests that ended in it after the warm-up meet the target (`StageFigures.attainment`: the live
figures under --slo, computed by the load path). A probe ends early, failing, when
- it is clearly **over-saturated** (open loop only; GuideLLM's over-saturation stop): after
  OVERSAT_MIN_S measured, the requests in flight keep growing — the least-squares slope's 95 % lower
  bound is above 0 and the slope is ≥ OVERSAT_SHARE of the arrival rate (at least one arrival in ten
  is not being served) — and TTFT rises (p50 of the second half ≥ OVERSAT_TTFT_RATIO × the first
  half's): the queue grows without bound, more minutes would only make it longer;
- or it **clearly fails**: half its measured part is over, ≥ CLEAR_MIN requests ended and the
  attainment's 95 % upper bound (Wilson) is below the target by CLEAR_MARGIN (requests sent close
  together share a queue: fewer independent draws than they look).
After a failing probe, a stage without arrivals lets the queue it left drain (until nothing is in
flight, at most DRAIN_MAX_S), so the next probe starts on an idle server; the search ends with one
too, so its last probe's requests complete instead of being cancelled. A probe that would not
finish before -t is not started.

The search steers by these live figures; the capacity it reports, and its 95 % interval, are
recomputed from requests.csv (analysis/steps.py, analysis/intervals.py): every probe is a load level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from core.stage import users_label
from shapes.base import Level, Progress, Schedule, StageFigures

OVERSAT_MIN_S = 4.0
OVERSAT_SHARE = 0.10
OVERSAT_TTFT_RATIO = 1.5
CLEAR_MIN = 30
CLEAR_MARGIN = 0.15
DRAIN_MAX_S = 60.0
MAX_DOUBLINGS = 20
MAX_PROBES = 40
CONFIRM = 2
Z95 = 1.959964


def wilson_upper(good: int, n: int, z: float = Z95) -> float:
    """The Wilson score interval's upper bound of a proportion good / n."""
    if n <= 0:
        return 1.0
    p = good / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / (1 + z * z / n))


def clearly_fails(good: int, n: int, target: float) -> bool:
    """At least CLEAR_MIN requests and the Wilson upper bound below the target by CLEAR_MARGIN: the
    margin because requests sent close together share a queue, so they are fewer independent draws
    than they look."""
    return n >= CLEAR_MIN and wilson_upper(good, n) < target - CLEAR_MARGIN


@dataclass(slots=True)
class Probe:
    """One probe: its stage (`step`), load, planned and actual length, and the live verdict."""

    step: int
    load: float
    label: str
    start_s: float
    planned_s: float
    ran_s: float | None = None
    verdict: str = ""  # "pass" or "fail"
    reason: str = ""  # why it failed or ended early ("" for a full-length pass)
    stopped_early: bool = False
    attainment: float | None = None
    ended: int = 0
    ok_rps: float | None = None

    def to_dict(self) -> dict:
        return {
            "step": self.step,
            "load": self.load,
            "label": self.label,
            "planned_s": self.planned_s,
            "ran_s": self.ran_s,
            "verdict": self.verdict,
            "reason": self.reason,
            "stopped_early": self.stopped_early,
            "live_attainment": self.attainment,
            "live_ended": self.ended,
            "live_ok_rps": self.ok_rps,
        }


@dataclass(slots=True)
class SearchSchedule(Schedule):
    by: str = "rate"  # "rate": open-loop req/s; "users": closed-loop users
    precision: float = 0.05
    probe_s: float = 20.0
    warmup_s: float = 5.0
    duration_s: float | None = None  # -t: no probe starts that would not finish before it
    max_concurrency: int = 0
    progress: Progress | None = None
    probes: list[Probe] = field(default_factory=list)
    lo: float | None = None  # highest passing load
    hi: float | None = None  # lowest failing load
    sync_rps: float | None = None
    pooled: dict[float, list[int]] = field(
        default_factory=dict
    )  # load → [ended, good, probes, stopped early]
    outcome: str = ""  # why the search ended ("" while it runs)
    failed: str = ""  # set when the search could not run at all (GoodputShape logs it)
    _next: float | None = None
    _drain: Level | None = None
    _drain_start_s: float = 0.0
    _steps: int = 0

    open_loop = True

    def bind(self, progress: Progress) -> None:
        self.progress = progress

    @property
    def unit(self) -> str:
        return "users" if self.by == "users" else "req/s"

    def level_at(self, run_time_s: float) -> Level | None:
        if self._drain is not None:
            if self._drained(run_time_s):
                self._drain = None
            else:
                return self._drain
        if self.outcome:
            return None
        probe = self.probes[-1] if self.probes else None
        if probe is None or probe.verdict:
            return self._start(run_time_s)
        if self._ends(probe, run_time_s):
            self._after(probe, run_time_s)
            return self.level_at(run_time_s)
        return self._level(probe)

    # -- probes ------------------------------------------------------------------------------
    def _start(self, t: float) -> Level | None:
        """The next probe (the synchronous one first), or None once the search is over."""
        if self.duration_s is not None and t + self.probe_s > self.duration_s:
            self.outcome = self.outcome or "-t ended the search before it reached its precision"
            return None
        if not self.probes:
            label = "synchronous (1 user)" if self.by == "rate" else "1 user"
            load = 1.0
        elif self._next is None:
            return None
        else:
            load = self._next
            label = users_label(load) if self.by == "users" else f"{load:.4g} req/s"
        self.probes.append(Probe(self._step(), load, label, t, self.probe_s))
        return self._level(self.probes[-1])

    def _level(self, probe: Probe) -> Level:
        synchronous = self.by == "rate" and probe is self.probes[0]
        if self.by == "users" or synchronous:
            users = int(probe.load)
            return Level(probe.step, users, float(users), probe.label, None, self.warmup_s, 0.0)
        return Level(probe.step, self.max_concurrency, 1.0, probe.label, probe.load, self.warmup_s, 0.0)

    def _step(self) -> int:
        self._steps += 1
        return self._steps - 1

    def _ends(self, probe: Probe, t: float) -> bool:
        """Whether the probe is over (full length, over-saturated, clearly failing); sets its verdict."""
        elapsed = t - probe.start_s
        fig = self.progress.stage_figures() if self.progress is not None else None
        if fig is not None:
            probe.attainment, probe.ended, probe.ok_rps = fig.attainment, fig.ended, fig.ok_rps
        if fig is not None and elapsed < probe.planned_s:
            why = self._early_fail(probe, fig)
            if why:
                probe.verdict, probe.reason, probe.stopped_early = "fail", why, True
        elif elapsed >= probe.planned_s:
            target = self.target
            if fig is None or not fig.ended:
                probe.verdict, probe.reason = "fail", "no request ended after the warm-up"
            elif (fig.attainment or 0.0) >= target:
                probe.verdict = "pass"
            else:
                probe.verdict = "fail"
                probe.reason = f"attainment {fig.attainment:.1%} < {target:.0%}"
        if probe.verdict:
            probe.ran_s = elapsed
        return bool(probe.verdict)

    def _early_fail(self, probe: Probe, fig: StageFigures) -> str:
        """Why the probe already fails for sure ("" when it may still pass)."""
        rate = probe.load if self._level(probe).rate_rps is not None else None
        slope, low = fig.in_flight_slope_rps, fig.in_flight_slope_low_rps
        early, late = fig.ttft_p50_early_s, fig.ttft_p50_late_s
        if (
            rate is not None
            and fig.elapsed_s >= OVERSAT_MIN_S
            and slope is not None
            and low is not None
            and low > 0
            and slope >= OVERSAT_SHARE * rate
            and early is not None
            and late is not None
            and late >= OVERSAT_TTFT_RATIO * early
        ):
            return (
                f"over-saturated: in flight growing by {slope:.3g}/s ({fig.in_flight} now), "
                f"TTFT p50 {early * 1000:.0f} → {late * 1000:.0f} ms"
            )
        target = self.target
        half = fig.elapsed_s >= (probe.planned_s - self.warmup_s) / 2
        if half and clearly_fails(fig.good, fig.ended, target):
            upper = wilson_upper(fig.good, fig.ended)
            return (
                f"clearly failing: attainment {fig.good / fig.ended:.1%} of {fig.ended} "
                f"(95 % upper bound {upper:.1%} < {target - CLEAR_MARGIN:.0%})"
            )
        return ""

    @property
    def target(self) -> float:
        return self.progress.attain_target() if self.progress is not None else 0.9

    # -- between probes ------------------------------------------------------------------------
    def _after(self, probe: Probe, t: float) -> None:
        """Pool the finished probe with earlier ones at its load, plan the next, drain after a failure."""
        first = probe is self.probes[0]
        if first and self.by == "rate":
            self.sync_rps = probe.ok_rps
            if probe.verdict != "pass":
                self.outcome = "the SLO is not met even one request at a time: no load meets it"
            elif not self.sync_rps:
                self.outcome = "the synchronous probe completed no request: nothing to search"
            else:
                self._next = self.sync_rps
            return self._drain_if(probe, t)
        acc = self.pooled.setdefault(probe.load, [0, 0, 0, 0])
        if probe.stopped_early or probe.ended:  # a probe with nothing ended counts as a failure
            acc[0] += max(probe.ended, 1)
            acc[1] += round((probe.attainment or 0.0) * probe.ended)
        acc[2] += 1
        acc[3] += probe.stopped_early  # ended early as failing: that load fails, whatever else passed
        if first and probe.verdict != "pass":
            self.outcome = "the SLO is not met even by one user: no load meets it"
        else:
            self._next = self._plan()
        self._drain_if(probe, t)

    def _bracket(self) -> tuple[float | None, float | None]:
        """(highest passing load below the lowest failing one, lowest failing load): each load judged
        on every probe made at it, pooled; a load where a probe was stopped early fails."""
        target = self.target
        ok = {x: g >= target * n and n > 0 and not early for x, (n, g, _, early) in self.pooled.items()}
        fails = [x for x, passed in ok.items() if not passed]
        hi = min(fails) if fails else None
        below = [x for x, passed in ok.items() if passed and (hi is None or x < hi)]
        return (max(below) if below else None), hi

    def _plan(self) -> float | None:
        """The next probe's load, or None (with `outcome` set) when the search is done."""
        self.lo, self.hi = lo, hi = self._bracket()
        if len(self.probes) >= MAX_PROBES:
            self.outcome = f"stopped after {MAX_PROBES} probes"
            return None
        if hi is None or not self._clear_fail_from(hi):
            # double until a load fails clearly: the interval's upper end needs a level far enough above
            if len(self.probes) > MAX_DOUBLINGS:
                self.outcome = f"every probe up to {lo:g} {self.unit} met the SLO (no failure found)"
                return None
            return max(self.pooled) * 2
        if lo is None or lo <= 0:
            if self.by == "users":
                self.outcome = "the SLO is not met even by one user: no load meets it"
                return None
            if hi / 2 < (self.sync_rps or 1.0) / 64:
                self.outcome = f"no rate down to {hi:.3g} req/s met the SLO"
                return None
            return hi / 2
        if self.by == "users" and (hi - lo <= 1 or hi - lo <= self.precision * lo):
            return self._confirm(lo, hi, f"bracketed: {lo:g} users pass, {hi:g} fail")
        if self.by == "rate" and hi - lo <= self.precision * lo:
            return self._confirm(
                lo, hi, f"bracketed within {self.precision:.0%}: {lo:.4g} req/s pass, {hi:.4g} fail"
            )
        mid = (lo + hi) / 2
        return float(int(mid)) if self.by == "users" else mid

    def _clear_fail_from(self, hi: float) -> bool:
        """Whether some load at or above `hi` fails clearly: stopped early, or `clearly_fails` pooled."""
        target = self.target
        return any(
            early or clearly_fails(g, n, target) for x, (n, g, _, early) in self.pooled.items() if x >= hi
        )

    def _confirm(self, lo: float, hi: float, done: str) -> float | None:
        """A bracket narrow enough: probe its edges again until each holds CONFIRM probes (one noisy
        probe decided each edge; pooled, a lucky one may turn), then the search is done."""
        for edge in (lo, hi):
            if self.pooled[edge][2] < CONFIRM:
                return edge
        self.outcome = done + f" (each edge probed {CONFIRM}×)"
        return None

    def _drain_if(self, probe: Probe, t: float) -> None:
        """A stage without arrivals after a failed probe, and at the end: until nothing is in flight."""
        if (probe.verdict == "pass" and not self.outcome) or self.progress is None:
            return
        if self.progress.in_flight() > 0:
            self._drain = Level(self._step(), 0, 1.0, "drain", 0.0, 0.0, 0.0)
            self._drain_start_s = t

    def _drained(self, t: float) -> bool:
        if self.progress is None or t - self._drain_start_s >= DRAIN_MAX_S:
            return True
        return self.progress.in_flight() == 0

    def describe(self) -> dict:
        return {
            "search_by": self.by,
            "unit": self.unit,
            "precision": self.precision,
            "probe_duration_s": self.probe_s,
            "warmup_s": self.warmup_s,
            "max_concurrency": self.max_concurrency,
            "duration_s": self.duration_s,
            "attain_target": self.target,
            "synchronous_rps": self.sync_rps,
            "bracket": [self.lo, self.hi],
            "outcome": self.outcome,
            "probes": [p.to_dict() for p in self.probes],
        }
