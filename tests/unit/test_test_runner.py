"""`make test`'s runner (scripts/test.py) ends its output with each failed test's summary line.

Why: CI shows the tail of a log; with three pytest processes at once a failure's own lines have
long scrolled past by the end, and a submission once failed in CI with no test named in its tail.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("goodput_test_runner", ROOT / "scripts" / "test.py")
assert spec is not None and spec.loader is not None
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)

SUITE = """
import logging

def test_passes():
    assert True

def test_fails_with_a_log_and_a_name_so_long_that_pytest_drops_the_reason():
    logging.getLogger("x").error("a captured log line that is no summary")
    assert 1 == 2, "the reason"

def test_skipped():
    import pytest
    pytest.skip("not here")
"""


def test_only_the_short_summary_lines_of_failed_tests_are_kept(tmp_path: Path, capsys) -> None:
    (tmp_path / "test_sample.py").write_text(SUITE)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-ra",
        "-q",
        str(tmp_path),
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    failures: list[str] = []
    runner.relay(proc, "[3/3] ", failures)
    assert proc.wait() == 1
    relayed = capsys.readouterr().out
    assert "[3/3] ERROR    x:" in relayed, "the captured log line is relayed, and starts like a summary line"
    assert len(failures) == 1, failures
    assert failures[0].startswith("[3/3] FAILED ")
    assert (
        "test_fails_with_a_log_and_a_name_so_long_that_pytest_drops_the_reason" in failures[0]
        and "AssertionError: the reason" in failures[0]
    ), failures
