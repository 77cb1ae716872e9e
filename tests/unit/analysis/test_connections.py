"""Requests that paid a connect in their TTFT (analysis/connections.py): a new connection after the
same user's completed answer is the server (or a proxy) closing a kept-alive one; each user's first
request, a request after a failure and a row that does not say are not; the report's line comes
from NOTICE_SHARE of the measured requests, and the whole run folder says it."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.api import analyze, load_run
from analysis.connections import NOTICE_SHARE, reconnect_warnings, reopened
from core.slo import PROFILES

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def rows(*spec: tuple[str, int, float, bool, bool | None]) -> pd.DataFrame:
    """(worker, user, t_start_unix, ok, new_connection) per row, in any order."""
    w, u, t, ok, new = zip(*spec, strict=True)
    return pd.DataFrame({"worker": pd.Categorical(w), "user": np.array(u, dtype=float),
                         "t_start_unix": t, "ok": ok, "new_connection": list(new)})  # fmt: skip


def test_a_new_connection_after_a_completed_answer_is_a_reopening() -> None:
    df = rows(
        ("w1", 1, 3.0, True, True),  # after its user's completed answer at 2.0: reopened
        ("w1", 1, 1.0, True, True),  # the user's first request: its connection is new by nature
        ("w1", 1, 2.0, True, False),
        ("w2", 1, 1.5, True, True),  # the same user number on another worker is another user
        ("w1", 2, 1.0, False, True),
        ("w1", 2, 2.0, True, True),  # after a failed request: the client dropped that connection itself
        ("w1", 2, 3.0, True, None),  # not said (a run before the column)
        ("w1", 2, 4.0, True, True),  # after a row that could not tell but completed: reopened
    )
    assert reopened(df).tolist() == [True, False, False, False, False, False, False, True]


def test_runs_without_the_column_or_without_new_connections_have_none() -> None:
    df = rows(("w1", 1, 1.0, True, True), ("w1", 1, 2.0, True, False))
    assert not reopened(df.drop(columns="new_connection")).any()
    assert not reopened(df).any()
    assert reconnect_warnings(df.drop(columns="new_connection"), np.ones(2, dtype=bool)) == []


def test_the_line_names_the_measured_share_from_its_threshold() -> None:
    n = 200
    spec = [("w1", 1, float(i), True, i in (0, 50, 150)) for i in range(n)]  # 2 reopenings
    df = rows(*spec)
    measured = np.ones(n, dtype=bool)
    (line,) = reconnect_warnings(df, measured)
    assert line.startswith("2 of 200 measured requests (1%) opened a new connection")
    measured[100:] = False  # one reopening among 100 measured: 1 % is still said
    assert reconnect_warnings(df, measured)[0].startswith("1 of 100 measured")
    assert NOTICE_SHARE > 1 / 101
    measured[:] = False
    measured[49:150] = True  # 1 of 101: below the share
    assert reconnect_warnings(df, measured) == []


def test_the_run_folder_says_it(tmp_path: Path) -> None:
    """requests.csv's new_connection column read by the analysis (true / false / empty) into the report's line."""
    d = tmp_path / "run"
    shutil.copytree(FIX / "run_small", d)
    with open(d / "requests.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    at = rows[0].index("new_connection")
    for i, row in enumerate(rows[1:]):
        row[at] = "true" if i % 2 else "false"
    with open(d / "requests.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    run = load_run(d)
    assert set(run.df["new_connection"].dropna()) == {True, False}
    warnings = analyze(run, PROFILES["chat"]).summary.warnings
    said = [w for w in warnings if "opened a new connection" in w]
    assert len(said) == 1 and " measured requests (" in said[0], warnings
