"""The live engine loop: schedule a step, sleep until its modelled end, emit its tokens.

Time keeping: a step planned at `start` ends at `start + plan.duration` (perf_counter clock).
The loop sleeps until then and records the schedule lag (actual wake − planned end). The next
step starts at the previous step's *planned* end, so the CPU time spent emitting tokens does not
stretch the modelled timeline; only when the loop falls more than `catchup_s` behind (the host
is overloaded) does it restart the timeline from now — and the lag metric shows it.

Garbage collection: automatic GC would pause the loop at random allocations — often right where
a step should end. The runner disables it and collects at step boundaries instead, just after a
step's tokens went out, when the most time is left before the next wake.
"""

from __future__ import annotations

import asyncio
import gc
import time

from simserver.engine import EngineCore, Seq
from simserver.metrics import LagWindow


class EngineRunner:
    YOUNG_THRESHOLD = 5000  # tracked allocations between young collections (CPython's default: 700)

    def __init__(self, core: EngineCore, lag: LagWindow, catchup_s: float = 0.02) -> None:
        self.core = core
        self.lag = lag
        self.catchup_s = catchup_s
        self._wake = asyncio.Event()
        self._stopping = False
        self._collections = 0

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
        host_step = core.stats.host_step.observe
        planned: float | None = None  # planned end of the previous step
        gc.disable()
        while not self._stopping:
            if not core.has_work():
                self.collect_garbage()
                self._wake.clear()
                try:  # wake at least once a second so idle-time garbage (scrapes) is collected too
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    pass
                planned = None
                continue
            now = perf()
            start = planned if planned is not None and now - planned <= self.catchup_s else now
            plan = core.schedule()
            host = perf() - now
            if not plan.seqs:
                # Work exists but nothing fits (cannot happen with a validated profile): wait for
                # an arrival or abort to change the picture rather than spin.
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
            woke = perf()
            lag.record(woke, woke - end)
            core.complete(plan, woke)
            host_step(host + perf() - woke)
            self.collect_garbage()
            planned = end
        gc.enable()
