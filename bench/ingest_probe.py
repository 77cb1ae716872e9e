"""A Locust plugin for bench/master_ingest.py: workers that make rows without HTTP, a master that says
how it keeps up.

Loaded after the real locustfile (`locust -f locustfile.py,bench/ingest_probe.py --processes N`), so
master and workers are Goodput's own processes with every plugin installed. What changes:
- the user class is `IngestUser`: each user makes `GOODPUT_INGEST_USER_RPS` rows a second, each a
  real `RequestRecord.row()` with `GOODPUT_INGEST_GAPS` inter-token gaps, and hands it on exactly
  as `loadgen/request.py` does (`ctx.buffer.started += 1`, `ctx.emit(row)`), so from there on the
  path is the real one: the worker report (msgpack over ZeroMQ), the master's `receive_rows`, the
  failure rule, `CsvSink`, run.json's loss accounting. No HTTP and no stream parsing: the worker
  makes many more rows per core than a streaming one, which is the point (it loads the master);
- the master measures itself: its event-loop lag (a 10 ms sleep, how late it wakes: what a flush or
  a report held the loop for) and, per sink flush, how long it took and how old its oldest row was
  (request end → on disk);
  it writes them to `$GOODPUT_INGEST_OUT/master.json` when it quits.
Bench code: it wraps `CsvSink.flush` in place.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
from locust import User, constant_pacing, events, task
from locust.runners import MasterRunner

from core.record import COLUMNS, RequestRecord
from loadgen import context
from loadgen.output import sink

OUT = Path(os.environ.get("GOODPUT_INGEST_OUT", "."))
USER_RPS = float(os.environ.get("GOODPUT_INGEST_USER_RPS", "20"))
GAPS = int(os.environ.get("GOODPUT_INGEST_GAPS", "200"))
_T_START, _E2E = COLUMNS.index("t_start_unix"), COLUMNS.index("e2e_s")


class IngestUser(User):
    """Rows at a steady rate, each one a completed 200-gap streaming request."""

    wait_time = constant_pacing(1.0 / USER_RPS)

    def on_start(self) -> None:
        self.ctx = context.of(self.environment)
        self.uid = self.ctx.next_user_id()
        rng = random.Random(self.uid)
        self.gaps = [rng.uniform(0.01, 0.03) for _ in range(GAPS)]

    @task
    def row(self) -> None:
        ctx = self.ctx
        e2e = 0.05 + sum(self.gaps)
        rec = RequestRecord(
            worker=ctx.worker_name, user=self.uid, session=f"s{self.uid}", request_id=ctx.ids.next(),
            scenario="chat", dataset=ctx.options.dataset, step=ctx.stage.step,
            target_users=ctx.stage.target_users, t_start_unix=time.time() - e2e, ttft_s=0.05, e2e_s=e2e,
            itl_s=self.gaps, n_chunks=GAPS + 1, prompt_tokens=64, output_tokens=GAPS + 1,
            tokens_source="usage", ok=True, http_status=200, finish_reason="length", api="chat",
        )  # fmt: skip
        ctx.buffer.started += 1
        ctx.emit(rec.row())


_lags: list[tuple[float, float]] = []  # (when, how late the 10 ms sleep woke, ms)
_flushes: list[tuple[float, int, float, float]] = []  # (when, rows, seconds the flush took, oldest row age)
_flush = sink.CsvSink.flush


def _timed_flush(self: Any, *args: Any, **kwargs: Any) -> None:
    pending = self._pending  # in arrival order: its first row is the oldest of the earliest report
    oldest = float(pending[0][_T_START]) + float(pending[0][_E2E]) if pending else 0.0
    n, t0 = len(pending), time.perf_counter()
    _flush(self, *args, **kwargs)
    if n:
        now = time.time()
        _flushes.append((now, n, time.perf_counter() - t0, now - oldest))


def _lag_probe() -> None:
    while True:
        t = time.perf_counter()
        gevent.sleep(0.01)
        _lags.append((time.time(), (time.perf_counter() - t - 0.01) * 1000))


@events.init.add_listener
def _init(environment: Any, runner: Any, **_: Any) -> None:
    environment.user_classes = [IngestUser]  # after the locustfile's choice (its listener ran first)
    if isinstance(runner, MasterRunner):
        sink.CsvSink.flush = _timed_flush  # type: ignore[method-assign]
        gevent.spawn(_lag_probe)


@events.quitting.add_listener
def _write(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        (OUT / "master.json").write_text(json.dumps({"lag_ms": _lags, "flushes": _flushes}))
