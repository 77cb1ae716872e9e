"""The capacity search's plan without processes: a scripted run whose attainment at each load is known
drives `SearchSchedule` tick by tick (shapes/search.py), and the options it is built from."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.errors import OptionError
from shapes import build_schedule
from shapes.base import Level, StageFigures
from shapes.search import SearchSchedule, wilson_upper


class ScriptedRun:
    """The run's progress as the load path would report it, from a known attainment curve.

    The current level is what the schedule returned last; after its warm-up, requests end at the
    level's rate (users: 10/s per user), `attainment(load)` of them good. `queue_growth` makes the
    requests in flight grow at that rate (and TTFT double) on loads above `saturates_at`.
    """

    def __init__(self, attainment, sync_rps: float = 10.0, saturates_at: float = float("inf")) -> None:
        self.attainment = attainment
        self.sync_rps = sync_rps
        self.saturates_at = saturates_at
        self.level: Level | None = None
        self.t = 0.0
        self.t_level = 0.0
        self.in_flight_now = 0
        self.levels: list[Level] = []

    def tick(self, schedule: SearchSchedule, t: float) -> Level | None:
        self.t = t
        level = schedule.level_at(t)
        if level is not None and level != self.level:
            self.level, self.t_level = level, t
            self.levels.append(level)
        if level is not None and level.label == "drain":
            self.in_flight_now = max(0, self.in_flight_now - 20)
        return level

    # -- shapes.base.Progress --
    def ok(self) -> int:
        return 0

    def finished(self) -> int:
        return 0

    def in_flight(self) -> int:
        return self.in_flight_now

    def attain_target(self) -> float:
        return 0.9

    def stage_figures(self) -> StageFigures | None:
        lv = self.level
        if lv is None or self.t < self.t_level + lv.warmup_s:
            return None
        elapsed = self.t - self.t_level - lv.warmup_s
        rate = self.sync_rps if lv.rate_rps is None and lv.label.startswith("synchronous") else None
        load = lv.rate_rps if lv.rate_rps is not None else float(lv.users)
        rate = rate or (lv.rate_rps if lv.rate_rps is not None else 10.0 * lv.users)
        ended = int(rate * elapsed)
        att = self.attainment(load if not lv.label.startswith("synchronous") else 0.0)
        over = load > self.saturates_at
        self.in_flight_now = int(5 + (0.5 * load * elapsed if over else 0))
        return StageFigures(
            elapsed_s=elapsed, ended=ended, good=round(att * ended), ok_rps=rate, in_flight=self.in_flight_now,
            in_flight_slope_rps=0.5 * load if over else 0.0, in_flight_slope_low_rps=0.4 * load if over else -0.1,
            ttft_p50_early_s=0.05, ttft_p50_late_s=0.2 if over else 0.05,
        )  # fmt: skip


def drive(schedule: SearchSchedule, run: ScriptedRun, limit_s: float = 3600) -> float:
    schedule.bind(run)
    t = 0.0
    while run.tick(schedule, t) is not None:
        t += 1.0
        assert t < limit_s, "the search never ended"
    return t


def probe_loads(s: SearchSchedule) -> list[float]:
    return [p.load for p in s.probes]


def test_rate_search_brackets_the_capacity_to_its_precision_and_confirms_both_edges() -> None:
    run = ScriptedRun(lambda load: 1.0 if load <= 57.0 else 0.5)
    s = SearchSchedule(by="rate", precision=0.05, probe_s=10, warmup_s=2.5)
    took = drive(s, run)
    loads = probe_loads(s)
    assert loads[:5] == [1.0, 10.0, 20.0, 40.0, 80.0]  # synchronous, then doubling from its rate
    assert s.lo is not None and s.hi is not None and s.lo <= 57.0 < s.hi and s.hi - s.lo <= 0.05 * s.lo
    assert loads.count(s.lo) == 2 and loads.count(s.hi) == 2  # both edges probed twice
    assert "bracketed within 5%" in s.outcome and s.sync_rps == 10.0
    assert all(p.verdict for p in s.probes) and took < 20 * 11  # every probe judged; about 10 s each
    assert len({p.step for p in s.probes}) == len(s.probes)  # one stage per probe
    assert s.describe()["probes"][0]["label"] == "synchronous (1 user)"


def test_a_lucky_probe_is_outvoted_when_its_load_is_probed_again() -> None:
    """At 45 req/s the first probe passes by luck, the confirmation fails: pooled, 45 fails and the
    bracket moves below it."""
    seen: dict[float, int] = {}

    def attainment(load: float) -> float:
        if load == 0.0:
            return 1.0
        seen[load] = seen.get(load, 0) + 1
        if 42.0 < load <= 46.0:
            return 0.95 if seen[load] == 1 else 0.5  # lucky once, then the truth: failing
        return 1.0 if load <= 42.0 else 0.5

    run = ScriptedRun(lambda load: attainment(load))
    s = SearchSchedule(by="rate", precision=0.05, probe_s=10, warmup_s=2.5)
    drive(s, run)
    assert s.hi is not None and s.hi <= 46.0 and s.lo is not None and s.lo <= 42.0


def test_over_saturated_probe_stops_early_then_the_queue_drains() -> None:
    run = ScriptedRun(lambda load: 1.0 if load <= 30 else 0.95, saturates_at=30.0)
    s = SearchSchedule(by="rate", precision=0.05, probe_s=20, warmup_s=2)
    drive(s, run)
    stopped = [p for p in s.probes if p.stopped_early]
    assert stopped and all(p.load > 30 and p.verdict == "fail" for p in stopped)
    assert all("over-saturated" in p.reason for p in stopped) and all(p.ran_s < 20 for p in stopped)
    assert any(lv.label == "drain" and lv.rate_rps == 0.0 for lv in run.levels)  # no arrivals while draining
    assert s.lo is not None and s.lo <= 30 < s.hi  # type: ignore[operator]


def test_a_clearly_failing_probe_stops_at_half_its_measured_part() -> None:
    run = ScriptedRun(lambda load: 1.0 if load <= 15 else 0.2)
    s = SearchSchedule(by="rate", precision=0.05, probe_s=20, warmup_s=4)
    drive(s, run)
    failing = [p for p in s.probes if p.load > 15]
    assert failing and all(p.stopped_early and "clearly failing" in p.reason for p in failing)
    assert all(p.ran_s is not None and 4 + 8 <= p.ran_s < 20 for p in failing)


def test_users_search_ends_on_neighbouring_counts() -> None:
    run = ScriptedRun(lambda users: 1.0 if users <= 7 else 0.4)
    s = SearchSchedule(by="users", precision=0.05, probe_s=10, warmup_s=2.5)
    drive(s, run)
    assert probe_loads(s)[:4] == [1.0, 2.0, 4.0, 8.0]
    assert (s.lo, s.hi) == (7.0, 8.0) and "7 users pass, 8 fail" in s.outcome
    assert all(float(p.load).is_integer() for p in s.probes)


def test_an_slo_missed_one_request_at_a_time_ends_the_search() -> None:
    run = ScriptedRun(lambda load: 0.5)
    s = SearchSchedule(by="rate", probe_s=10, warmup_s=2)
    drive(s, run)
    assert len(s.probes) == 1 and "not met even one request at a time" in s.outcome


def test_run_time_bounds_the_search() -> None:
    run = ScriptedRun(lambda load: 1.0 if load <= 57.0 else 0.5)
    s = SearchSchedule(by="rate", probe_s=10, warmup_s=2.5, duration_s=45)
    took = drive(s, run)
    assert len(s.probes) == 4 and took <= 45 and "-t ended the search" in s.outcome


def test_wilson_upper_bound() -> None:
    assert wilson_upper(0, 0) == 1.0
    assert wilson_upper(90, 100) == pytest.approx(0.9448, abs=1e-3)  # the textbook 95 % Wilson bound
    assert wilson_upper(10, 100) < 0.18


def opts(**kw) -> SimpleNamespace:
    base = dict(
        shape="search", rate=0.0, arrival="poisson", burstiness=1.0, max_concurrency=0, warmup="0s",
        cooldown="0s", run_time=600, num_users=None, llm_user="auto", search_by="rate",
        search_precision="5%", search_probe_duration="20s",
    )  # fmt: skip
    base.update(kw)
    return SimpleNamespace(**base)


def test_search_options_build_the_schedule() -> None:
    s = build_schedule(opts())
    assert isinstance(s, SearchSchedule) and s.open_loop
    assert (s.by, s.precision, s.probe_s, s.warmup_s, s.duration_s) == ("rate", 0.05, 20.0, 5.0, 600.0)
    s = build_schedule(opts(search_by="users", search_precision="0.1", warmup="3s"))
    assert (s.by, s.precision, s.warmup_s) == ("users", 0.1, 3.0)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"search_precision": "150%"}, "--search-precision: '150%' must be between 0 and 100 %"),
        ({"search_precision": "fine"}, "--search-precision: 'fine' is not a share"),
        ({"search_probe_duration": "2s"}, "--search-probe-duration: '2s' is too short"),
        ({"run_time": 30}, "-t/--run-time: 30s leaves room for fewer than 2 probes of 20s"),
        ({"cooldown": "2s"}, "--cooldown: not used with --shape search"),
        ({"llm_user": "chat"}, "--user chat: this load shape is open loop"),
    ],
)
def test_bad_search_options_are_one_clear_line(kw: dict, needle: str) -> None:
    with pytest.raises(OptionError) as e:
        build_schedule(opts(**kw))
    assert needle in str(e.value) and "\n" not in str(e.value)
