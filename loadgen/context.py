"""`RunContext`: everything Goodput keeps per load process, declared in one place.

Locust's `Environment` is the composition root of a Locust process and declares every attribute
it carries; this is Goodput's counterpart. Nothing of Goodput's is hung on the Environment: each
process has one `RunContext`, found with `of(environment)`, and every field below says what it
holds and who writes it. Fields a plugin fills (web view, monitors, scale-out bookkeeping) are
typed here but created by that plugin when the process starts (loadgen/run/lifecycle.py wires them).

A process lives through several runs (the web UI starts and stops runs): run-scoped fields are
reset by `begin_run` on the master/local runner and by `refresh` on a worker.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locust.event import EventHook

from core.durations import parse_duration_s
from core.slo import Slo
from core.stage import Stage
from loadgen.state.failures import FailureWatch
from loadgen.state.iofirst import IoFirst
from loadgen.state.livefigures import LiveFigures
from loadgen.state.livestats import LiveStats
from loadgen.state.openloop import OpenLoopStats
from loadgen.state.rows import RowBuffer
from loadgen.transport.ids import DEFAULT_HEADER, RequestIds, request_id_header

if TYPE_CHECKING:
    from collections.abc import Callable

    from gevent import Greenlet

    from loadgen.live.webui import LiveView
    from loadgen.monitors.selfmon import SelfMon
    from loadgen.monitors.servermetrics import Scraper
    from loadgen.monitors.spans import SpanCapture
    from loadgen.openloop import Driver
    from loadgen.output.locustcsv import LocustCsv
    from loadgen.output.sink import CsvSink
    from workloads.mix import Mix

_CONTEXTS: weakref.WeakKeyDictionary[Any, RunContext] = weakref.WeakKeyDictionary()


def of(environment: Any) -> RunContext:
    """This process's context (created at Locust's `init` by loadgen/run/lifecycle.py)."""
    try:
        return _CONTEXTS[environment]
    except KeyError:
        raise LookupError(
            "Goodput's context is not set up in this process (locustfile not loaded?)"
        ) from None


def find(environment: Any) -> RunContext | None:
    """The context, or None while `init` has not created it yet (early reports, other locustfiles)."""
    return _CONTEXTS.get(environment)


def attach(environment: Any, ctx: RunContext) -> RunContext:
    _CONTEXTS[environment] = ctx
    return ctx


class RunContext:
    """Goodput's state in one load process (local runner, master or worker)."""

    def __init__(self, environment: Any, slo: Slo, model: str) -> None:
        #: Locust's environment of this process (its runner, events, parsed options).
        self.environment = environment
        #: The parsed command line (refreshed on workers: the master's options arrive at each spawn).
        self.options: Any = environment.parsed_options
        #: The SLO judged live and written to run.json (`--slo`).
        self.slo = slo
        #: The model name sent with every request (`--model`, or the target's first model).
        self.model = model
        #: Per-request timeout and the agent's think time, in seconds.
        self.timeout_s = 0.0
        self.think_time_s = 0.0
        #: The `worker` column of this process's rows: host and pid.
        self.worker_name = f"{socket.gethostname()}-{os.getpid()}"
        #: Request ids (unique across workers and runs) and the header that carries them.
        self.ids = RequestIds()
        #: Goodput's user numbers in this process (the `user` column).
        self._user_ids = itertools.count(1)
        #: This worker's slice of the workload: index among the workers and their count.
        self.worker_index = 0
        self.worker_count = 1
        #: Web UI: why the form's options were refused ("" when accepted); users then send nothing.
        self.refused = ""
        #: `--user` name → Locust user class (the web form may pick another class per run).
        self.user_classes: dict[str, type] = {}
        #: The run's tenant mix (`--mix`, workloads/mix.py), None without one: each class's dataset,
        #: share and SLO. Set by `configure`; the per-class streams open on first use (`workload`).
        self.mix: Mix | None = None
        self._tenant_workloads: dict[str, Any] = {}
        #: The weighted Locust user class of each tenant, made once per (tenant, share, base class)
        #: so runs with the same options reuse them (loadgen/run/tenants.py).
        self.tenant_classes: dict[tuple, type] = {}

        # -- load -------------------------------------------------------------------------------
        #: The load level requests are labelled with, and every level of this run so far.
        self.stage = Stage()
        self.stages: list[Stage] = []
        #: Told of every new stage (the open-loop dispatcher waits on it).
        self.stage_listeners: list[Callable[[Stage], None]] = []
        #: Requests of this process waiting on the server right now (queueing shows here first).
        self.in_flight = 0
        #: Holds finished requests' bookkeeping until the event loop has no I/O pending.
        self.io_first = IoFirst()
        #: Live counters (TTFT, TPOT, ITL, E2E, good and sent requests), merged worker → master.
        self.live = LiveStats()
        #: When this run started here (wall clock; master: the run folder opened, worker: its users
        #: were told to start): the planned end for `remaining_s`.
        self.t_run_start_unix: float | None = None
        #: Rows made here and not yet handed on (workers ship them with each report).
        self.buffer = RowBuffer()
        #: Open-loop generator figures (arrivals due/sent, send lag) and this process's dispatcher.
        self.open_loop = OpenLoopStats()
        self.driver: Driver | None = None
        self._workload: Any = None

        # -- master / local runner: the run folder -----------------------------------------------------
        #: The run folder, its id (the folder name) and the CSV writer of requests.csv.
        self.run_dir: Path | None = None
        self.run_id = ""
        self.sink: CsvSink | None = None
        #: Locust's own CSV files in the run folder (when --csv is not given).
        self.locust_csv: LocustCsv | None = None
        #: run.json's content, written at start, at stop and when the run closes.
        self.meta: dict = {}
        #: Per worker: requests started, rows received, last report, missing (loadgen/run/scaleout.py).
        self.per_worker: dict[str, dict] = {}
        #: Workers that confirmed their last rows were sent (the end-of-run handshake).
        self.flushed: set[str] = set()
        #: Watches workers' heartbeats while a run is open.
        self.watcher: Greenlet | None = None
        #: SIGTERM acts as Ctrl-C until Locust installs its own handler (headless runs).
        self.sigterm_interrupts = False
        #: How the run ended, for run.json's `outcome`: "" while running (then "completed"),
        #: "interrupted" (Ctrl-C, SIGTERM) or "target_failing" (loadgen/run/failstop.py).
        self.outcome = ""
        #: The systematic-failure rule, fed every row the run folder receives (all workers' rows).
        self.failures = FailureWatch()
        #: The live figures both live views show (sampled by loadgen/live/sampler.py).
        self.figures = LiveFigures()
        #: Requests each worker has waiting on the server (its last report), by client id.
        self.worker_in_flight: dict[str, int] = {}
        #: Fired once per run on the master/local runner, after the workers' last rows arrived and
        #: just before requests.csv and run.json are closed: `(environment=…)`. The last moment a
        #: plugin (monitors, open-loop stats) can put its figures into `meta`.
        self.closing = EventHook()
        #: Fired once per run on the master/local runner when the failure rule holds:
        #: `(verdict=loadgen.state.failures.Verdict)`; loadgen/run/failstop.py stops the run.
        self.target_failing = EventHook()

        # -- plugins (created at init by their own install()) ---------------------------------------
        #: Self-measurement (event-loop lag, CPU): loadgen/monitors/selfmon.py.
        self.selfmon: SelfMon | None = None
        #: The engine /metrics scraper (master/local): loadgen/monitors/servermetrics.py.
        self.scraper: Scraper | None = None
        #: The engine-span receiver of the open run (master/local): loadgen/monitors/spans.py.
        self.spans: SpanCapture | None = None
        #: The web UI's LLM view (master/local with a web UI): loadgen/live/webui.
        self.web_view: LiveView | None = None
        self.configure(slo, model)

    def configure(self, slo: Slo, model: str) -> None:
        """Options that may change between runs (a worker gets the master's at each spawn)."""
        self.options = self.environment.parsed_options
        self.slo = slo
        self.model = model
        self.timeout_s = parse_duration_s(self.options.request_timeout, "--request-timeout")
        self.think_time_s = parse_duration_s(self.options.think_time, "--think-time")
        self.ids.header = request_id_header(getattr(self.options, "request_id_header", DEFAULT_HEADER))
        self.mix = None
        if getattr(self.options, "mix", ""):
            from workloads.mix import parse_mix

            alone = getattr(self.options, "mix_alone", "") or ""
            self.mix = parse_mix(
                self.options.mix, slo, alone=alone
            )  # checked before (loadgen/run/tenants.py)

    def next_user_id(self) -> int:
        return next(self._user_ids)

    def remaining_s(self) -> float | None:
        """Seconds left of the run when its length is known (`-t/--run-time`), else None."""
        run_time = getattr(self.options, "run_time", None)
        if not run_time or self.t_run_start_unix is None:
            return None
        return max(0.0, self.t_run_start_unix + float(run_time) - time.time())

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.options.api_key_env) or None

    # -- workload -------------------------------------------------------------------
    def workload(self, tenant: str = "") -> Any:
        """Opened on first use, after the master has told this worker its slice; a tenant's own
        stream is its class's dataset with the run's seed (so alone, it sends the same requests)."""
        if tenant:
            stream = self._tenant_workloads.get(tenant)
            if stream is None:
                from workloads import open_workload

                assert self.mix is not None, f"tenant '{tenant}' without --mix"
                stream = self._tenant_workloads[tenant] = open_workload(
                    self.mix.of(tenant).dataset,
                    seed=self.options.seed,
                    worker_index=self.worker_index,
                    worker_count=self.worker_count,
                    order=self.options.order,
                )
            return stream
        if self._workload is None:
            from workloads import open_workload

            self._workload = open_workload(
                self.options.dataset,
                seed=self.options.seed,
                worker_index=self.worker_index,
                worker_count=self.worker_count,
                order=self.options.order,
            )
        return self._workload

    def open_workloads(self) -> None:
        """Open every stream this run uses now (the open-loop warm-up: never at an arrival's time)."""
        for tenant in self.mix.names if self.mix is not None else [""]:
            self.workload(tenant)

    def drop_workload(self) -> None:
        """The next run opens the workload again (new options or a new slice)."""
        self._workload = None
        self._tenant_workloads = {}

    def slo_of(self, tenant: str) -> Slo:
        """The SLO a row of `tenant` is judged by: its class's, else the run's `--slo`."""
        return self.mix.of(tenant).slo if tenant and self.mix is not None else self.slo

    def dataset_of(self, tenant: str) -> str:
        """The `dataset` column of a row of `tenant`: its class's spec, else `--dataset`."""
        return self.mix.of(tenant).dataset if tenant and self.mix is not None else self.options.dataset

    def chat_body(self, messages: list[dict], max_tokens: int | None, extra: dict | None = None) -> dict:
        body: dict = {
            "model": self.model,
            "messages": messages,
            "max_tokens": min(max_tokens, self.options.max_tokens) if max_tokens else self.options.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.options.ignore_eos:
            body["ignore_eos"] = True
        if extra:
            body.update(extra)
        return body

    def completion_body(self, prompt: str, max_tokens: int | None, extra: dict | None = None) -> dict:
        body = self.chat_body([], max_tokens, extra)
        del body["messages"]
        body["prompt"] = prompt
        return body

    # -- rows -----------------------------------------------------------------------
    def emit(self, row: list[str]) -> None:
        if self.sink is not None:
            self.keep_rows([row])
        else:
            self.buffer.add(row)

    def keep_rows(self, rows: list[list[str]]) -> None:
        """Master/local: rows into requests.csv, and past the systematic-failure rule."""
        if self.sink is not None:
            self.sink.add_rows(rows)
            if (verdict := self.failures.observe(rows)) is not None:
                self.target_failing.fire(verdict=verdict)

    # -- stages ----------------------------------------------------------------------
    def set_stage(self, stage: Stage) -> None:
        """Make `stage` current, close the previous one, and tell the listeners."""
        now = time.time()
        if self.stages and self.stages[-1].t_end_unix is None:
            self.stages[-1].t_end_unix = now
        stage.t_start_unix = stage.t_start_unix or now
        self.stage = stage
        self.stages.append(stage)
        for callback in list(self.stage_listeners):
            callback(stage)

    def stages_meta(self) -> list[dict]:
        return [s.to_dict() for s in self.stages]
