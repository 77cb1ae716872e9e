"""Loading run folders: the contract's columns, and one clear line for every kind of bad input."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import pytest

from analysis.load import FLOAT_COLS, INT_COLS, REQUIRED, TEXT_COLS, AnalysisError, load_run

ROOT = Path(__file__).resolve().parents[3]
FIX = Path(__file__).resolve().parents[2] / "fixtures"
HEADER = (FIX / "run_small" / "requests.csv").read_text().splitlines()[0]


def test_reads_the_contract_columns() -> None:
    """analysis may not import the load path, so its column names are checked against core/record.py here."""
    from core.record import COLUMNS

    assert HEADER.split(",") == list(COLUMNS)
    spec = importlib.util.spec_from_file_location("bench_analysis_1m", ROOT / "bench" / "analysis_1m.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.COLUMNS == COLUMNS  # the 1M-row generator writes the contract too
    read = {*REQUIRED, *FLOAT_COLS, *TEXT_COLS, *INT_COLS, "itl_s", "ok"}
    assert read <= set(COLUMNS), read - set(COLUMNS)


def test_analysis_never_imports_the_load_path() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+(users|shapes|locustfile|workloads|locust|gevent)\b", re.M)
    offenders = [p.name for p in (ROOT / "analysis").glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_dtypes_and_marks() -> None:
    run = load_run(FIX / "run_small")
    df = run.df
    assert len(df) == 10 and run.itl.length() == 10
    assert str(df["step"].dtype) == "int64" and str(df["ok"].dtype) == "bool"
    assert df["ttft_s"].dtype.kind == "f" and df["ttft_s"].isna().sum() == 2
    assert df["in_run_stats"].all() and df["in_step_stats"].all()
    assert run.name == "small" and run.warnings == []


def _run(tmp_path: Path, csv_text: str | bytes, meta: str | None = None) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    p = d / "requests.csv"
    p.write_bytes(csv_text if isinstance(csv_text, bytes) else csv_text.encode())
    if meta is not None:
        (d / "run.json").write_text(meta)
    return d


def _rows(n: int | None = None) -> list[str]:
    return (FIX / "run_small" / "requests.csv").read_text().splitlines()[: None if n is None else n + 1]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda t: t / "nope", "no such run folder"),
        (lambda t: (t / "file.txt").write_text("x") and t / "file.txt", "not a folder"),
        (lambda t: (t / "empty").mkdir() or t / "empty", "no requests.csv here"),
        (lambda t: _run(t, ""), "empty file (no header row)"),
        (lambda t: _run(t, HEADER + "\n"), "the run has no requests"),
        (lambda t: _run(t, "a,b,c\n1,2,3\n"), "missing column(s) step, target_users"),
        (lambda t: _run(t, HEADER.replace(",itl_s", "") + "\n"), "missing column(s) itl_s"),
        (lambda t: _run(t, b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage"), "requests.csv"),
        (
            lambda t: _run(t, "\n".join([*_rows(3), "broken,row", *_rows()[4:]]) + "\n"),
            f"corrupt CSV at line 5: expected {len(HEADER.split(','))} fields, got 2",
        ),
        (
            lambda t: _run(t, "\n".join(_rows()).replace("0.400000,4.000000", "0.400000,fast") + "\n"),
            "corrupt CSV",
        ),
        (
            lambda t: _run(t, "\n".join(_rows()).replace(",1767225603.000000,", ",,") + "\n"),
            "empty 't_start_unix' at line 4",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, make, needle: str) -> None:
    path = make(tmp_path)
    with pytest.raises(AnalysisError) as e:
        load_run(path)
    msg = str(e.value)
    assert needle in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "tail",
    [
        "small,w1,2,,0,small-0011,chat,chat,1,2,,17672256",  # cut mid-row: too few fields
        "small,w1,2,,0,small-0011,chat,chat,1,2,,1767225609.5,0.1,0.2,,,1,5,1,0,usage,tru",  # cut mid-value
    ],
)
def test_truncated_last_line_is_a_warning(tmp_path: Path, tail: str) -> None:
    """A crash mid-write loses at most the last row; the rest still analyzes."""
    run = load_run(_run(tmp_path, "\n".join(_rows()) + "\n" + tail))
    assert len(run.df) == 10
    assert any("truncated last line (line 12" in w for w in run.warnings), run.warnings


def test_unreadable_run_json_is_a_warning(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path, "\n".join(_rows()) + "\n", meta="{not json"))
    assert run.meta == {} and any("run.json: unreadable" in w for w in run.warnings)
    assert run.name == "run"


def test_lost_rows_are_flagged(tmp_path: Path) -> None:
    d = tmp_path / "r"
    shutil.copytree(FIX / "run_small", d)
    meta = (d / "run.json").read_text().replace('"lost_rows": 0', '"lost_rows": 3')
    (d / "run.json").write_text(meta)
    run = load_run(d)
    assert any("3 request rows were lost" in w for w in run.warnings)


def test_missing_optional_columns_are_tolerated(tmp_path: Path) -> None:
    """An older writer without t_scheduled_unix / cached_tokens still analyzes."""
    cols = HEADER.split(",")
    drop = [cols.index("t_scheduled_unix"), cols.index("cached_tokens")]
    lines = []
    for line in _rows():
        import csv

        cells = next(csv.reader([line]))
        lines.append(",".join(f'"{c}"' if "," in c else c for i, c in enumerate(cells) if i not in drop))
    run = load_run(_run(tmp_path, "\n".join(lines) + "\n"))
    assert run.df["t_scheduled_unix"].isna().all() and len(run.df) == 10
