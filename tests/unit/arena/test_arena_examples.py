"""Every example matrix in examples/ parses, expands and dry-runs, and README says what it measured.

Why: the examples are what a user runs first and what README's measured tables came from; a key renamed
in the arena or an example edited by hand would otherwise be found by the next person who runs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arena.__main__ import main
from arena.matrix import load_matrix
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
REAL_ENGINE = ROOT / ".real-engine" / "venv" / "bin" / "python"


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 7, EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_dry_runs_every_cell_and_readme_names_it(path: Path, capsys) -> None:
    if "{root}/.real-engine/" in path.read_text() and not REAL_ENGINE.exists():
        pytest.skip("its engine is the CPU vLLM of `make real-engine` (not built here)")
    cells = load_matrix(path).cells()
    assert cells, f"{path.name}: no cells"
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("    load:   ") == len(cells), f"{path.name}: one load command a cell"
    assert f"examples/{path.name}" in (ROOT / "README.md").read_text(), f"README does not name {path.name}"
