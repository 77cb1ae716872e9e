"""The master's per-worker bookkeeping (loadgen/run/scaleout.py) on hand-made reports and worker states."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import gevent
from gevent import GreenletExit
from locust import User, constant, task
from locust.env import Environment
from locust.runners import STATE_MISSING, STATE_RUNNING

from core.record import COLUMNS
from loadgen.run.scaleout import (
    final_report,
    loss_summary,
    mark_missing,
    mark_stale,
    note_report,
    wait_for_workers,
)
from loadgen.transport.ids import RequestIds


@dataclass
class Node:
    state: str


def row(worker: str, request_id: str) -> list[str]:
    r = [""] * len(COLUMNS)
    r[COLUMNS.index("worker")] = worker
    r[COLUMNS.index("request_id")] = request_id
    return r


def test_reports_accumulate_rows_and_keep_the_latest_started_count() -> None:
    pw: dict = {}
    ids = RequestIds(mark=0x9C1F0A2B3C4D)
    note_report(pw, "c1", {"rows": [row("host-1", ids.next())], "started": 3}, now=10.0)
    note_report(pw, "c1", {"rows": [row("host-1", ids.next())] * 2, "started": 4}, now=11.0)
    note_report(pw, "c1", {"rows": [], "started": 4}, now=12.0)
    w = pw["c1"]
    assert (w["started"], w["rows"], w["last_report_unix"]) == (4, 3, 12.0)
    assert w["worker"] == "host-1" and w["request_id_suffix"] == "-9c1f0a2b3c4d"


def test_last_report_is_the_workers_instant_not_the_masters_receipt() -> None:
    """A master behind on its messages receives a report late; the requests the worker started
    after taking that report's rows are the ones it is missing, so the worker's instant is kept."""
    pw: dict = {}
    note_report(pw, "c1", {"rows": [], "started": 2, "taken_unix": 9.4}, now=10.0)
    assert pw["c1"]["last_report_unix"] == 9.4


def test_missing_is_copied_from_locust_and_undone_by_a_report() -> None:
    pw: dict = {}
    clients = {"a": Node(STATE_RUNNING), "b": Node(STATE_MISSING)}
    assert mark_missing(pw, clients, now=5.0) == ["b"]
    assert mark_missing(pw, clients, now=6.0) == [], "said once"
    assert pw["b"]["missing"] and pw["b"]["missing_since_unix"] == 5.0 and not pw["a"]["missing"]
    note_report(pw, "b", {"rows": [], "started": 0}, now=7.0)  # self-healed
    assert not pw["b"]["missing"] and pw["b"]["missing_since_unix"] is None


def test_a_worker_silent_at_the_close_and_not_healthy_counts_as_missing() -> None:
    pw: dict = {}
    for cid, last in (("quit-normally", 99.5), ("died-late", 95.0), ("healthy-slow", 95.0)):
        note_report(pw, cid, {"rows": [], "started": 1}, now=last)
    mark_stale(pw, {"healthy-slow": Node(STATE_RUNNING)}, now=100.0, interval_s=1.0)
    assert [c for c, w in pw.items() if w["missing"]] == ["died-late"]
    assert pw["died-late"]["missing_since_unix"] == 95.0


def test_loss_summary_per_worker_and_in_total() -> None:
    pw: dict = {}
    note_report(pw, "a", {"rows": [row("h-1", "aa-1")] * 5, "started": 5}, now=1.0)
    note_report(pw, "b", {"rows": [row("h-2", "bb-1")] * 3, "started": 7}, now=1.0)
    pw["b"]["missing"] = True
    out = loss_summary(pw, rows_received=8)
    assert (out["requests_sent"], out["rows_received"], out["lost_rows"]) == (12, 8, 4)
    assert out["missing_workers"] == ["b"]
    assert out["per_worker"]["a"]["lost_rows"] == 0 and out["per_worker"]["b"]["lost_rows"] == 4


def test_the_final_report_waits_for_users_that_another_stop_is_still_ending() -> None:
    """Ctrl-C on `--processes` reaches a worker together with its master's stop and flush messages:
    the worker's stops overlap, and one that finds its users already being killed returns at once.
    Its report must still carry every user's last row (a CI run lost all of one worker's in-flight
    requests when it did not)."""
    rows: list[int] = []

    class Streaming(User):
        wait_time = constant(0)

        @task
        def request(self) -> None:
            try:
                gevent.sleep(60)  # a request in flight
            except GreenletExit:
                gevent.sleep(0.05)  # the row is written on the way out, a moment after the kill
                rows.append(1)
                raise

    runner = Environment(user_classes=[Streaming]).create_local_runner()
    reported: list[int] = []
    runner._send_stats = lambda: reported.append(len(rows))  # what a worker's report would carry
    runner.start(3, spawn_rate=100, wait=False)
    deadline = time.monotonic() + 5
    while runner.user_count < 3:
        assert time.monotonic() < deadline, "users did not start"
        gevent.sleep(0.01)
    gevent.sleep(0.05)  # each in its request
    for g in list(runner.user_greenlets):  # a stop already under way elsewhere
        runner.user_greenlets.killone(g, block=False)
    final_report(runner)
    assert reported == [3]


def test_the_first_stage_waits_until_every_connected_worker_can_take_goodputs_messages() -> None:
    """Locust counts a worker ready when it connects, before its `init` registered Goodput's message
    handlers: a stage sent in between was dropped and that worker sat out the first stage."""
    clients = {"a": Node(STATE_RUNNING), "b": Node(STATE_RUNNING), "gone": Node(STATE_MISSING)}
    runner = SimpleNamespace(clients=clients)
    ready = {"a"}
    gevent.spawn_later(0.2, ready.add, "b")  # b's init registers its handlers a moment later
    t0 = time.monotonic()
    assert wait_for_workers(runner, ready, timeout_s=5.0) == []
    assert "b" in ready and time.monotonic() - t0 < 4.0
    clients["old"] = Node(STATE_RUNNING)  # never says READY (an older Goodput): named, not waited for ever
    t0 = time.monotonic()
    assert wait_for_workers(runner, ready, timeout_s=0.3) == ["old"]
    assert time.monotonic() - t0 >= 0.3
