"""The run's lifecycle, one owner from the first check to the last row, the same locally and distributed.

init        every process: build its RunContext; master/local: validate options and the target
            (one clear line, no traceback)
test_start  master/local: open the run folder and the CSV sink, tell each worker its settings;
            worker: take the master's options for this run
report      worker → master: rows, counts and live figures ride on Locust's worker reports
test_stop   master/local: end the last stage, then — master — collect every live worker's last
            rows (loadgen/run/scaleout.py handshake), then close the run: requests.csv, run.json
            (with its `outcome`: completed, interrupted, or target_failing — loadgen/run/failstop.py).
            Nothing else closes the run, so no row can arrive after its file is closed.
quitting    a run still open (the process is going away) is closed the same way; master/local: the
            process's exit code says how the run ended (EXIT_CODES, README.md § Exit codes)
"""

from __future__ import annotations

import logging
import time
from typing import Any

import locust
import locust.runners
from locust.runners import MasterRunner, WorkerRunner

from core.errors import USAGE_EXIT, OptionError, SloError, exit_with
from core.slo import parse_slo
from loadgen import context, messages
from loadgen.context import RunContext
from loadgen.output.locustcsv import LocustCsv
from loadgen.output.runfolder import analyse_command, create_run_dir, git_commit, write_json
from loadgen.output.sink import CsvSink
from loadgen.run import scaleout, target, tenants
from loadgen.run.checks import check_options, choose_user_class, validate
from loadgen.run.fit import Fit
from loadgen.transport.headers import parse as parse_headers
from loadgen.transport.urls import safe_url, shown_path
from shapes.options import resolve_shape

log = logging.getLogger("goodput")
# How a run ended (run.json's `outcome`) → the process's exit code. A completed run is 0 however many
# of its requests failed: a load test's failures are data (rows with their error category, judged by
# the analysis), not a verdict on the run; a target that fails *everything* stops the run with 2
# (loadgen/run/failstop.py), as a bad option does before the run (core/errors.py USAGE_EXIT); an
# interrupted run (Ctrl-C, SIGTERM) keeps its rows and ends with the shell's 128 + SIGINT.
EXIT_CODES = {"completed": 0, "target_failing": USAGE_EXIT, "interrupted": 130}
INTERNAL_ERROR_EXIT = 1  # a completed run during which Goodput or Locust itself raised (see the log)
# Rows ride on worker reports: report every second so requests.csv is never more than ~2 s behind.
locust.runners.WORKER_REPORT_INTERVAL = 1.0


def install(events: Any, user_classes: dict[str, type]) -> None:
    """First of the plugins: every other one finds the RunContext this creates at init."""

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        on_init(environment, runner, user_classes)

    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
    events.quitting.add_listener(on_quitting)


def on_init(environment: Any, runner: Any, user_classes: dict[str, type]) -> None:
    # Report listeners get no environment: bind it here.
    environment.events.report_to_master.add_listener(
        lambda client_id, data, **_: report_rows(environment, data)
    )
    environment.events.worker_report.add_listener(
        lambda client_id, data, **_: receive_rows(environment, client_id, data)
    )
    opts = environment.parsed_options
    if isinstance(runner, WorkerRunner):
        ctx = context.attach(environment, RunContext(environment, parse_slo("chat"), opts.model))
        ctx.user_classes = dict(user_classes)
        runner.register_message(messages.RUN, on_run_message)
        return
    headless = bool(opts.headless)
    # Headless Locust later sets -u to 1 when it was not given; remember whether the user typed it
    # (it then selects a plain run, shapes/options.py). The web form always sends a user count: there
    # only --shape none uses it.
    opts.goodput_users_given = opts.num_users is not None and bool(headless or opts.autostart)
    if headless and not environment.host:
        exit_with("no target: pass --host http://HOST:PORT (an OpenAI-compatible server)")
    slo, model, fits = validate(environment, check_target=headless)
    ctx = context.attach(environment, RunContext(environment, slo, model))
    note_fits(ctx, fits)
    ctx.user_classes = dict(user_classes)
    ctx.meta["target_checked"] = headless
    choose_user_class(environment, user_classes, ctx.mix, ctx.tenant_classes)


def on_run_message(environment: Any, msg: Any, **_: Any) -> None:
    """Worker: the master's run settings (model, slice of the workload) before users start."""
    ctx = context.of(environment)
    d: messages.RunSettings = msg.data
    ctx.model = d["model"]
    ctx.worker_index, ctx.worker_count = d["worker_index"], d["worker_count"]


def on_test_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    ctx = context.of(environment)
    if isinstance(runner, WorkerRunner):
        refresh_worker(ctx)
        return
    if not ctx.meta.get("target_checked") and not recheck_form(environment, ctx):
        return
    begin_run(environment, ctx)
    if isinstance(runner, MasterRunner):
        ids = sorted(c.id for c in runner.clients.ready + runner.clients.running + runner.clients.spawning)
        for i, cid in enumerate(ids):
            settings: messages.RunSettings = {
                "model": ctx.model,
                "worker_index": i,
                "worker_count": len(ids),
                "run_id": ctx.run_id,
            }
            runner.send_message(messages.RUN, settings, client_id=cid)


def recheck_form(environment: Any, ctx: RunContext) -> bool:
    """Web UI: host and options may have changed in the form. A refused start sends nothing."""
    try:
        slo, model, fits = check_options(environment, check_target=True)
        ctx.configure(slo, model)
        note_fits(ctx, fits)
        choose_user_class(environment, ctx.user_classes, ctx.mix, ctx.tenant_classes)  # by --user name
        ctx.refused = ""
        return True
    except (SloError, target.TargetError, OptionError) as e:
        ctx.refused = str(e)  # users spawned for this start do nothing (users/base.py on_start)
        if "@" in (environment.host or ""):  # refused credentials: the page must not keep showing them
            environment.host = environment.parsed_options.host = safe_url(environment.host)
        log.error("goodput: %s", e)
        import gevent

        gevent.spawn_later(0.1, environment.runner.stop)
        return False


def note_fits(ctx: RunContext, fits: list[Fit]) -> None:
    """Say which of the workload's requests will not fit the server's context (loadgen/run/fit.py),
    and keep the counts for run.json (`context_fit`; absent when the server lists no context)."""
    for fit in fits:
        if line := fit.picture_line():
            log.info("goodput: %s", line)
        if line := fit.warning():
            log.warning("goodput: %s", line)
    if fits:
        ctx.meta["context_fit"] = {
            "context_tokens": fits[0].context,
            "source": fits[0].source,
            "datasets": [f.to_dict() for f in fits],
        }
    else:
        ctx.meta.pop("context_fit", None)


def refresh_worker(ctx: RunContext) -> None:
    """Workers take the master's options (Locust copies them into parsed_options on spawn)."""
    ctx.configure(parse_slo(ctx.environment.parsed_options.slo), ctx.model or ctx.options.model)
    ctx.drop_workload()
    if ctx.mix is not None:  # the master spawns the tenants' user classes by name: make them here too
        mine = tenants.user_classes(ctx.mix, ctx.user_classes, ctx.options, ctx.tenant_classes)
        ctx.environment.user_classes = [*ctx.user_classes.values(), *mine]
    ctx.buffer.started = len(ctx.buffer.rows)  # counted per run, as the master's per_worker is
    ctx.t_run_start_unix = time.time()


def begin_run(environment: Any, ctx: RunContext) -> None:
    opts = environment.parsed_options
    if ctx.sink is not None:
        finish_run(environment)
    ctx.run_dir = create_run_dir(opts.results_dir, opts.run_name).resolve()  # logged and shown absolute
    ctx.run_id = ctx.run_dir.name
    ctx.sink = CsvSink(ctx.run_dir / "requests.csv", ctx.run_id)
    ctx.buffer.started = 0
    ctx.per_worker = {}
    ctx.outcome = ""
    ctx.failures.reset()
    for key in ("outcome", "stop_reason", "target_failing"):  # a web-UI process runs many runs
        ctx.meta.pop(key, None)
    ctx.t_run_start_unix = time.time()
    ctx.live.reset()
    ctx.meta.update(
        run_id=ctx.run_id,
        name=opts.run_name,
        target=safe_url(environment.host or ""),
        model=ctx.model,
        user_class=",".join(c.__name__ for c in environment.user_classes),
        transport=opts.client,
        stream_usage=ctx.asks_usage,
        tokenizer=ctx.counter.source if ctx.counter is not None else None,
        max_tokens_field=ctx.cap_field,
        headers=[name for name, _ in parse_headers(getattr(opts, "header", None))],  # never a value
        api=ctx.api.name,
        api_path=shown_path(getattr(opts, "api_path", "") or "") or None,
        dataset=ctx.mix.label if ctx.mix is not None else opts.dataset,
        order=opts.order,
        slo=ctx.slo.to_dict(),
        seed=opts.seed,
        max_tokens=opts.max_tokens,
        request_timeout_s=ctx.timeout_s,
        git_commit=git_commit(),
        locust_version=locust.__version__,
        workers=len(environment.runner.clients) if isinstance(environment.runner, MasterRunner) else 0,
        t_start_unix=time.time(),
        t_end_unix=None,
    )
    ctx.meta.setdefault("shape", {"name": resolve_shape(opts), "params": {}})
    if ctx.mix is not None:  # each class's SLO and workload (the analysis judges its rows by that SLO)
        ctx.meta.pop("workload", None)
        ctx.meta["mix"] = ctx.mix.to_dict()
        for c, out in zip(ctx.mix.classes, ctx.meta["mix"]["classes"], strict=True):
            out["workload"] = ctx.workload(c.name).describe()
    else:
        ctx.meta.pop("mix", None)
        ctx.meta["workload"] = ctx.workload().describe()
    if ctx.models is not None:
        ctx.meta["models"] = ctx.models.to_dict()
    else:
        ctx.meta.pop("models", None)
    write_json(ctx.run_dir / "run.json", ctx.meta)
    if not opts.csv_prefix:
        ctx.locust_csv = LocustCsv(environment, ctx.run_dir / "locust")
    log.info("goodput: run folder %s", ctx.run_dir)


def report_rows(environment: Any, data: dict) -> None:
    """Worker: this process's rows, started count and live figures ride on the report."""
    ctx = context.find(environment)
    if ctx is None:
        return
    payload: messages.RowsReport = {
        "taken_unix": time.time(),
        "rows": ctx.buffer.take(),
        "started": ctx.buffer.started,
        "live": ctx.live.serialize(),
    }
    data[messages.ROWS] = payload


def receive_rows(environment: Any, client_id: str, data: dict) -> None:
    """Master: a worker's rows go to the sink, its counts to the loss bookkeeping."""
    payload = data.get(messages.ROWS)
    ctx = context.find(environment)  # reports can arrive while init is still validating
    if payload is None or ctx is None or ctx.sink is None:
        return
    ctx.keep_rows(payload["rows"])
    scaleout.note_report(ctx.per_worker, client_id, payload, time.time())
    ctx.live.merge(payload["live"])


def on_test_stop(environment: Any, **_: Any) -> None:
    """Master/local: the run is over — collect the last rows, then close it (the one place that does)."""
    ctx = context.find(environment)
    if ctx is None or isinstance(environment.runner, WorkerRunner) or ctx.sink is None:
        return
    if ctx.stages and ctx.stages[-1].t_end_unix is None:
        ctx.stages[-1].t_end_unix = time.time()
    ctx.meta["t_end_unix"] = time.time()
    write_meta(ctx)
    if isinstance(environment.runner, MasterRunner):
        # workers drain their users first when asked to (--stop-timeout): wait for that too
        drain_s = float(getattr(environment.parsed_options, "stop_timeout", 0) or 0)
        silent = scaleout.collect_last_rows(environment, ctx, scaleout.FLUSH_TIMEOUT_S + drain_s)
        if silent:
            log.warning("goodput: no final report from %s: their last rows may be missing", ", ".join(silent))
    finish_run(environment)


def on_quitting(environment: Any, **_: Any) -> None:
    ctx = context.find(environment)
    if isinstance(environment.runner, WorkerRunner) or ctx is None:
        return  # a worker's code is Locust's: its master's is the run's
    if ctx.sink is not None and not ctx.outcome:
        ctx.outcome = "interrupted"  # still open as the process goes: cut short (SIGTERM to a web UI)
    if ctx.sink is not None and isinstance(environment.runner, MasterRunner):
        # Ctrl-C/SIGTERM: Locust fires quitting before it stops the runner (test_stop), so the workers'
        # last rows are collected here; a worker interrupted too sends them as it quits.
        scaleout.collect_last_rows(environment, ctx)
    finish_run(environment)
    environment.process_exit_code = exit_code(ctx.outcome or ctx.meta.get("outcome") or "completed")


def exit_code(outcome: str) -> int:
    """The process's exit code for a run's outcome (Locust's shutdown reads it after `quitting`)."""
    import locust.log

    code = EXIT_CODES[outcome]
    return INTERNAL_ERROR_EXIT if code == 0 and locust.log.unhandled_greenlet_exception else code


def finish_run(environment: Any) -> None:
    ctx = context.of(environment)
    if ctx.sink is None:
        return
    ctx.closing.fire(environment=environment)
    sink, ctx.sink = ctx.sink, None
    sink.close()
    if ctx.locust_csv is not None:
        ctx.locust_csv.finish()
        ctx.locust_csv = None
    if isinstance(environment.runner, MasterRunner):
        runner = environment.runner
        scaleout.mark_stale(
            ctx.per_worker, runner.clients, time.time(), locust.runners.WORKER_REPORT_INTERVAL
        )
        ctx.meta.update(scaleout.loss_summary(ctx.per_worker, sink.rows_written))
    else:
        started = ctx.buffer.started
        ctx.meta["requests_sent"] = started
        ctx.meta["rows_received"] = sink.rows_written
        ctx.meta["lost_rows"] = max(0, started - sink.rows_written)
    if ctx.meta.get("t_end_unix") is None:
        ctx.meta["t_end_unix"] = time.time()
    ctx.meta["outcome"] = ctx.outcome or "completed"
    write_meta(ctx)
    ctx.stages = []  # the next run (web UI) starts its own stage list
    log.info(
        "goodput: %d rows in %s — analyse with: %s",
        sink.rows_written,
        sink.path,
        analyse_command(ctx.run_dir),
    )


def write_meta(ctx: RunContext) -> None:
    ctx.meta["stages"] = ctx.stages_meta()
    if ctx.run_dir is not None:
        write_json(ctx.run_dir / "run.json", {k: v for k, v in ctx.meta.items() if not k.startswith("_")})
