"""Wiring: Goodput's listeners on Locust's events, the same locally and distributed.

init        validate options and the target (one clear line, no traceback), build the RunContext
test_start  master/local: open the run folder and the CSV sink; tell each worker its slice
report      worker → master: rows, counts and live stats travel with Locust's worker reports
test_stop   master/local: close the run after the workers' last rows arrived
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import gevent
import locust
import locust.runners
from locust.runners import MasterRunner, WorkerRunner

from analysis.slo import SloError, parse_slo
from shapes import build_schedule, open_loop
from shapes.base import STAGE_MESSAGE, on_stage_message
from users import target
from users.context import RunContext
from users.livestats import print_loop
from users.options import OptionError, parse_duration_s, request_id_header
from users.runfolder import check_results_dir, create_run_dir, git_commit, safe_url, write_json
from users.scaleout import loss_summary, mark_stale, note_report
from users.sink import CsvSink

log = logging.getLogger("goodput")
RUN_MESSAGE = "goodput_run"
# Rows ride on worker reports: report every second so requests.csv is never more than ~2 s behind.
locust.runners.WORKER_REPORT_INTERVAL = 1.0


def fail(message: str) -> None:
    """A user mistake: one line on stderr, non-zero exit, no traceback."""
    sys.stderr.write(f"goodput: error: {message}\n")
    sys.stderr.flush()
    sys.exit(2)


_USER_CLASSES: dict[str, type] = {}  # --user name → class, for runs started from the web UI form


def install(events: Any, user_classes: dict[str, type]) -> None:
    _USER_CLASSES.update(user_classes)

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        on_init(environment, runner, user_classes)

    events.test_start.add_listener(on_test_start)
    events.test_stop.add_listener(on_test_stop)
    events.quitting.add_listener(on_quitting)


def validate(environment: Any, check_target: bool) -> tuple[Any, str]:
    """Command line: a mistake ends the process with one line."""
    try:
        return check_options(environment, check_target)
    except (SloError, OptionError, target.TargetError) as e:
        fail(str(e))
        raise  # unreachable


def check_options(environment: Any, check_target: bool) -> tuple[Any, str]:
    """Everything a user can get wrong, checked before any run folder exists (CLI and web form alike)."""
    opts = environment.parsed_options
    target.check_credentials(environment.host or "", opts.api_key_env)
    try:
        slo = parse_slo(opts.slo)
    except SloError as e:
        raise OptionError(f"--slo: {e}") from None
    if parse_duration_s(opts.request_timeout, "--request-timeout") <= 0:
        raise OptionError(f"--request-timeout: '{opts.request_timeout}' must be positive")
    if parse_duration_s(opts.step_duration, "--step-duration") <= 0:
        raise OptionError(f"--step-duration: '{opts.step_duration}' must be positive")
    parse_duration_s(opts.think_time, "--think-time")
    request_id_header(opts.request_id_header)
    if opts.max_tokens <= 0:
        raise OptionError(f"--max-tokens: {opts.max_tokens} must be a positive number of tokens")
    for name, value, low in (("--step-users", opts.step_users, 1), ("--max-users", opts.max_users, 0)):
        if value < low:  # a 0-user ramp would "succeed" with no request at all
            raise OptionError(f"{name}: {value} must be ≥ {low}")
    build_schedule(opts)
    from workloads import WorkloadError, open_workload

    try:
        open_workload(opts.dataset, seed=opts.seed, order=opts.order)
    except WorkloadError as e:
        raise OptionError(f"--dataset: {e}") from None
    check_results_dir(opts.results_dir)  # last of the local checks: it may create the folder
    model = opts.model
    if check_target:
        model = target.check(environment.host, opts.model, opts.api_key_env)
    return slo, model


def choose_user_class(environment: Any, user_classes: dict[str, type]) -> None:
    """Run only the selected user class (Locust would otherwise mix all of them by weight)."""
    opts = environment.parsed_options
    name = opts.llm_user
    if name == "auto" and open_loop(opts):
        name = "rate"  # --rate, sweep, trace, rate stages: the open-loop user (users/rate.py)
    if name == "auto":
        from workloads import open_workload

        name = "agent" if open_workload(opts.dataset, seed=opts.seed).multi_turn else "chat"
        if name == "chat" and opts.endpoint == "completions":
            name = "completions"
    cls = user_classes[name]
    environment.user_classes = [cls]


def on_init(environment: Any, runner: Any, user_classes: dict[str, type]) -> None:
    is_worker = isinstance(runner, WorkerRunner)
    # Report listeners get no environment: bind it here.
    environment.events.report_to_master.add_listener(
        lambda client_id, data, **_: report_rows(environment, data)
    )
    environment.events.worker_report.add_listener(
        lambda client_id, data, **_: receive_rows(environment, client_id, data)
    )
    opts = environment.parsed_options
    if is_worker:
        environment.goodput = RunContext(environment, parse_slo("chat"), opts.model)
        runner.register_message(STAGE_MESSAGE, on_stage_message)
        runner.register_message(RUN_MESSAGE, on_run_message)
        return
    headless = bool(opts.headless)
    # Headless Locust later sets -u to 1 when it was not given; remember whether the user asked for it.
    opts.goodput_users_given = opts.num_users is not None
    if headless and not environment.host:
        fail("no target: pass --host http://HOST:PORT (an OpenAI-compatible server)")
    slo, model = validate(environment, check_target=headless)
    environment.goodput = RunContext(environment, slo, model)
    environment.goodput.meta["target_checked"] = headless
    choose_user_class(environment, user_classes)
    if headless:
        gevent.spawn(print_loop, environment.goodput.live, slo.name)


def on_run_message(environment: Any, msg: Any, **_: Any) -> None:
    """Worker: the master's run settings (model, slice of the workload) before users start."""
    ctx: RunContext = environment.goodput
    d = msg.data
    ctx.model = d["model"]
    ctx.worker_index, ctx.worker_count = d["worker_index"], d["worker_count"]


def on_test_start(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        refresh_worker(environment)
        return
    ctx: RunContext = environment.goodput
    opts = environment.parsed_options
    if not ctx.meta.get("target_checked"):  # web UI: host and options may have changed in the form
        try:
            ctx.slo, ctx.model = check_options(environment, check_target=True)
            choose_user_class(environment, _USER_CLASSES)  # keyed by --user name, not class name
            ctx.refused = ""
        except (SloError, target.TargetError, OptionError) as e:
            ctx.refused = str(e)  # users spawned for this start do nothing (users/chat.py on_start)
            if "@" in (environment.host or ""):  # refused credentials: the page must not keep showing them
                environment.host = opts.host = safe_url(environment.host)
            log.error("goodput: %s", e)
            gevent.spawn_later(0.1, runner.stop)
            return
    begin_run(environment)
    if isinstance(runner, MasterRunner):
        ids = sorted(c.id for c in runner.clients.ready + runner.clients.running + runner.clients.spawning)
        for i, cid in enumerate(ids):
            data = {"model": ctx.model, "worker_index": i, "worker_count": len(ids), "run_id": ctx.run_id}
            runner.send_message(RUN_MESSAGE, data, client_id=cid)


def refresh_worker(environment: Any) -> None:
    """Workers take the master's options (Locust copies them into parsed_options on spawn)."""
    ctx: RunContext = environment.goodput
    opts = environment.parsed_options
    fresh = RunContext(environment, parse_slo(opts.slo), ctx.model or opts.model)
    fresh.worker_index, fresh.worker_count = ctx.worker_index, ctx.worker_count
    fresh.stage, fresh.stages = ctx.stage, ctx.stages
    fresh.buffer = ctx.buffer
    fresh.buffer.started = len(fresh.buffer.rows)  # counted per run, as the master's per_worker is
    environment.goodput = fresh


def begin_run(environment: Any) -> None:
    ctx: RunContext = environment.goodput
    opts = environment.parsed_options
    if ctx.sink is not None:
        finish_run(environment)
    ctx.run_dir = create_run_dir(opts.results_dir, opts.run_name)
    ctx.run_id = ctx.run_dir.name
    ctx.sink = CsvSink(ctx.run_dir / "requests.csv", ctx.run_id)
    ctx.buffer.started = 0
    ctx.per_worker = {}
    ctx.live.reset()
    ctx.meta.update(
        run_id=ctx.run_id,
        name=opts.run_name,
        target=safe_url(environment.host or ""),
        model=ctx.model,
        user_class=environment.user_classes[0].__name__,
        transport=opts.client,
        dataset=opts.dataset,
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
    ctx.meta.setdefault("shape", {"name": opts.shape, "params": {}})
    ctx.meta["workload"] = ctx.workload().describe()
    write_json(ctx.run_dir / "run.json", ctx.meta)
    if not opts.csv_prefix:
        from users.locustcsv import start_locust_csv

        ctx.meta["_csv"] = start_locust_csv(environment, ctx.run_dir / "locust")
    log.info("goodput: run folder %s", ctx.run_dir)


def report_rows(env: Any, data: dict) -> None:
    ctx = getattr(env, "goodput", None)
    if ctx is None:
        return
    data["goodput"] = {"rows": ctx.buffer.take(), "started": ctx.buffer.started, "live": ctx.live.serialize()}


def receive_rows(env: Any, client_id: str, data: dict) -> None:
    payload = data.get("goodput")
    ctx = getattr(env, "goodput", None)  # reports can arrive while init is still validating
    if payload is None or ctx is None or ctx.sink is None:
        return
    ctx: RunContext = env.goodput
    ctx.sink.add_rows(payload["rows"])
    note_report(ctx.per_worker, client_id, payload, time.time())
    ctx.live.merge(payload["live"])


def on_test_stop(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    ctx: RunContext = environment.goodput
    if ctx.stages and ctx.stages[-1].t_end_unix is None:
        ctx.stages[-1].t_end_unix = time.time()
    ctx.meta["t_end_unix"] = time.time()
    if ctx.sink is not None:
        write_meta(ctx)
        # Workers send their last rows with their next report: close a little later (or on quit).
        gevent.spawn_later(3.0, finish_run, environment)


def on_quitting(environment: Any, **_: Any) -> None:
    if hasattr(environment, "goodput") and not isinstance(environment.runner, WorkerRunner):
        finish_run(environment)


def finish_run(environment: Any) -> None:
    ctx: RunContext = environment.goodput
    if ctx.sink is None:
        return
    sink, ctx.sink = ctx.sink, None
    sink.close()
    csv_writer = ctx.meta.pop("_csv", None)
    if csv_writer is not None:
        csv_writer.finish()
    if isinstance(environment.runner, MasterRunner):
        runner = environment.runner
        mark_stale(ctx.per_worker, runner.clients, time.time(), locust.runners.WORKER_REPORT_INTERVAL)
        ctx.meta.update(loss_summary(ctx.per_worker, sink.rows_written))
    else:
        started = ctx.buffer.started
        ctx.meta["requests_sent"] = started
        ctx.meta["rows_received"] = sink.rows_written
        ctx.meta["lost_rows"] = max(0, started - sink.rows_written)
    if ctx.meta.get("t_end_unix") is None:
        ctx.meta["t_end_unix"] = time.time()
    write_meta(ctx)
    ctx.stages = []  # the next run (web UI) starts its own stage list
    log.info(
        "goodput: %d rows in %s — analyse with: python -m analysis %s",
        sink.rows_written,
        sink.path,
        ctx.run_dir,
    )


def write_meta(ctx: RunContext) -> None:
    ctx.meta["stages"] = ctx.stages_meta()
    if ctx.run_dir is not None:
        write_json(ctx.run_dir / "run.json", {k: v for k, v in ctx.meta.items() if not k.startswith("_")})
