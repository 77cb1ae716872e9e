"""Load shapes. Locust uses exactly one shape class per locustfile, so `GoodputShape` delegates to
the schedule chosen with `--shape`, or, with `--shape auto` (the default), the one its own options
select (shapes/options.py `resolve_shape`: the one rule; the step ramp when none is given; `none`
keeps plain `-u/-r/-t` runs; `search` probes for the capacity at SLO, shapes/search.py). Documented in README.md § Load shapes.

Open-loop schedules (rate, sweep, trace, search, stages with a rate stage) run with the open-loop user
(`users/rate.py`): one per load process, so the shape asks Locust for one user per worker and
the stage itself (rate, concurrency) travels to the workers in the stage announcement.

The shape knows nothing of the run: it fires shapes/hooks.py, and loadgen/run/stages.py makes
each level the current stage everywhere and records the schedule in run.json.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from locust import LoadTestShape
from locust.runners import MasterRunner

import shapes.options  # noqa: F401  (registers the shape options)
from core.durations import parse_duration_s
from core.errors import OptionError
from shapes import hooks
from shapes.arrivals import RateSchedule
from shapes.base import Level, Schedule
from shapes.options import (
    check_arrival,
    check_open_loop_options,
    parse_portion,
    parse_rate,
    parse_share,
    resolve_portion,
    resolve_shape,
)
from shapes.search import SearchSchedule
from shapes.stages import build_stages
from shapes.step import ConstantSchedule, StepSchedule
from shapes.sweep import SweepSchedule
from shapes.trace import TraceSchedule, load_trace

log = logging.getLogger("goodput")


def _portions(opts: Any, duration_s: float | None) -> tuple[float, float]:
    warm = resolve_portion(parse_portion(opts.warmup, "--warmup"), duration_s, "--warmup")
    cool = resolve_portion(parse_portion(opts.cooldown, "--cooldown"), duration_s, "--cooldown")
    if duration_s is not None and warm + cool >= duration_s:
        raise OptionError(f"--warmup/--cooldown: {warm + cool:g}s leave nothing of a {duration_s:g}s stage")
    return warm, cool


def _run_time(opts: Any) -> float | None:
    return float(opts.run_time) if getattr(opts, "run_time", None) else None


def _step(opts: Any) -> Schedule:
    duration = _run_time(opts) or parse_duration_s(opts.step_duration, "--step-duration")
    interval = parse_duration_s(opts.step_interval, "--step-interval")
    for option, value in (("--step-interval", opts.step_interval), ("--step-duration", opts.step_duration)):
        if parse_duration_s(value, option) <= 0:
            raise OptionError(f"{option}: '{value}' must be positive")
    for option, count, low in (("--step-users", opts.step_users, 1), ("--max-users", opts.max_users, 0)):
        if int(count) < low:  # a 0-user ramp would "succeed" with no request at all
            raise OptionError(f"{option}: {count} must be ≥ {low}")
    warm, cool = _portions(opts, interval)
    return StepSchedule(
        step_users=opts.step_users,
        interval_s=interval,
        duration_s=duration,
        max_users=opts.max_users,
        warmup_s=warm,
        cooldown_s=cool,
    )


def _constant(opts: Any) -> Schedule:
    duration = _run_time(opts)
    warm, cool = _portions(opts, duration)
    return ConstantSchedule(
        users=opts.num_users or 1,
        spawn_rate=opts.spawn_rate or 1.0,
        duration_s=duration,
        warmup_s=warm,
        cooldown_s=cool,
    )


def _rate(opts: Any) -> Schedule:
    duration = _run_time(opts)
    warm, cool = _portions(opts, duration)
    return RateSchedule(
        rate_rps=parse_rate(opts.rate, "--rate"),
        duration_s=duration,
        max_concurrency=int(opts.max_concurrency),
        arrival=opts.arrival,
        burstiness=float(opts.burstiness),
        warmup_s=warm,
        cooldown_s=cool,
    )


def _sweep(opts: Any) -> Schedule:
    stage_s = parse_duration_s(opts.sweep_stage_duration, "--sweep-stage-duration")
    if stage_s < 3:
        raise OptionError(f"--sweep-stage-duration: '{opts.sweep_stage_duration}' is too short (≥ 3s)")
    if int(opts.sweep_stages) < 1:
        raise OptionError(f"--sweep-stages: {opts.sweep_stages} must be ≥ 1")
    if int(opts.sweep_concurrency) < 1:
        raise OptionError(f"--sweep-concurrency: {opts.sweep_concurrency} must be ≥ 1")
    warm, cool = _portions(opts, stage_s)
    return SweepSchedule(
        stage_s=stage_s,
        k=int(opts.sweep_stages),
        concurrency=int(opts.sweep_concurrency),
        max_concurrency=int(opts.max_concurrency),
        warmup_s=warm,
        cooldown_s=cool,
    )


def _trace(opts: Any) -> Schedule:
    if not opts.trace_file:
        raise OptionError("--trace-file: required with --shape trace (a CSV or JSONL trace)")
    trace = load_trace(opts.trace_file, float(opts.time_scale))
    warm, cool = _portions(opts, trace.span_s or None)
    return TraceSchedule(
        trace=trace,
        max_concurrency=int(opts.max_concurrency),
        drain_s=parse_duration_s(opts.request_timeout, "--request-timeout") + 2.0,
        warmup_s=warm,
        cooldown_s=cool,
    )


def _search(opts: Any) -> Schedule:
    probe_s = parse_duration_s(opts.search_probe_duration, "--search-probe-duration")
    if probe_s < 4:
        raise OptionError(f"--search-probe-duration: '{opts.search_probe_duration}' is too short (≥ 4s)")
    warm, cool = _portions(opts, probe_s)
    if cool:
        raise OptionError("--cooldown: not used with --shape search (a probe ends where the next begins)")
    duration = _run_time(opts)
    if duration is not None and duration < 2 * probe_s:
        raise OptionError(f"-t/--run-time: {duration:g}s leaves room for fewer than 2 probes of {probe_s:g}s")
    return SearchSchedule(
        by=opts.search_by,
        precision=parse_share(opts.search_precision, "--search-precision"),
        probe_s=probe_s,
        warmup_s=warm or 0.25 * probe_s,
        duration_s=duration,
        max_concurrency=int(opts.max_concurrency),
    )


# shape name (shapes/options.py SHAPES, `auto` resolved) → builder
SCHEDULES: dict[str, Callable[[Any], Schedule]] = {
    "step": _step,
    "none": _constant,
    "stages": build_stages,
    "sweep": _sweep,
    "trace": _trace,
    "search": _search,
    "rate": _rate,
}
# What run.json, the report and the web UI call each shape.
TITLES = {
    "step": "step ramp",
    "none": "fixed users",
    "stages": "stages",
    "sweep": "sweep",
    "trace": "trace replay",
    "rate": "open-loop rate",
    "search": "capacity search",
}


def build_schedule(opts: Any) -> Schedule:
    """Validate the shape options (raises OptionError with one clear line)."""
    check_arrival(opts)
    schedule = SCHEDULES[resolve_shape(opts)](opts)
    check_open_loop_options(opts, schedule.open_loop)
    user = getattr(opts, "llm_user", "auto")
    if schedule.open_loop and user not in ("auto", "rate"):
        raise OptionError(
            f"--user {user}: this load shape is open loop; use --user rate or leave --user auto"
        )
    return schedule


def open_loop(opts: Any) -> bool:
    """Whether the run needs the open-loop user (`--user auto` picks it)."""
    try:
        return bool(build_schedule(opts).open_loop)
    except OptionError:
        return False


class GoodputShape(LoadTestShape):
    """Ticks the chosen schedule and announces each new stage to every load process."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self.schedule: Schedule | None = None
        self.level: Level | None = None
        self._announced = 0.0

    def reset_time(self) -> None:
        super().reset_time()
        # Locust's master resets the clock right after the first tick started the run: keep that
        # stage (re-announcing it would log stage 0 twice). Any later reset is a new run.
        if self.level is not None and time.monotonic() - self._announced < 2.0:
            return
        self.schedule = None
        self.level = None

    def tick(self) -> tuple[int, float] | None:
        env = self.runner.environment
        if self.schedule is None:
            try:
                self.schedule = build_schedule(env.parsed_options)
            except OptionError as e:  # web UI: the start form changed the options after start-up checks
                log.error("goodput: %s", e)
                return None
            hooks.schedule_built.fire(environment=env, schedule=self.schedule)
            self._describe(env)
        level = self.schedule.level_at(self.get_run_time())
        if level is None:
            # the schedule's end, before Locust spends time stopping users
            hooks.schedule_ended.fire(environment=env, schedule=self.schedule)
            self._describe(env)
            if failed := getattr(self.schedule, "failed", ""):
                log.error("goodput: sweep stopped: %s", failed)
            if outcome := getattr(self.schedule, "outcome", ""):
                log.info("goodput: search ended: %s", outcome)
            return None
        if level != self.level:
            first = self.level is None
            self.level = level
            self._announced = time.monotonic()
            hooks.level_changed.fire(environment=env, level=level, first=first)
            self._describe(env)
        if getattr(env.user_classes[0], "one_per_process", False):
            n = max(1, self.runner.worker_count) if isinstance(self.runner, MasterRunner) else 1
            return n, float(n)
        return level.users, level.spawn_rate

    def _describe(self, env: Any) -> None:
        assert self.schedule is not None
        name = resolve_shape(env.parsed_options)
        description = {"name": name, "title": TITLES[name], "params": self.schedule.describe()}
        hooks.described.fire(environment=env, description=description)
