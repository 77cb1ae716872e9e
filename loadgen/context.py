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
import logging
import os
import socket
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from locust.event import EventHook

from core.durations import parse_duration_s
from core.errors import OptionError
from core.slo import Slo
from core.stage import Stage
from loadgen import tokencount
from loadgen.state.failures import FailureWatch
from loadgen.state.iofirst import IoFirst
from loadgen.state.livefigures import LiveFigures
from loadgen.state.livestats import LiveStats
from loadgen.state.openloop import OpenLoopStats
from loadgen.state.rows import RowBuffer
from loadgen.transport import headers as extra_headers
from loadgen.transport.apis import APIS, Api, Prompt, chosen
from loadgen.transport.ids import DEFAULT_HEADER, RequestIds, request_id_header, session_header
from workloads.conversation import output_cap

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
    from workloads.models import ModelSet

log = logging.getLogger("goodput")
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


@dataclass(eq=False)
class RunContext:
    """Goodput's state in one load process (local runner, master or worker): every field is declared
    here, with what it holds. Created at Locust's `init` by loadgen/run/lifecycle.py."""

    #: Locust's environment of this process (its runner, events, parsed options).
    environment: Any
    #: The SLO judged live and written to run.json (`--slo`).
    slo: Slo
    #: The model name sent with every request (`--model`, or the target's first model).
    model: str
    #: The parsed command line (refreshed on workers: the master's options arrive at each spawn).
    options: Any = None
    #: The server API every request speaks (`--api`, or its alias `--endpoint`).
    api: Api = field(default_factory=lambda: APIS["chat"])
    #: Counts the output tokens of a request whose server stated none (`--tokenizer`), else None.
    counter: tokencount.OutputCounter | None = None
    #: Per-request timeout and the agent's think time, in seconds.
    timeout_s: float = 0.0
    think_time_s: float = 0.0
    #: The `worker` column of this process's rows: host and pid.
    worker_name: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: Request ids (unique across workers and runs) and the header that carries them.
    ids: RequestIds = field(default_factory=RequestIds)
    #: Goodput's user numbers in this process (the `user` column).
    _user_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    #: This worker's slice of the workload: index among the workers and their count.
    worker_index: int = 0
    worker_count: int = 1
    #: Web UI: why the form's options were refused ("" when accepted); users then send nothing.
    refused: str = ""
    #: `--user` name → Locust user class (the web form may pick another class per run).
    user_classes: dict[str, type] = field(default_factory=dict)
    #: The run's tenant mix (`--mix`, workloads/mix.py), None without one: each class's dataset,
    #: share and SLO. Set by `configure`; the per-class streams open on first use (`workload`).
    mix: Mix | None = None
    #: The models the run's conversations name (`--models`, workloads/models.py), None: one model.
    models: ModelSet | None = None
    _tenant_workloads: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The weighted Locust user class of each tenant, made once per (tenant, share, base class)
    #: so runs with the same options reuse them (loadgen/run/tenants.py).
    tenant_classes: dict[tuple, type] = field(default_factory=dict)

    # -- load -------------------------------------------------------------------------------
    #: The load level requests are labelled with, and every level of this run so far.
    stage: Stage = field(default_factory=Stage)
    stages: list[Stage] = field(default_factory=list)
    #: Told of every new stage (the open-loop dispatcher waits on it).
    stage_listeners: list[Callable[[Stage], None]] = field(default_factory=list)
    #: Requests of this process waiting on the server right now (queueing shows here first).
    in_flight: int = 0
    #: Holds finished requests' bookkeeping until the event loop has no I/O pending.
    io_first: IoFirst = field(default_factory=IoFirst)
    #: Live counters (TTFT, TPOT, ITL, E2E, good and sent requests), merged worker → master.
    live: LiveStats = field(default_factory=LiveStats)
    #: When this run started here (wall clock; master: the run folder opened, worker: its users
    #: were told to start): the planned end for `remaining_s`.
    t_run_start_unix: float | None = None
    #: Rows made here and not yet handed on (workers ship them with each report).
    buffer: RowBuffer = field(default_factory=RowBuffer)
    #: Open-loop generator figures (arrivals due/sent, send lag) and this process's dispatcher.
    open_loop: OpenLoopStats = field(default_factory=OpenLoopStats)
    driver: Driver | None = None
    _workload: Any = field(default=None, repr=False)

    # -- master / local runner: the run folder -----------------------------------------------------
    #: The run folder, its id (the folder name) and the CSV writer of requests.csv.
    run_dir: Path | None = None
    run_id: str = ""
    sink: CsvSink | None = None
    #: Locust's own CSV files in the run folder (when --csv is not given).
    locust_csv: LocustCsv | None = None
    #: run.json's content, written at start, at stop and when the run closes.
    meta: dict = field(default_factory=dict)
    #: Per worker: requests started, rows received, last report, missing (loadgen/run/scaleout.py).
    per_worker: dict[str, dict] = field(default_factory=dict)
    #: Workers that confirmed their last rows were sent (the end-of-run handshake).
    flushed: set[str] = field(default_factory=set)
    #: Workers whose Goodput handlers are registered (`messages.READY`; the start handshake).
    ready_workers: set[str] = field(default_factory=set)
    #: Watches workers' heartbeats while a run is open.
    watcher: Greenlet | None = None
    #: SIGTERM acts as Ctrl-C until Locust installs its own handler (headless runs).
    sigterm_interrupts: bool = False
    #: How the run ended, for run.json's `outcome`: "" while running (then "completed"),
    #: "interrupted" (Ctrl-C, SIGTERM) or "target_failing" (loadgen/run/failstop.py).
    outcome: str = ""
    #: The systematic-failure rule, fed every row the run folder receives (all workers' rows).
    failures: FailureWatch = field(default_factory=FailureWatch)
    #: The live figures both live views show (sampled by loadgen/live/sampler.py).
    figures: LiveFigures = field(default_factory=LiveFigures)
    #: Requests each worker has waiting on the server (its last report), by client id.
    worker_in_flight: dict[str, int] = field(default_factory=dict)
    #: Fired once per run on the master/local runner, after the workers' last rows arrived and
    #: just before requests.csv and run.json are closed: `(environment=…)`. The last moment a
    #: plugin (monitors, open-loop stats) can put its figures into `meta`.
    closing: EventHook = field(default_factory=EventHook)
    #: Fired once per run on the master/local runner when the failure rule holds:
    #: `(verdict=loadgen.state.failures.Verdict)`; loadgen/run/failstop.py stops the run.
    target_failing: EventHook = field(default_factory=EventHook)

    # -- plugins (created at init by their own install()) ---------------------------------------
    #: Self-measurement (event-loop lag, CPU): loadgen/monitors/selfmon.py.
    selfmon: SelfMon | None = None
    #: The engine /metrics scraper (master/local): loadgen/monitors/servermetrics.py.
    scraper: Scraper | None = None
    #: The engine-span receiver of the open run (master/local): loadgen/monitors/spans.py.
    spans: SpanCapture | None = None
    #: The web UI's LLM view (master/local with a web UI): loadgen/live/webui.
    web_view: LiveView | None = None

    def __post_init__(self) -> None:
        self.configure(self.slo, self.model)

    def configure(self, slo: Slo, model: str) -> None:
        """Options that may change between runs (a worker gets the master's at each spawn)."""
        self.options = self.environment.parsed_options
        self.slo = slo
        self.model = model
        self.timeout_s = parse_duration_s(self.options.request_timeout, "--request-timeout")
        self.think_time_s = parse_duration_s(self.options.think_time, "--think-time")
        self.ids.header = request_id_header(getattr(self.options, "request_id_header", DEFAULT_HEADER))
        self.ids.session_header = session_header(getattr(self.options, "session_header", "none"))
        opts = self.options
        self.api = chosen(
            getattr(opts, "api", ""), getattr(opts, "endpoint", ""), getattr(opts, "api_path", "")
        )
        self.counter = None
        if tok := getattr(opts, "tokenizer", ""):
            try:
                self.counter = tokencount.load(tok)
            except OptionError as e:  # checked on the master; a worker on another host may lack it
                log.error("goodput: %s; this process's rows keep the chunk count", e)
        self.mix = None
        if getattr(self.options, "mix", ""):
            from workloads.mix import parse_mix

            alone = getattr(self.options, "mix_alone", "") or ""
            self.mix = parse_mix(
                self.options.mix, slo, alone=alone
            )  # checked before (loadgen/run/tenants.py)
        from workloads.models import parse_models

        self.models = parse_models(getattr(self.options, "models", "") or "")  # checked before (checks.py)

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

    @property
    def asks_usage(self) -> bool:
        """`--stream-usage`: whether requests ask for the server's token counts (stream_options)."""
        return getattr(self.options, "stream_usage", "on") != "off"

    @property
    def cap_field(self) -> str:
        """`--max-tokens-field`: the chat field that carries the output cap."""
        return getattr(self.options, "max_tokens_field", "max_tokens")

    @property
    def extra_headers(self) -> dict[str, str]:
        """`--header`s with their `$VAR` values read in this process (checked at the start)."""
        return extra_headers.resolve(extra_headers.parse(getattr(self.options, "header", None)))

    @property
    def scrape_headers(self) -> dict[str, str]:
        """`--server-metrics-header`s, read in this process (the one that scrapes): never on a request."""
        values = getattr(self.options, "server_metrics_header", None)
        return extra_headers.resolve(extra_headers.parse(values, option="--server-metrics-header"))

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

    def model_for(self, tenant: str, session: str) -> str:
        """The model a request of conversation `session` names: its mix class's `model=`, else its
        draw among `--models` (workloads/models.py: by session, so every turn names the same one),
        else the run's model. The row's `model` column is this very call."""
        if tenant and self.mix is not None and (model := self.mix.of(tenant).model):
            return model
        if self.models is not None:
            return self.models.pick(str(self.options.seed), session)
        return self.model

    def prompt(
        self,
        messages: list[dict],
        max_tokens: int | None,
        extra: dict | None = None,
        *,
        exact: bool = False,
        ignore_eos: bool = False,
        model: str = "",
    ) -> Prompt:
        """One request's content for `self.api.build`: the dataset's own output cap, capped by
        `--max-tokens` (`exact`: a trace's length, not capped); `model`: the one it names, when not
        the run's (an adapter: APIs that name it apart from the model, SGLang's and TGI's, see base.py)."""
        cap = self.options.max_tokens
        limit = (max_tokens or cap) if exact else output_cap(max_tokens, cap)
        eos = ignore_eos or self.options.ignore_eos
        adapter = model if model and model != self.model else ""
        return Prompt(
            self.model, messages, limit, eos, extra or None, self.asks_usage, self.cap_field, adapter
        )

    def body(
        self, messages: list[dict], max_tokens: int | None, extra: dict | None = None, model: str = ""
    ) -> dict:
        """The request body of the run's API (`--api`) for one turn of the workload, naming `model`."""
        return self.api.build(self.prompt(messages, max_tokens, extra, model=model))

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
