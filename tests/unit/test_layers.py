"""The house's plan is checked by import-linter (contracts in pyproject.toml), not by hand.

`lint-imports` passes on the tree as it is, and fails — naming the contract — when a forbidden
import is added: here to a copy of the packages, so the checkout is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT

PACKAGES = ("goodput", "core", "workloads", "shapes", "loadgen", "users", "analysis", "arena", "simserver")
LINT = str(Path(PYTHON).with_name("lint-imports"))


def lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def copy_tree(dst: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_contracts_hold_on_the_tree() -> None:
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("core/stage.py", "import pandas", "core/ is the contract"),
        ("shapes/step.py", "import loadgen.context", "Layers of the load path"),
        ("loadgen/transport/client.py", "from analysis import metrics", "never imports the analysis"),
        ("loadgen/state/rows.py", "from loadgen.run import lifecycle", "Inside loadgen"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_tree(tmp_path)
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    res = lint(tree)
    assert res.returncode != 0
    assert contract in res.stdout and "BROKEN" in res.stdout
