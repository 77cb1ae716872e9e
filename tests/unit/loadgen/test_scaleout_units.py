"""The master's per-worker bookkeeping (loadgen/run/scaleout.py) on hand-made reports and worker states."""

from __future__ import annotations

from dataclasses import dataclass

from locust.runners import STATE_MISSING, STATE_RUNNING

from core.record import COLUMNS
from loadgen.run.scaleout import loss_summary, mark_missing, mark_stale, note_report
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
