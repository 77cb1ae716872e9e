"""Self-measurement of every load process: event-loop lag, CPU and late reads, once a second.

A load generator that falls behind reports its own delays as the server's. Locust's CPU warning
(90 % over a 10 s average) comes late and says nothing about the event loop, so each process runs:
- a lag probe: a greenlet that sleeps 10 ms and records how much longer it actually slept (every
  other greenlet's work between two wake-ups shows up here);
- a sampler: once a second, this process's CPU use (psutil) and a sample of the transport's read
  lags (how long bytes the kernel already held waited for this process, loadgen/transport/arrival.py).
Workers ship their seconds with every Locust report (`goodput_selfmon` in the report data); the
master (or the local runner) merges them into run.json `loadgen`: per-worker lag, CPU and read-lag
figures from the raw samples, and two kinds of windows:
- `saturated_windows` — the generator could not keep up: over `SUSTAIN_S` seconds in a row, one
  worker's event-loop lag p99 (all its probe samples of those seconds pooled) exceeded
  `--saturation-lag` (default 10 ms) *while* that process used at least `CPU_BUSY` % of a core. A
  single stall (garbage collection, spawning users, connecting) is not saturation, and neither is
  lag while the process idles (the host is busy with something else: more workers would not help).
  The start-up (until the first `spawning_complete`, plus `STARTUP_GRACE_S` for the first sends)
  and the shutdown (from `test_stopping`) are left out: spawning and stopping hundreds of users
  blocks the loop by itself. `saturated_detail` says, per window, the figures that flagged it.
- `stall_windows` — every second whose lag p99 exceeded the threshold or that held one stall over
  ten times it: the client's timestamps there may be late (a diagnostic, not a verdict).
The analysis turns the saturated windows into "load generator saturated from T1 to T2: event-loop
lag p99 X ms over 3 s at Y % CPU: add workers"; the master logs a warning as they happen.

Merging a second costs the same at any point of a run; the run-long figures (percentiles over every
sample kept) are sorted only when the run's meta is written (at `test_stopping` and when the run
closes), never per report: re-sorting them per report grew with the run's length (8 workers after
10 minutes: a whole core of the master; one local process after 30 minutes: ~45 ms of its own
loop blocked every second, its streams' reads delayed with it; bench/selfmon_cost.py).
"""

from __future__ import annotations

import logging
import os
import time
from array import array
from collections.abc import Callable
from typing import Any

import gevent
import psutil
from locust.runners import MasterRunner, WorkerRunner

from core.durations import parse_duration_s
from core.errors import OptionError, exit_with
from core.optgroups import add_option
from core.quantiles import nearest_rank
from loadgen import context, messages
from loadgen.transport import arrival

log = logging.getLogger("goodput")

PROBE_S = 0.010
STALL_FACTOR = 10  # a second with one stall this many times the threshold is a stall second too
SUSTAIN_S = 3  # saturation: this many seconds in a row over the threshold ...
CPU_BUSY = 50.0  # ... while the process used at least this share of a core (mean over them, %)
STARTUP_GRACE_S = 1.0  # after the first spawning_complete: the users' first sends
READ_SAMPLES_PER_S = 200  # read lags kept per second (evenly strided): enough for p99
MAX_SAMPLES = 400_000  # per worker and kind (~1 h of probe samples); later seconds still count for windows
#  (kept as C doubles: 3.2 MB per worker and kind when full, where Python floats in a list took 13 MB)
# Diagnostics only (the saturation test): "BUSY_MS/PERIOD_MS" makes a greenlet block the loop.
BURN_ENV = "GOODPUT_SELFMON_BURN"


pct = nearest_rank  # the generator's own health figures: values that really occurred


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


class Aggregate:
    """Master/local: every worker's seconds → run.json `loadgen` (see the module doc)."""

    def __init__(self, threshold_ms: float) -> None:
        self.threshold_ms = threshold_ms
        self.workers: dict[str, dict] = {}
        self.recent: dict[str, list[dict]] = {}  # per worker: the last seconds in a row that may be judged
        self.flagged: list[dict] = []  # saturated spans: t0, t1, worker, lag_p99_ms, cpu_percent, span_s
        self.stalls: list[tuple[float, float]] = []
        self.steady_from: float | None = None  # start-up over (None: not yet)
        self.steady_until: float | None = None  # shutdown began

    def judged(self, rec: dict) -> bool:
        """Outside the start-up and the shutdown."""
        return (
            self.steady_from is not None
            and float(rec["t0"]) >= self.steady_from
            and (self.steady_until is None or float(rec["t1"]) <= self.steady_until)
        )

    def add(self, worker: str, records: list[dict]) -> list[dict]:
        """Merge a worker's seconds; returns the saturated spans they completed."""
        w = self.workers.setdefault(
            worker,
            {"lag": array("d"), "read": array("d"), "cpu": [], "seconds": 0, "flagged": set(), "stalled": 0},
        )
        hot = []
        for rec in records:
            lags = sorted(rec.get("lag") or [])
            w["seconds"] += 1
            w["cpu"].append(float(rec.get("cpu", 0.0)))
            if len(w["lag"]) < MAX_SAMPLES:
                w["lag"].extend(lags)
            if len(w["read"]) < MAX_SAMPLES:
                w["read"].extend(rec.get("read") or [])
            p99 = pct(lags, 0.99) if lags else float("inf")  # a second without one wake-up: stalled
            # One long stall leaves one sample among ~100 (p99 misses it) but holds every stream.
            if p99 > self.threshold_ms or (lags and lags[-1] > STALL_FACTOR * self.threshold_ms):
                w["stalled"] += 1
                self.stalls.append((float(rec["t0"]), float(rec["t1"])))
            span = self._sustained(worker, {**rec, "lag": lags})
            if span is not None:
                w["flagged"].update(round(float(r["t0"]), 3) for r in self.recent[worker])
                self.flagged.append(span)
                hot.append(span)
        return hot

    def _sustained(self, worker: str, rec: dict) -> dict | None:
        """The span of the last SUSTAIN_S judged seconds in a row when they are saturated, else None."""
        run = self.recent.setdefault(worker, [])
        if not self.judged(rec) or (run and float(rec["t0"]) - float(run[-1]["t1"]) > 0.5):
            run.clear()
        if not self.judged(rec):
            return None
        run.append(rec)
        del run[:-SUSTAIN_S]
        if len(run) < SUSTAIN_S:
            return None
        pooled = sorted(x for r in run for x in r["lag"])
        p99 = pct(pooled, 0.99) if pooled else float("inf")
        cpu = sum(float(r.get("cpu", 0.0)) for r in run) / len(run)
        if p99 <= self.threshold_ms or cpu < CPU_BUSY:
            return None
        t0, t1 = float(run[0]["t0"]), float(run[-1]["t1"])
        return {"t0": t0, "t1": t1, "worker": worker, "lag_p99_ms": round(min(p99, 1e9), 1),
                "cpu_percent": round(cpu, 1), "span_s": len(run)}  # fmt: skip

    def windows(self) -> tuple[list[list[float]], list[dict]]:
        """Saturated spans of all workers merged where they touch (a 0.5 s gap still joins), and per
        merged window the figures of its worst span."""
        out: list[list[float]] = []
        detail: list[dict] = []
        for f in sorted(self.flagged, key=lambda f: f["t0"]):
            if out and f["t0"] <= out[-1][1] + 0.5:
                out[-1][1] = max(out[-1][1], f["t1"])
                if f["lag_p99_ms"] > detail[-1]["lag_p99_ms"]:
                    detail[-1] = {k: v for k, v in f.items() if k not in ("t0", "t1")}
            else:
                out.append([f["t0"], f["t1"]])
                detail.append({k: v for k, v in f.items() if k not in ("t0", "t1")})
        return out, detail

    def stall_windows(self) -> list[list[float]]:
        out: list[list[float]] = []
        for t0, t1 in sorted(self.stalls):
            if out and t0 <= out[-1][1] + 0.5:
                out[-1][1] = max(out[-1][1], t1)
            else:
                out.append([t0, t1])
        return out

    def meta(self) -> dict:
        """run.json `loadgen`: sorts every sample kept, so only when run.json is written."""
        workers = {}
        for wid, w in self.workers.items():
            lag, read, cpu = sorted(w["lag"]), sorted(w["read"]), w["cpu"]
            workers[wid] = {
                "lag_ms": _dist(lag),
                "cpu_percent": {
                    "mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
                    "max": round(max(cpu), 1) if cpu else None,
                },
                "read_lag_ms": _dist(read),
                "seconds": w["seconds"],
                "saturated_seconds": len(w["flagged"]),
                "stalled_seconds": w["stalled"],
            }
        windows, detail = self.windows()
        return {
            "probe_interval_ms": PROBE_S * 1000,
            "threshold_ms": self.threshold_ms,
            "sustain_s": SUSTAIN_S,
            "cpu_busy_percent": CPU_BUSY,
            "workers": workers,
            "saturated_windows": windows,
            "saturated_detail": detail,
            "stall_windows": self.stall_windows(),
        }


def _dist(xs: list[float]) -> dict:
    if not xs:
        return {"p50": None, "p99": None, "max": None}
    return {"p50": round(pct(xs, 0.5), 3), "p99": round(pct(xs, 0.99), 3), "max": round(xs[-1], 3)}


class SelfMon:
    """Per process, as the context's `selfmon`: a meter on load processes, the merge on the
    master or local runner (which is both)."""

    def __init__(self, environment: Any, threshold_ms: float) -> None:
        self.environment = environment
        self.is_worker = isinstance(environment.runner, WorkerRunner)
        self.is_master = isinstance(environment.runner, MasterRunner)
        self.agg = Aggregate(threshold_ms)
        self.in_streak: set[str] = set()
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
            self.in_streak = set()
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
        hot = self.agg.add(worker, records)
        if hot and worker not in self.in_streak:
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
        if hot:
            self.in_streak.add(worker)
        elif records:
            self.in_streak.discard(worker)

    def publish(self) -> None:
        """Into the run's meta, for loadgen/run/lifecycle.py to write to run.json: at the stop (from
        `stopping`) and when the run closes (from `stop`). Not per report: see the module doc."""
        ctx = context.find(self.environment)
        if ctx is not None and not self.is_worker:
            ctx.meta["loadgen"] = self.agg.meta()


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
