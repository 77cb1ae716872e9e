"""The leaderboard's store: `<results>/arena.sqlite`, one row per configuration × dataset × shape × SLO.

The leaderboard accumulates across matrices (arena-style): each matrix upserts its entries, keyed
by (matrix, configuration, dataset, shape, SLO) so a resumed or re-run matrix replaces its own
rows instead of piling up duplicates. Each row carries the date, the hardware, the model and the
engine, because a ranking is only meaningful with those beside it. sqlite3 is in the standard
library and a single file is easy to copy between machines.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

COLUMNS = {
    "matrix": "TEXT NOT NULL",
    "config": "TEXT NOT NULL",
    "dataset": "TEXT NOT NULL",
    "shape": "TEXT NOT NULL",
    "slo": "TEXT NOT NULL",
    "shape_args": "TEXT",
    "slo_text": "TEXT",
    "date": "TEXT",
    "engine": "TEXT",
    "params": "TEXT",
    "target": "TEXT",
    "model": "TEXT",
    "hardware": "TEXT",
    "cpu": "TEXT",
    "cores": "INTEGER",
    "gpu": "TEXT",
    "runs": "INTEGER",
    "capacity": "REAL",
    "capacity_unit": "TEXT",
    "capacity_lower_bound": "INTEGER",
    "capacity_runs": "TEXT",
    "goodput": "REAL",
    "attainment": "REAL",
    "req_per_s": "REAL",
    "output_tok_per_s": "REAL",
    "latency_p95_s": "REAL",
    "ttft_p95_s": "REAL",
    "tpot_p95_s": "REAL",
    "ttfo_p50_s": "REAL",
    "ttfo_p95_s": "REAL",
    "reasoning_tokens": "REAL",
    "run_dirs": "TEXT",
    "position": "INTEGER",
    "pareto": "TEXT",  # the configuration's levels for the cell's Pareto view (arena/mixview.py)
    "interference": "TEXT",  # a mix's classes in the mix vs alone
    # 95 % intervals (analysis/intervals.py; repeats merged): what the ranking separates on
    "capacity_low": "REAL",
    "capacity_high": "REAL",
    "goodput_low": "REAL",
    "goodput_high": "REAL",
    "attainment_low": "REAL",
    "attainment_high": "REAL",
}
KEY = ("matrix", "config", "dataset", "shape", "slo")


class StoreError(Exception):
    """The store cannot be read or written: one line naming the file."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _gpus() -> str:
    """GPU names from nvidia-smi, or "none" (no tool, no GPU, or it fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "none"
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "none"
    names = [x.strip() for x in out.stdout.splitlines() if x.strip()] if out.returncode == 0 else []
    if not names:
        return "none"
    return ", ".join(f"{names.count(n)}× {n}" for n in dict.fromkeys(names))


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def hardware() -> dict[str, Any]:
    """This machine, as the leaderboard shows it beside each entry."""
    cpu, cores, gpu, mem = _cpu_model(), os.cpu_count() or 0, _gpus(), _memory_gib()
    text = f"{cpu}, {cores} cores" + (f", {mem:.0f} GiB" if mem else "") + f", GPU {gpu}"
    return {"cpu": cpu, "cores": cores, "gpu": gpu, "hardware": text}


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30)
        cols = ", ".join(f"{k} {t}" for k, t in COLUMNS.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS entries ({cols}, PRIMARY KEY ({', '.join(KEY)}))")
        have = {r[1] for r in con.execute("PRAGMA table_info(entries)")}
        for k, t in COLUMNS.items():  # a store written by an older version gains the new columns
            if k not in have:
                con.execute(f"ALTER TABLE entries ADD COLUMN {k} {t.replace(' NOT NULL', '')}")
        return con
    except (sqlite3.Error, OSError) as e:
        raise StoreError(f"{path}: cannot open the leaderboard store ({e})") from None


def upsert(path: Path, entries: list[dict[str, Any]], replace_matrix: str | None = None) -> None:
    """Insert or replace `entries` (dicts with COLUMNS keys; lists/dicts are stored as JSON).

    With `replace_matrix`, that matrix's earlier entries go first (in the same transaction): the
    matrix as last run is the authority on its own entries, so a renamed or removed configuration
    does not linger in the leaderboard.
    """
    con = _connect(path)
    try:
        with con:
            if replace_matrix is not None:
                con.execute("DELETE FROM entries WHERE matrix = ?", (replace_matrix,))
            for i, e in enumerate(entries):
                e = {"position": i, **e}
                row = {
                    k: json.dumps(v) if isinstance(v, list | dict) else v
                    for k, v in e.items()
                    if k in COLUMNS
                }
                keys = list(row)
                con.execute(
                    f"INSERT OR REPLACE INTO entries ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})",
                    [row[k] for k in keys],
                )
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot write the leaderboard store ({e})") from None
    finally:
        con.close()


def entries(path: Path, matrix: str | None = None) -> list[dict[str, Any]]:
    """Every stored entry (or one matrix's), JSON columns decoded."""
    if not path.is_file():
        return []
    con = _connect(path)
    con.row_factory = sqlite3.Row
    try:
        sql = (
            "SELECT * FROM entries"
            + (" WHERE matrix = ?" if matrix else "")
            + " ORDER BY matrix, position, config"
        )
        rows = [dict(r) for r in con.execute(sql, (matrix,) if matrix else ())]
    except sqlite3.Error as e:
        raise StoreError(f"{path}: cannot read the leaderboard store ({e})") from None
    finally:
        con.close()
    for r in rows:
        for k in ("params", "run_dirs", "capacity_runs", "pareto"):
            try:
                r[k] = json.loads(r[k]) if r.get(k) else None
            except ValueError:
                r[k] = None
    return rows
