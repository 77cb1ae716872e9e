"""Arena end to end: real simulated engines and Locust runs on 127.0.0.1, very short cells.

A mini matrix (2 tiny engine configurations × 1 short-prompt dataset × 1 repeat, 6-second step
ramps) must produce the comparison and a leaderboard with a marked winner, record a failing
launch as a failed cell and go on; a rerun after an interruption must run only the missing cell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arena import store

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

# Short prompts and answers so a 6-second cell has a few dozen requests.
MATRIX = """
name: mini
targets:
{targets}
datasets: ["random:n=40,input=uniform(40,80),output=uniform(8,16)"]
shapes:
  - {{label: ramp, shape: step, step_users: 2, step_interval: 2s, duration: 6s}}
slos: [chat, datagen]
load: {{max_tokens: 16}}
"""
WIDE = "  - {label: wide, simserver: {profile: throughput, set: {output.sigma: 0.0123}}}"
# One sequence at a time and 40 ms steps: queues at 4 users (chat TTFT) and misses TPOT ≤ 35 ms (datagen).
NARROW = (
    "  - {label: narrow, simserver: {profile: latency,"
    " set: {max_num_seqs: 1, step_time.base_s: 0.04, output.sigma: 0.0123}}}"
)
BROKEN = "  - {label: broken, simserver: {profile: latency, set: {max_num_seqs: 0}}}"
MUTE = "  - {label: mute, launch: ['{python}', '-c', 'import time; time.sleep(60)', '{port}'], startup_timeout: 1s}"


def arena(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arena", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def matrix(tmp_path: Path, *targets: str) -> Path:
    p = tmp_path / f"mini-{len(list(tmp_path.glob('mini-*.yaml')))}.yaml"
    p.write_text(MATRIX.format(targets="\n".join(targets)))
    return p


def journal(res: Path) -> list[dict]:
    path = res / "mini" / "arena.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_mini_matrix_comparison_leaderboard_and_a_failed_cell(tmp_path):
    res = tmp_path / "results"
    r = arena("run", str(matrix(tmp_path, WIDE, BROKEN, MUTE, NARROW)), "--results", str(res))
    assert r.returncode == 2, r.stdout + r.stderr  # two cells failed, the others ran
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    fails = [x for x in r.stderr.splitlines() if x.startswith("arena: error:")]
    assert len(fails) == 2, r.stderr
    assert "broken" in fails[0] and "launch command exited with status 2" in fails[0]
    assert "max_num_seqs must be > 0" in fails[0]
    assert "'mute': not healthy after 1 s at http://127.0.0.1:" in fails[1]
    assert "[4/4] narrow" in r.stdout and "ETA" in r.stdout
    assert [e["status"] for e in journal(res)] == ["done", "failed", "failed", "done"]

    root = res / "mini"
    md = (root / "comparison.md").read_text()
    assert "## SLO chat" in md and "## SLO datagen" in md and "| wide |" in md and "| narrow |" in md
    rows = (root / "comparison.csv").read_text().splitlines()
    assert rows[0].startswith("slo,shape,configuration,dataset") and len(rows) == 1 + 2 * 2
    assert (root / "compare" / "chat__ramp" / "report.html").is_file()

    board_md = (root / "leaderboard.md").read_text()
    for cell in ("× chat", "× datagen"):
        section = board_md.split(cell + " (")[-1].split("\n## ")[0]
        assert section.count("🏆") == 1, section  # exactly one winner marked per cell
    html = (root / "leaderboard.html").read_text()
    assert html.count("<tr class=win>") == 2 and "<script" not in html and "src=" not in html

    entries = store.entries(res / "arena.sqlite")
    assert {(e["config"], e["slo"]) for e in entries} == {
        (c, s) for c in ("wide", "narrow") for s in ("chat", "datagen")
    }
    for e in entries:
        assert e["model"] == "sim-llm" and e["engine"] == "simserver" and e["gpu"] and e["cores"] >= 1
        assert e["date"] and e["runs"] == 1 and len(e["run_dirs"]) == 1 and e["goodput"] is not None
    # the big-batch engine wins both cells on capacity; the one-sequence engine queues / decodes too slowly
    by = {(e["config"], e["slo"]): e for e in entries}
    assert board_md.count("🏆 1 | wide |") == 2 and "🏆 1 | narrow" not in board_md
    for slo in ("chat", "datagen"):
        assert by[("wide", slo)]["capacity"] is not None
        assert (by[("narrow", slo)]["capacity"] or 0) < by[("wide", slo)]["capacity"]

    # the store re-renders the accumulated leaderboard on its own
    (res / "leaderboard.md").unlink()
    r = arena("leaderboard", "--results", str(res))
    assert r.returncode == 0, r.stderr
    assert "🏆" in (res / "leaderboard.md").read_text() and (res / "leaderboard.html").is_file()


def _wait_for(pred, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _rows(runs: Path, pattern: str) -> int:
    """Rows written so far in the run folders of the cells matching `pattern`."""
    return sum(max(0, len(p.read_text().splitlines()) - 1) for p in runs.glob(f"{pattern}/requests.csv"))


# The rerun test's engines carry their own sigma, and its load runs its results folder, in their
# command lines: what it looks for among the host's processes is its own, whatever else runs beside it.
RERUN_SIGMA = "0.0124"


def _our_processes(res: Path) -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True, timeout=10).stdout
    return [x for x in out.splitlines() if f"output.sigma={RERUN_SIGMA}" in x or str(res) in x]


def test_rerun_after_interruption_runs_only_the_missing_cell(tmp_path):
    res = tmp_path / "results"
    # 1. a first session completes the "wide" cell
    wide, narrow = (t.replace("0.0123", RERUN_SIGMA) for t in (WIDE, NARROW))
    r = arena("run", str(matrix(tmp_path, wide)), "--results", str(res))
    assert r.returncode == 0, r.stdout + r.stderr
    runs = res / "mini" / "runs"
    (wide_dir,) = list(runs.iterdir())
    wide_mtime = (wide_dir / "summary.json").stat().st_mtime

    # 2. the full matrix, interrupted (Ctrl-C) while the "narrow" cell is running
    full = matrix(tmp_path, wide, narrow)
    p = subprocess.Popen(
        [sys.executable, "-m", "arena", "run", str(full), "--results", str(res)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # as a non-interactive shell starts a background job: SIGINT ignored on entry, which Python
        # keeps unless the program sets its own handler (the arena does)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert _wait_for(lambda: any(runs.glob("narrow__*")), 30), "the narrow cell never started"
        assert _wait_for(lambda: _rows(runs, "narrow__*") > 0, 30), "the narrow cell sent nothing"
        assert len(_our_processes(res)) >= 2, "its engine and load run are seen while they run"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
            for line in _our_processes(res):  # its cells' processes run in sessions of their own
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(line.split()[0]), signal.SIGKILL)
    assert p.returncode == 130, out + err
    assert "interrupted" in err and "rerun the same command to resume" in err and "Traceback" not in err
    assert "1 of 2 cells already complete" in out
    assert _wait_for(lambda: not _our_processes(res), 10), _our_processes(res)  # server and load run stopped
    (partial,) = list(runs.glob("narrow__*"))
    assert not (partial / "summary.json").exists()
    partial_files = sorted(x.name for x in partial.iterdir())

    # 3. the rerun runs only the missing cell, into a new folder; nothing recorded is touched
    r = arena("run", str(full), "--results", str(res))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 of 2 cells already complete (skipped); 1 to run" in r.stdout
    assert "[2/2] narrow" in r.stdout and "[1/2]" not in r.stdout
    assert (wide_dir / "summary.json").stat().st_mtime == wide_mtime
    narrow_dirs = sorted(runs.glob("narrow__*"))
    assert len(narrow_dirs) == 2 and partial in narrow_dirs
    assert sorted(x.name for x in partial.iterdir()) == partial_files
    new = next(d for d in narrow_dirs if d != partial)
    assert (new / "summary.json").is_file() and json.loads((new / "arena.json").read_text())[
        "config"
    ] == "narrow"
    statuses = [(e.get("cell", "").split("__")[0], e["status"]) for e in journal(res)]
    assert statuses == [("wide", "done"), ("", "interrupted"), ("narrow", "done")]
    assert {e["config"] for e in store.entries(res / "arena.sqlite")} == {"wide", "narrow"}
