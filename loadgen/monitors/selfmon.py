"""Self-measurement of every load process: event-loop lag, CPU and late reads, once a second.

A load generator that falls behind reports its own delays as the server's. Locust's CPU warning
(90 % over a 10 s average) comes late and says nothing about the event loop, so each process runs:
- a lag probe: a greenlet that sleeps 10 ms and records how much longer it actually slept (every
  other greenlet's work between two wake-ups shows up here);
- a sampler: once a second, this process's CPU use (psutil) and a sample of the transport's read
  lags (how long bytes the kernel already held waited for this process, loadgen/transport/arrival.py).
Workers ship their seconds with every Locust report (`goodput_selfmon` in the report data); the
master (or the local runner) merges them into run.json `loadgen` — per-worker figures and the
saturated, late-read and stall windows, by the rules of loadgen/monitors/selfjudge.py — and logs a
warning as a saturated or late-read span is found. The analysis turns the windows into the report's
lines (analysis/health.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import gevent
import psutil
from locust.runners import MasterRunner, WorkerRunner

from core.durations import parse_duration_s
from core.errors import OptionError, exit_with
from core.optgroups import add_option
from loadgen import context, messages
from loadgen.monitors.selfjudge import CPU_BUSY, SUSTAIN_S, Aggregate
from loadgen.transport import arrival

log = logging.getLogger("goodput")

PROBE_S = 0.010
STARTUP_GRACE_S = 1.0  # after the first spawning_complete: the users' first sends
READ_SAMPLES_PER_S = 200  # read lags kept per second (evenly strided): enough for p99
# Diagnostics only (the saturation test): "BUSY_MS/PERIOD_MS" makes a greenlet block the loop.
BURN_ENV = "GOODPUT_SELFMON_BURN"


class Meter:
    """The probe and the sampler of this process; each closed second goes to `sink` (or waits in
    `pending` for the next worker report)."""

    def __init__(self, sink: Callable[[dict], None] | None = None) -> None:
        self.lags: list[float] = []
        self.pending: list[dict] = []
        self.sink = sink
        self.running = False
        self.proc = psutil.Process(os.getpid())
        self.proc.cpu_percent(None)  # the first call only starts the measurement
        self.t_second = time.time()
        self.greenlets = [gevent.spawn(self._probe), gevent.spawn(self._sample)]
        if burn := os.environ.get(BURN_ENV):
            busy_ms, _, period_ms = burn.partition("/")
            self.greenlets.append(gevent.spawn(_burn, float(busy_ms) / 1000, float(period_ms or 0) / 1000))

    def _probe(self) -> None:
        perf, sleep = time.perf_counter, gevent.sleep
        while True:
            t = perf()
            sleep(PROBE_S)
            self.lags.append(max(0.0, perf() - t - PROBE_S))

    def _sample(self) -> None:
        while True:
            gevent.sleep(1.0)
            self.tick()

    def tick(self, final: bool = False) -> None:
        """Close the current second: its lag samples (ms), a stride of read lags (ms) and CPU %.

        The `final` partial second at the stop is dropped when short: stopping hundreds of users
        blocks the loop by itself, and says nothing about the run.
        """
        now = time.time()
        lags, self.lags = self.lags, []
        reads = arrival.READ_LAGS[:]
        arrival.READ_LAGS.clear()
        cpu = self.proc.cpu_percent(None)
        t0, self.t_second = self.t_second, now
        if not self.running or (final and now - t0 < 0.5):
            return
        step = max(1, len(reads) // READ_SAMPLES_PER_S)
        rec = {
            "t0": round(t0, 3),
            "t1": round(now, 3),
            "lag": [round(x * 1000, 3) for x in lags],
            "read": [round(x * 1000, 3) for x in reads[::step]],
            "cpu": round(cpu, 1),
        }
        if self.sink is not None:
            self.sink(rec)
        else:
            self.pending.append(rec)

    def take(self) -> list[dict]:
        out, self.pending = self.pending, []
        return out


def _burn(busy_s: float, period_s: float) -> None:
    perf = time.perf_counter
    while True:
        end = perf() + busy_s
        while perf() < end:
            pass
        gevent.sleep(max(period_s - busy_s, 0.0))


class SelfMon:
    """Per process, as the context's `selfmon`: a meter on load processes, the merge on the
    master or local runner (which is both)."""

    def __init__(self, environment: Any, threshold_ms: float) -> None:
        self.environment = environment
        self.is_worker = isinstance(environment.runner, WorkerRunner)
        self.is_master = isinstance(environment.runner, MasterRunner)
        self.agg = Aggregate(threshold_ms)
        self.in_streak: set[str] = set()  # workers in a saturated streak (warned once)
        self.in_late: set[str] = set()  # workers in a late-read streak (warned once)
        self.meter: Meter | None = None
        if not self.is_master:  # the master sends no requests: nothing of its own to measure
            self.meter = Meter(None if self.is_worker else lambda rec: self.receive(self.name(), [rec]))

    def name(self) -> str:
        """The `worker` column of this process's rows."""
        ctx = context.find(self.environment)
        return ctx.worker_name if ctx is not None else f"local-{os.getpid()}"

    def start(self) -> None:
        if self.meter is not None:
            self.meter.tick()  # close the idle second before the run
            self.meter.pending = []
            self.meter.running = True
        if not self.is_worker:
            self.agg = Aggregate(self.agg.threshold_ms)
            self.in_streak, self.in_late = set(), set()
            self.publish()

    def spawned(self) -> None:
        """Master/local: the first `spawning_complete` of a run ends the start-up (after the first sends)."""
        if not self.is_worker and self.agg.steady_from is None:
            self.agg.steady_from = time.time() + STARTUP_GRACE_S

    def stopping(self) -> None:
        """Master/local: from here on the users are being stopped; those seconds are not judged."""
        if not self.is_worker and self.agg.steady_until is None:
            self.agg.steady_until = time.time()
            self.publish()  # run.json written at the stop holds the figures as the stop began

    def stop(self) -> None:
        if self.meter is not None:
            self.meter.tick(final=True)  # the last partial second (a worker reports it next time)
            self.meter.running = False
        self.publish()

    def report(self, data: dict) -> None:
        """Worker: this process's closed seconds ride on the Locust report."""
        if self.meter is not None and self.meter.pending:
            data[messages.SELFMON] = {"worker": self.name(), "seconds": self.meter.take()}

    def receive(self, worker: str, records: list[dict]) -> None:
        """Master/local: merge a worker's seconds; a warning when a saturated or late-read streak begins."""
        seen_late = len(self.agg.late)
        hot = self.agg.add(worker, records)
        if _begins(self.in_streak, worker, hot, records):
            span = hot[0]
            log.warning(
                "goodput: load generator saturated: %s event-loop lag p99 %.0f ms over %d s > %.0f ms at "
                "%.0f %% CPU since %s: its timings are suspect, add workers",
                worker,
                span["lag_p99_ms"],
                span["span_s"],
                self.agg.threshold_ms,
                span["cpu_percent"],
                time.strftime("%H:%M:%S", time.localtime(span["t0"])),
            )
        late = self.agg.late[seen_late:]
        if _begins(self.in_late, worker, late, records):
            span = late[0]
            log.warning(
                "goodput: client reads late: %s read lag p99 %.0f ms over %d s > %.0f ms at %.0f %% CPU "
                "since %s: a token read together with the next carries the next one's arrival (TTFT and "
                "ITL off by up to a token gap); add workers, on cores nothing else uses",
                worker,
                span["read_p99_ms"],
                span["span_s"],
                self.agg.threshold_ms,
                span["cpu_percent"],
                time.strftime("%H:%M:%S", time.localtime(span["t0"])),
            )

    def publish(self) -> None:
        """Into the run's meta, for loadgen/run/lifecycle.py to write to run.json: at the stop (from
        `stopping`) and when the run closes (from `stop`). Not per report: see the module doc."""
        ctx = context.find(self.environment)
        if ctx is not None and not self.is_worker:
            ctx.meta["loadgen"] = {"probe_interval_ms": PROBE_S * 1000, **self.agg.meta()}


def _begins(streak: set[str], worker: str, spans: list[dict], records: list[dict]) -> bool:
    """Whether `spans` (just found for `worker`) begin a streak: one warning per streak, not per second."""
    begins = bool(spans) and worker not in streak
    if spans:
        streak.add(worker)
    elif records:
        streak.discard(worker)
    return begins


def install(events: Any) -> None:
    @events.init_command_line_parser.add_listener
    def _options(parser: Any) -> None:
        add_option(
            parser,
            "output",
            "--saturation-lag",
            label="Saturation lag",
            default="10ms",
            help="Flag the load generator as saturated when its event-loop lag p99 over "
            f"{SUSTAIN_S} seconds in a row exceeds this while it uses ≥ {CPU_BUSY:.0f} %% of a core (default 10ms)",
        )

    @events.init.add_listener
    def _init(environment: Any, **_: Any) -> None:
        opts = environment.parsed_options
        raw = getattr(opts, "saturation_lag", "10ms") if opts is not None else "10ms"
        try:
            threshold_ms = parse_duration_s(raw, "--saturation-lag") * 1000
        except OptionError as e:
            exit_with(str(e))
        sm = SelfMon(environment, threshold_ms)
        ctx = context.find(environment)
        if ctx is not None:
            ctx.selfmon = sm
            # master/local: the last second and the saturation windows go into run.json as it closes
            ctx.closing.add_listener(lambda **_: sm.stop())
        # Report listeners get no environment: bind it here (as loadgen/run/lifecycle.py does).
        environment.events.report_to_master.add_listener(lambda client_id, data, **_: sm.report(data))
        environment.events.worker_report.add_listener(
            lambda client_id, data, **_: _on_worker_report(sm, client_id, data)
        )
        environment.events.spawning_complete.add_listener(lambda user_count, **_: sm.spawned())
        environment.events.test_stopping.add_listener(lambda **_: sm.stopping())

    @events.test_start.add_listener
    def _start(environment: Any, **_: Any) -> None:
        if (ctx := context.find(environment)) is not None and ctx.selfmon is not None:
            ctx.selfmon.start()

    @events.test_stop.add_listener
    def _stop(environment: Any, **_: Any) -> None:
        ctx = context.find(environment)
        if ctx is not None and ctx.selfmon is not None and ctx.selfmon.is_worker:
            ctx.selfmon.stop()  # a worker's last second rides on its final report


def _on_worker_report(sm: SelfMon, client_id: str, data: dict) -> None:
    payload = data.get(messages.SELFMON)
    if payload:
        sm.receive(payload.get("worker") or client_id, payload.get("seconds") or [])
