"""The live engine loop: schedule a step, sleep until its modelled end, emit its tokens.

Time keeping: a step planned at `start` ends at `start + plan.duration` (perf_counter clock).
The loop sleeps until then and records the schedule lag (actual wake − planned end). The next
step starts at the previous step's *planned* end — a busy engine is never idle between steps —
so the CPU time spent emitting tokens is hidden inside the next step, and if emitting ever takes
longer than a step the wakes fall behind the model's timeline and the lag metric says so. Only a
hopeless backlog (more than `max_behind_s`) restarts the timeline from now, so that an overloaded
host does not answer with a burst of catch-up steps; that step's lag is still recorded.

Heavy work that is not a token — garbage collection, rendering /metrics (~5–15 ms) — would block
the loop at random moments, often right where a step should end. The runner runs it at step
boundaries instead, just after a step's tokens went out, when the most time is left before the
next wake (automatic GC is disabled; `defer` queues other work).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from simserver.engine import EngineCore, Seq
from simserver.metrics import LagWindow


class EngineRunner:
    YOUNG_THRESHOLD = 5000  # tracked allocations between young collections (CPython's default: 700)

    def __init__(self, core: EngineCore, lag: LagWindow, max_behind_s: float = 1.0) -> None:
        self.core = core
        self.lag = lag
        self.max_behind_s = max_behind_s
        self._wake = asyncio.Event()
        self._stopping = False
        self._collections = 0
        self._deferred: list[Callable[[], None]] = []

    def defer(self, fn: Callable[[], None]) -> None:
        """Run `fn` after the current step's emission (at once when the engine is idle)."""
        if self.core.has_work():
            self._deferred.append(fn)
        else:
            fn()

    def _run_deferred(self) -> None:
        work, self._deferred = self._deferred, []
        for fn in work:
            fn()

    def collect_garbage(self) -> None:
        """CPython's generational cascade (every 10th collection older), run where it costs nothing."""
        if gc.get_count()[0] < self.YOUNG_THRESHOLD:
            return
        self._collections += 1
        gc.collect(2 if self._collections % 100 == 0 else 1 if self._collections % 10 == 0 else 0)

    def submit(self, seq: Seq) -> None:
        self.core.add(seq, time.perf_counter())
        self._wake.set()

    def abort(self, seq: Seq) -> None:
        self.core.abort(seq, time.perf_counter())

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        core, lag, perf = self.core, self.lag, time.perf_counter
        sleep = asyncio.sleep
        host_step, cpu_step, cpu = core.stats.host_step.observe, core.stats.cpu_step.observe, time.thread_time
        lora = core.lora  # with adapters, each step stamps vLLM's lora_requests_info (wall clock)
        planned: float | None = None  # planned end of the previous step
        gc.disable()
        while not self._stopping:
            if not core.has_work():
                self._run_deferred()
                self.collect_garbage()
                self._wake.clear()
                try:  # wake at least once a second so idle-time garbage (scrapes) is collected too
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    pass
                planned = None
                continue
            now, cpu0 = perf(), cpu()
            start = planned if planned is not None and now - planned <= self.max_behind_s else now
            plan = core.schedule()
            host, host_cpu = perf() - now, cpu() - cpu0
            if not plan.seqs:
                # Work exists but nothing fits (cannot happen with a validated profile): wait for
                # an arrival or abort to change the picture rather than spin.
                self._run_deferred()
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.05)
                except TimeoutError:
                    pass
                planned = None
                continue
            end = start + plan.duration
            # uvloop's timers have 1 ms granularity and may fire early: sleep again for the rest.
            slept = False
            while (remaining := end - perf()) > 0:
                await sleep(remaining)
                slept = True
            if not slept:
                await sleep(0)  # behind schedule: still let the loop read requests between steps
            woke, cpu1 = perf(), cpu()
            lag.record(woke, woke - end)
            core.complete(plan, woke)
            if lora is not None:
                lora.stamp(time.time())
            host_step(host + perf() - woke)
            cpu_step(host_cpu + cpu() - cpu1)
            if self._deferred:
                self._run_deferred()
            self.collect_garbage()
            planned = end
        gc.enable()
