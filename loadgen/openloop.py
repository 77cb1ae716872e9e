"""The open-loop dispatcher: requests leave at their scheduled times, whatever the server does.

Closed-loop users send their next request only when the previous one ended, so a slow server
receives fewer requests and its slowness hides (coordinated omission). Here, one `RateUser` per
load process runs a dispatcher: it walks this process's slice of the stage's arrival schedule
(shapes/arrivals.py, or a trace), sleeps until each intended time on an absolute perf_counter
timeline (no drift), and hands the request to its own greenlet, so a long response never delays
the next arrival. `--max-concurrency` caps requests in flight; arrivals beyond the cap wait for a
free slot and their wait counts as send lag. Every row carries `t_scheduled_unix` (intended) and
`t_start_unix` (actual).

Each request is prepared (prompt, body) before its intended time, so building it never sits
between the schedule and the send. Connections are pooled: a request borrows a keep-alive
transport and returns it. The same dispatcher also runs closed-loop stages of mixed schedules
(sweep's synchronous and throughput stages) as a number of back-to-back loops, which pause after
failed requests as closed-loop users do (loadgen/state/pacing.py); open-loop arrivals never pause.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import BoundedSemaphore
from gevent.pool import Group
from locust.runners import WorkerRunner

from core.quantiles import nearest_rank
from core.stage import Stage
from loadgen import context
from loadgen.context import RunContext
from loadgen.messages import OPEN_LOOP
from loadgen.request import perform
from loadgen.state import collector
from loadgen.state.openloop import LATE_S, OpenLoopStats
from loadgen.state.pacing import Pacing
from loadgen.transport.apis import Api
from loadgen.transport.client import make_transport
from shapes.arrivals import arrival_offsets, share, stage_seed
from shapes.options import resolve_shape
from shapes.trace import TraceRow, load_trace
from workloads.images import count_images
from workloads.mix import arrival_classes, class_at

log = logging.getLogger("goodput")
perf_counter = time.perf_counter
WINDOW_S = 10.0  # generator health is judged over windows this long


# API, body, session, turn, scenario, tenant, model, images
Payload = tuple[Api, dict, str, int, str, str, str, int]


class _Slot:
    """What `perform()` needs of a user: one pooled connection with its own user id."""

    __slots__ = ("ctx", "goodput_id", "scenario", "tenant", "transport")

    def __init__(self, ctx: RunContext, goodput_id: int, transport: Any) -> None:
        self.ctx = ctx
        self.goodput_id = goodput_id
        self.transport = transport
        self.scenario = "chat"
        self.tenant = ""  # the mix class of the request it sends now


class _Window:
    """Arrivals and send lags of the current health window."""

    def __init__(self) -> None:
        self.due = self.sent = self.waited = 0
        self.lags: list[float] = []


class Driver:
    """The per-process dispatcher; runs inside the RateUser's task until the user stops."""

    def __init__(self, ctx: RunContext, host: str) -> None:
        self.ctx = ctx
        self.stats: OpenLoopStats = ctx.open_loop
        self.host = host
        self.requests = Group()
        self.free: list[_Slot] = []
        self.all_slots: list[_Slot] = []
        self.changed = Event()
        self.window = _Window()
        ctx.stage_listeners.append(self._on_stage)
        self.watch = gevent.spawn(self._watch_loop)

    # -- stage loop -------------------------------------------------------------------
    def _on_stage(self, _stage: Stage) -> None:
        self.changed.set()

    def run(self) -> None:
        self._warm_up()
        while True:
            ctx = self.ctx
            stage = ctx.stage
            self.changed.clear()
            if stage.rate_rps is None:
                self._closed(stage)
            elif stage.rate_rps <= 0:
                self._until_changed(stage)
            elif resolve_shape(ctx.options) == "trace":
                self._trace(stage)
            else:
                self._open(stage)

    def _warm_up(self) -> None:
        """Before the first arrival is due: open the workload (or the trace), make a first
        connection object (the first costs ~5 ms), and freeze what exists for the garbage
        collector, whose full collections over Locust's and the workload's objects otherwise
        stall the process for 20+ ms now and then (measured) and show up as send lag."""
        ctx = self.ctx
        if resolve_shape(ctx.options) == "trace":
            import workloads  # noqa: F401  (synth_prompt's module: its import is not free)

            load_trace(ctx.options.trace_file, float(ctx.options.time_scale))
        else:
            ctx.open_workloads()
        self.free.append(self._take())
        collector.settle()

    def _where(self) -> tuple[int, int]:
        ctx = self.ctx
        return ctx.worker_index, max(1, ctx.worker_count)

    def _open(self, stage: Stage) -> None:
        opts = self.ctx.options
        i, n = self._where()
        seed = stage_seed(opts.seed, stage.step)
        offsets = arrival_offsets(opts.arrival, stage.rate_rps, float(opts.burstiness), seed, i, n)
        mix = self.ctx.mix  # each arrival draws its class: the arrival process keeps its shape
        tenants = arrival_classes(mix, seed, i, n) if mix is not None else itertools.repeat("")
        arrivals = zip(offsets, tenants, strict=False)  # both endless
        self._dispatch(stage, ((off, partial(self._workload_payload, t)) for off, t in arrivals))

    def _trace(self, stage: Stage) -> None:
        opts = self.ctx.options
        i, n = self._where()
        rows = load_trace(opts.trace_file, float(opts.time_scale)).rows[i::n]
        self._dispatch(stage, ((r.t_s, _bind(self._trace_payload, r)) for r in rows))
        self._until_changed(stage)

    def _dispatch(self, stage: Stage, arrivals: Iterable[tuple[float, Callable[[], Payload]]]) -> None:
        """Send each arrival at stage start + offset; returns when the arrivals end or the stage changes."""
        i, n = self._where()
        cap = share(stage.target_users, i, n) if stage.target_users else 0
        slots = BoundedSemaphore(max(1, cap)) if stage.target_users else None
        anchor_unix = stage.t_start_unix
        anchor_perf = perf_counter() + (anchor_unix - time.time())
        for offset, make in arrivals:
            payload = make()  # before the intended time, never between it and the send
            t = anchor_perf + offset
            if not self._wait_until(t, stage):
                return
            self.stats.step(stage.step).due += 1
            self.window.due += 1
            self.requests.spawn(self._send, payload, t, anchor_unix + offset, slots, stage.step)

    def _wait_until(self, t: float, stage: Stage) -> bool:
        while True:
            if self.ctx.stage is not stage:
                return False
            dt = t - perf_counter()
            if dt <= 0:
                gevent.sleep(0)  # behind schedule: still let the request greenlets run
                return self.ctx.stage is stage
            self.changed.wait(dt)
            self.changed.clear()

    def _until_changed(self, stage: Stage) -> None:
        while self.ctx.stage is stage:
            self.changed.wait()
            self.changed.clear()

    def _send(self, payload: Payload, t_perf: float, t_unix: float, slots: Any, step: int) -> None:
        waited = slots is not None and slots.locked()
        if slots is not None:
            try:
                slots.acquire()
            except gevent.GreenletExit:
                self.stats.step(step).unsent += 1
                raise
        slot = self._take()
        lag, res = perf_counter() - t_perf, None
        try:
            w = self.window  # the live health check judges the dispatch (it cannot wait for the answer)
            w.sent += 1
            w.waited += waited
            w.lags.append(lag)
            api, body, session, turn, slot.scenario, slot.tenant, model, images = payload
            res = perform(slot, api, body, session=session, turn=turn, scheduled_unix=t_unix, model=model,
                          images=images)  # fmt: skip
        finally:
            # run.json's send lag is the row's: the transport's send stamp (read right before the
            # request's last byte went to the kernel) − the intended time; the dispatch lag when the
            # request was cut
            sent = res.t_send - t_perf if res is not None and res.t_send else lag
            self.stats.record_send(step, sent, waited)
            self.free.append(slot)
            if slots is not None:
                slots.release()

    # -- closed-loop stages (sweep's synchronous/throughput, stages with users) -------------
    def _closed(self, stage: Stage) -> None:
        i, n = self._where()
        count = share(stage.target_users, i, n)
        pause = n / stage.spawn_rate if stage.spawn_rate else 0.0
        mix = self.ctx.mix
        for k in range(count):
            if k and pause and not self._wait_until(perf_counter() + pause, stage):
                return
            # loop k here is the stage's loop k·n + i: a mix assigns it as it would that user
            tenant = class_at(mix, k * n + i) if mix is not None else ""
            self.requests.spawn(self._closed_loop, stage, tenant)
        self._until_changed(stage)

    def _closed_loop(self, stage: Stage, tenant: str = "") -> None:
        """One closed-loop user of the stage: back to back, pausing after failures as users do."""
        slot = self._take()
        pacing = Pacing()
        try:
            while self.ctx.stage is stage:
                api, body, session, turn, slot.scenario, slot.tenant, model, images = self._workload_payload(
                    tenant
                )
                res = perform(slot, api, body, session=session, turn=turn, backoff_s=pacing.take(), model=model,
                              images=images)  # fmt: skip
                pause = pacing.after(res, self.ctx.remaining_s())
                if pause and not self._wait_until(perf_counter() + pause, stage):
                    return
        finally:
            self.free.append(slot)

    # -- requests ----------------------------------------------------------------------------
    def _take(self) -> _Slot:
        if self.free:
            return self.free.pop()
        ctx = self.ctx
        transport = make_transport(ctx.options.client, self.host, ctx.api_key, ctx.extra_headers, ctx.api)
        slot = _Slot(ctx, ctx.next_user_id(), transport)
        self.all_slots.append(slot)
        return slot

    def _workload_payload(self, tenant: str = "") -> Payload:
        ctx = self.ctx
        messages, max_tokens, conv, turn = ctx.workload(tenant).next_request()
        model = ctx.model_for(tenant, conv.id)
        body = ctx.body(messages, max_tokens, conv.extra_body, model)
        return ctx.api, body, conv.id, turn, _scenario(ctx), tenant, model, count_images(messages)

    def _trace_payload(self, row: TraceRow) -> Payload:
        from workloads import synth_prompt

        ctx = self.ctx
        prompt = synth_prompt(
            row.input_tokens,
            seed=int(ctx.options.seed) * 1_000_003 + row.line,
            prefix_id=row.prefix_id,
            prefix_tokens=row.prefix_tokens,
        )
        messages = [{"role": "user", "content": prompt}]
        # the trace's output length, not capped by --max-tokens, generated to the end
        model = ctx.model_for("", row.prefix_id or f"line{row.line}")  # a prefix group keeps one model
        body = ctx.api.build(
            ctx.prompt(messages, row.output_tokens, exact=True, ignore_eos=True, model=model)
        )
        return ctx.api, body, row.prefix_id or "", 0, "trace", "", model, 0

    # -- health --------------------------------------------------------------------------------
    def _watch_loop(self) -> None:
        while True:
            gevent.sleep(WINDOW_S)
            w, self.window = self.window, _Window()
            if w.due < 10:
                continue
            p99 = nearest_rank(sorted(w.lags), 0.99) if w.lags else 0.0
            if p99 <= LATE_S and w.sent >= 0.95 * w.due:
                continue
            self.stats.warnings += 1
            i, n = self._where()
            why = (
                f"{w.waited} arrivals waited for a free slot (--max-concurrency reached)"
                if w.waited
                else "the load generator is late (CPU-bound? add --processes)"
            )
            log.warning(
                "goodput: open loop falling behind (worker %d/%d, last %.0fs): sent %d of %d due, "
                "send lag p99 %.1f ms — %s",
                i + 1, n, WINDOW_S, w.sent, w.due, p99 * 1000.0, why,
            )  # fmt: skip

    def stop(self) -> None:
        if self._on_stage in self.ctx.stage_listeners:
            self.ctx.stage_listeners.remove(self._on_stage)
        self.watch.kill(block=False)
        self.requests.kill(block=True, timeout=5.0)
        for slot in self.all_slots:
            slot.transport.close()
        self.all_slots, self.free = [], []


def _scenario(ctx: RunContext) -> str:
    """The `scenario` of a single-shot row: `completions` on /v1/completions (as the CompletionsUser), else chat."""
    return "completions" if ctx.api.name == "completions" else "chat"


def _bind(fn: Callable[[TraceRow], Payload], row: TraceRow) -> Callable[[], Payload]:
    return lambda: fn(row)


def install(events: Any) -> None:
    """Open-loop statistics: workers ship them with each report; the master puts them in run.json."""

    @events.init.add_listener
    def _init(environment: Any, **_: Any) -> None:
        environment.events.report_to_master.add_listener(
            lambda client_id, data, **_: _report(environment, data)
        )
        environment.events.worker_report.add_listener(
            lambda client_id, data, **_: _receive(environment, data)
        )
        if (ctx := context.find(environment)) is not None:
            ctx.closing.add_listener(_summarize)

    events.test_start.add_listener(lambda environment, **_: context.of(environment).open_loop.reset())


def _report(environment: Any, data: dict) -> None:
    ctx = context.find(environment)
    payload = ctx.open_loop.drain() if ctx is not None else None
    if payload:
        data[OPEN_LOOP] = payload


def _receive(environment: Any, data: dict) -> None:
    payload = data.get(OPEN_LOOP)
    ctx = context.find(environment)
    if payload and ctx is not None:
        ctx.open_loop.merge(payload)
        _summarize(environment)


def _summarize(environment: Any, **_: Any) -> None:
    ctx = context.find(environment)
    if isinstance(environment.runner, WorkerRunner) or ctx is None:
        return
    stats = ctx.open_loop
    if not stats.steps:
        return
    opts = ctx.options
    span = (
        load_trace(opts.trace_file, float(opts.time_scale)).span_s if resolve_shape(opts) == "trace" else None
    )
    ctx.meta["open_loop"] = stats.summary(ctx.stages, opts, span_s=span)
