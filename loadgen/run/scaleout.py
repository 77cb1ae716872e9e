"""Distributed runs without silent loss: what each worker sent, who went missing, what was lost.

Rows ride on Locust's worker reports, so a worker that dies (SIGKILL, OOM, a lost node) takes with
it only the rows it had not reported yet: at most one report interval. Locust notices the death by
missed heartbeats (~4 s) and keeps everything already received; this module makes that loss
visible. Each worker's last report says how many requests it had started; the rows that arrived
from it are counted; the difference is written to run.json per worker, with the dead worker
marked, so a run that lost a worker is still analysable and says exactly how incomplete it is.
Requests a dead worker started after its last report are unknown to the master; `last_report_unix`
and `request_id_suffix` (the last group of every request id it sent) let them be found in the
server's own request log (X-Request-Id).

Stopping on purpose loses nothing: at the end of a run the master asks every live worker for its
last rows and waits for them (Locust alone allows 0.5 s); a worker that is interrupted itself
(Ctrl-C on `--processes`) stops its users and sends its rows before it says goodbye; Ctrl-C and,
during a headless run, SIGTERM reach only the main greenlet, so no request or report is cut short.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

import gevent
import locust.runners
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from core.record import COLUMNS
from loadgen import context, messages
from loadgen.context import RunContext
from loadgen.transport.ids import worker_mark

log = logging.getLogger("goodput")

_WORKER = COLUMNS.index("worker")
_REQUEST_ID = COLUMNS.index("request_id")
FLUSH_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 10.0  # a connected worker registers its handlers within milliseconds
USERS_GONE_TIMEOUT_S = 2.0  # a stopped user writes its row as the kill reaches it: milliseconds
# A worker whose last report is older than this when the run closes, and which Locust does not list
# as healthy, died too close to the end for the heartbeat check (~4 s) to have caught it.
STALE_REPORTS = 3


def new_entry() -> dict:
    return {
        "worker": "",
        "request_id_suffix": "",
        "started": 0,
        "rows": 0,
        "lost_rows": 0,
        "last_report_unix": None,
        "missing": False,
        "missing_since_unix": None,
    }


def note_report(per_worker: dict[str, dict], client_id: str, payload: dict, now: float) -> None:
    """One worker report arrived (called from the master's worker_report listener)."""
    w = per_worker.setdefault(client_id, new_entry())
    rows = payload.get("rows") or []
    w["started"] = int(payload.get("started", 0))
    w["rows"] += len(rows)
    # the worker's own instant, not this receipt's: a master behind on its messages would stamp a
    # report late and leave out of "sent after the last report" requests that are in that window
    w["last_report_unix"] = payload.get("taken_unix", now)
    if rows and not w["worker"]:
        w["worker"] = rows[0][_WORKER]
        w["request_id_suffix"] = worker_mark(rows[0][_REQUEST_ID])
    if w["missing"]:  # Locust also lets a worker "self-heal": its reports are proof of life
        log.warning("goodput: worker %s is back (reporting again)", client_id)
        w["missing"], w["missing_since_unix"] = False, None


def mark_missing(per_worker: dict[str, dict], clients: Any, now: float) -> list[str]:
    """Copy Locust's heartbeat verdict into the run's bookkeeping; returns the newly missing ids."""
    newly = []
    for cid, node in list(clients.items()) if hasattr(clients, "items") else []:
        w = per_worker.setdefault(cid, new_entry())
        if node.state == STATE_MISSING and not w["missing"]:
            w["missing"], w["missing_since_unix"] = True, now
            newly.append(cid)
    return newly


def live_workers(clients: Any) -> set[str]:
    """The ids of the workers Locust does not count as missing (`runner.clients`)."""
    items = list(clients.items()) if hasattr(clients, "items") else []
    return {cid for cid, node in items if node.state != STATE_MISSING}


def mark_stale(per_worker: dict[str, dict], clients: Any, now: float, interval_s: float) -> None:
    """At the close: a worker silent for several report intervals and not healthy in Locust's list is lost."""
    healthy = live_workers(clients)
    limit = STALE_REPORTS * interval_s
    for cid, w in per_worker.items():
        last = w["last_report_unix"]
        if not w["missing"] and cid not in healthy and last is not None and now - last > limit:
            w["missing"], w["missing_since_unix"] = True, last


def loss_summary(per_worker: dict[str, dict], rows_received: int) -> dict:
    """run.json fields: requests_sent, rows_received, lost_rows, missing_workers, per_worker."""
    for w in per_worker.values():
        w["lost_rows"] = max(0, w["started"] - w["rows"])
    sent = sum(w["started"] for w in per_worker.values())
    return {
        "requests_sent": sent,
        "rows_received": rows_received,
        "lost_rows": max(0, sent - rows_received),
        "missing_workers": sorted(cid for cid, w in per_worker.items() if w["missing"]),
        "report_interval_s": locust.runners.WORKER_REPORT_INTERVAL,
        "per_worker": per_worker,
    }


def install(events: Any) -> None:
    """Master: watch the workers' heartbeats while a run is open (the lifecycle collects their last
    rows at the end). Worker: ship the last rows on request and on quit. Both: signals."""
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)


def _on_init(environment: Any, runner: Any, **_: Any) -> None:
    # Ctrl-C raises KeyboardInterrupt in whichever greenlet runs at that instant: a user mid-request
    # (its row lost) or Locust's message receiver (the workers' last reports lost). Raised from a
    # signal greenlet instead, gevent hands it to the main greenlet only, where Locust expects it.
    gevent.signal_handler(signal.SIGINT, _interrupt, context.find(environment))
    if isinstance(runner, WorkerRunner):
        # Added now, after Locust's own quitting listener; quitting fires in reverse order, so this
        # runs before the worker tells the master it quits, and its rows arrive first.
        environment.events.quitting.add_listener(lambda **__: final_report(runner))
        runner.register_message(messages.FLUSH, lambda **__: _flush(runner))
        # The plugins that handle the master's messages (lifecycle, stages, this one) have
        # registered them by now: tell the master it may send them (and again when it asks).
        runner.register_message(messages.ASK_READY, lambda **__: runner.send_message(messages.READY, None))
        runner.send_message(messages.READY, None)
        return
    ctx = context.of(environment)
    if isinstance(runner, MasterRunner):
        runner.register_message(messages.FLUSHED, lambda environment, msg, **__: ctx.flushed.add(msg.node_id))
        runner.register_message(
            messages.READY, lambda environment, msg, **__: ctx.ready_workers.add(msg.node_id)
        )
        runner.send_message(messages.ASK_READY, None)  # to the workers that connected before this init
    if getattr(environment.parsed_options, "headless", False):
        # A headless run with a shape (Goodput always has one) blocks Locust's main() until the
        # shape ends, and Locust installs its SIGTERM handler only after that: a SIGTERM (docker
        # stop, a Kubernetes pod deleted) would kill the master with the run folder open. Until
        # then SIGTERM does what Ctrl-C does: stop, collect the workers' last rows, close run.json.
        ctx.sigterm_interrupts = True
        gevent.signal_handler(signal.SIGTERM, _interrupt_until_stopped, ctx)


def _interrupt(ctx: RunContext | None = None) -> None:
    """KeyboardInterrupt in the main greenlet (as gevent does for errors it cannot handle)."""
    if ctx is not None and not ctx.outcome:
        ctx.outcome = "interrupted"  # run.json's outcome
    hub = gevent.get_hub()
    hub.loop.run_callback(hub.parent.throw, KeyboardInterrupt)


def _interrupt_until_stopped(ctx: RunContext) -> None:
    """SIGTERM during a headless run; afterwards Locust's own SIGTERM handler is in place."""
    if ctx.sigterm_interrupts:
        ctx.sigterm_interrupts = False
        _interrupt(ctx)


def final_report(runner: Any) -> None:
    """Worker shutting down (Ctrl-C, SIGTERM, the master's quit): end the users, send what is left.

    Stopping the users turns in-flight requests into `cancelled` rows; without this a worker
    interrupted together with its master (Ctrl-C on `--processes`) dropped its last second of rows.

    The users must be gone before the report, not just asked to go: the master's stop message, its
    flush request and the worker's own Ctrl-C can overlap, and a stop that finds a user already being
    killed by another returns at once (gevent's `Group.killone` skips a dying greenlet), before that
    user wrote its row. Such a report left out every in-flight request of the worker (a CI run lost
    all three of one worker's requests so).
    """
    try:
        runner.stop()
        if not runner.user_greenlets.join(timeout=USERS_GONE_TIMEOUT_S):
            log.warning("goodput: users still running %gs after the stop", USERS_GONE_TIMEOUT_S)
        runner._send_stats()  # the same call Locust makes on the master's quit message
    except Exception as e:  # the master may be gone already: nothing else to do, but say so
        log.warning("goodput: the last rows were not sent to the master: %s", e)


def _flush(runner: Any) -> None:
    final_report(runner)
    runner.send_message(messages.FLUSHED, None)  # after the report on the same socket: it arrives after


def collect_last_rows(environment: Any, ctx: RunContext, timeout_s: float = FLUSH_TIMEOUT_S) -> list[str]:
    """Master, run over: ask every live worker for its last rows and wait until they arrived.

    Locust's own quit gives the workers' final reports 0.5 s, which a busy host misses; a worker
    that quits or goes missing meanwhile is not waited for. Returns the workers that did not answer.
    """
    runner = environment.runner
    flushed = ctx.flushed
    flushed.clear()

    pending = live_workers(runner.clients)
    for cid in pending:
        runner.send_message(messages.FLUSH, None, client_id=cid)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        gevent.sleep(0.02)
        pending = (pending & live_workers(runner.clients)) - flushed
    return sorted(pending)


def wait_for_workers(runner: Any, ready: set[str], timeout_s: float = READY_TIMEOUT_S) -> list[str]:
    """Master, before the first stage is announced: until every connected worker said `READY`.

    Locust starts a headless run as soon as the expected workers have connected, and a worker
    connects before its `init` listeners register Goodput's message handlers: a stage or the run's
    settings sent in between is dropped by the worker ("Unknown message type"), and that worker then
    sat out the whole first stage (seen in the suite: an open-loop worker sent nothing for 4 s).
    Returns the workers that did not answer in time (an older Goodput; the run goes on without waiting).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        waiting = sorted(live_workers(runner.clients) - ready)
        if not waiting or time.monotonic() >= deadline:
            return waiting
        gevent.sleep(0.01)


def _on_test_start(environment: Any, **_: Any) -> None:
    ctx = context.find(environment)
    if not isinstance(environment.runner, MasterRunner) or ctx is None or ctx.sink is None:
        return
    if ctx.watcher is not None:
        ctx.watcher.kill(block=False)
    ctx.watcher = gevent.spawn(_watch, environment, ctx)


def _on_test_stop(environment: Any, **_: Any) -> None:
    ctx = context.find(environment)
    if ctx is None:
        return
    ctx.sigterm_interrupts = False  # the run is over: Locust's SIGTERM handling takes over
    if ctx.watcher is not None:
        # keep watching until the run folder is closed: a worker may die during the final reports
        gevent.spawn_later(FLUSH_TIMEOUT_S, ctx.watcher.kill, block=False)


def _watch(environment: Any, ctx: RunContext) -> None:
    """Each heartbeat interval: note workers Locust declared missing, and say so once, live."""
    while True:
        gevent.sleep(locust.runners.HEARTBEAT_INTERVAL)
        if ctx.sink is None:
            return
        for cid in mark_missing(ctx.per_worker, environment.runner.clients, time.time()):
            w = ctx.per_worker[cid]
            log.warning(
                "goodput: worker %s (%s) stopped sending heartbeats: rows it had not reported "
                "(at most ~%.0f s) are lost; the run goes on with the other workers; run.json "
                "will show the loss under per_worker",
                cid,
                w["worker"] or "no rows yet",
                locust.runners.WORKER_REPORT_INTERVAL,
            )
