"""A monitor that lives for each run on the master (or local runner): the engine's /metrics scraper,
the engine-span receiver.

Its options are checked at `init` (one line, exit 2 — before anything is sent); it starts at
`test_start`, after the lifecycle opened the run folder (locustfile order), stopping the previous
run's first (a web UI restart without a stop); it stops on the context's `closing` hook, just before
requests.csv and run.json close, so its figures reach run.json. Workers never run one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from locust.runners import WorkerRunner

from core.errors import OptionError, exit_with
from loadgen import context
from loadgen.context import RunContext


def install(
    events: Any,
    check: Callable[[Any, str], None],
    start: Callable[[Any, RunContext], None],
    stop: Callable[[Any], None],
) -> None:
    """`check(options, host)` raises OptionError; `start(environment, ctx)` and `stop(environment)`
    keep the monitor on the context (a field of RunContext)."""

    @events.init.add_listener
    def _init(environment: Any, runner: Any = None, **_: Any) -> None:
        if isinstance(runner, WorkerRunner) or environment.parsed_options is None:
            return
        try:
            check(environment.parsed_options, environment.host or "")
        except OptionError as e:
            exit_with(str(e))
        if (ctx := context.find(environment)) is not None:
            ctx.closing.add_listener(stop)

    @events.test_start.add_listener
    def _start(environment: Any, **_: Any) -> None:
        ctx = context.find(environment)
        if isinstance(environment.runner, WorkerRunner) or ctx is None:
            return
        stop(environment)
        start(environment, ctx)
