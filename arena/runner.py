"""Run a matrix cell by cell: start the server, run Locust headless, analyze, stop — resumably.

A cell is complete when one of its run folders under `runs/` has a finished `run.json`
(`t_end_unix` and `rows_received` written by the load path's last step), a `summary.json`
(the analysis ran), and an `arena.json` whose signature matches the cell as the matrix now
describes it (same command, dataset, load). Complete cells are skipped on a rerun; an
interrupted or failed cell is run again into a new folder (the load path never reuses one), so
nothing already recorded is overwritten. Every attempt is one line in `arena.jsonl`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.matrix import ROOT, Cell, Matrix
from arena.procs import CellError, Child, Servers, interrupt, last_line, start_server
from arena.targets import Ports

LOCUST_GRACE_S = 180.0  # beyond -t: the last requests' timeout, the workers' last reports, shutdown
ANALYSIS_TIMEOUT_S = 600.0


@dataclass
class Layout:
    """Where a matrix's files live: `<results>/<matrix>/`."""

    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def journal(self) -> Path:
        return self.root / "arena.jsonl"


@dataclass
class Outcome:
    done: list[tuple[Cell, Path]] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_finished(meta: dict | None, cell_id: str) -> bool:
    return (
        bool(meta)
        and meta.get("name") == cell_id
        and meta.get("t_end_unix") is not None
        and ("rows_received" in meta)
    )


def complete_run(layout: Layout, cell: Cell) -> Path | None:
    """The newest complete run folder of `cell`, if any (see module doc)."""
    for d in sorted(layout.runs.glob(f"{cell.id}-*"), key=lambda p: p.stat().st_mtime, reverse=True):
        if not d.is_dir() or not (d / "summary.json").is_file():
            continue
        info = _read_json(d / "arena.json")
        if (
            _is_finished(_read_json(d / "run.json"), cell.id)
            and info
            and info.get("signature") == cell.signature
        ):
            return d
    return None


def load_entry() -> list[str]:
    """A checkout's locustfile.py, or — installed, without a checkout — the `goodput` command's module."""
    checkout = ROOT / "locustfile.py"
    if checkout.is_file():
        return [sys.executable, "-m", "locust", "-f", str(checkout)]
    return [sys.executable, "-m", "goodput"]


def locust_command(matrix: Matrix, cell: Cell, url: str, layout: Layout, pages: str = "") -> list[str]:
    """The cell's load run; `pages`: its target's metrics pages (`server_metrics:`, filled for this cell)."""
    cmd = [*load_entry(), "--headless", "--host", url]
    data = ["--mix", cell.mix, *(["--mix-alone", cell.alone] if cell.alone else [])] if cell.mix else []
    cmd += ["--results-dir", str(layout.runs), "--run-name", cell.id, *(data or ["--dataset", cell.dataset])]
    cmd += ["--slo", matrix.slos[0], *matrix.load_args, *cell.target.load_args, *cell.shape.args]
    if cell.target.model and "--model" not in matrix.load_args:
        cmd += ["--model", cell.target.model]
    if matrix.processes:
        cmd += ["--processes", str(matrix.processes)]
    return cmd + (["--server-metrics", pages] if pages else [])


def analysis_command(matrix: Matrix, run_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "analysis", str(run_dir), "--quiet"]
    for s in matrix.slos:
        cmd += ["--slo", s]
    if matrix.attain_target is not None:
        cmd += ["--attain-target", str(matrix.attain_target)]
    return cmd if matrix.plots else [*cmd, "--no-plots"]


def _run_load(matrix: Matrix, cell: Cell, url: str, layout: Layout, stamp: str, pages: str) -> Path:
    before = set(layout.runs.glob(f"{cell.id}-*"))
    log = layout.logs / f"{cell.id}.{stamp}.locust.log"
    child = Child(locust_command(matrix, cell, url, layout, pages), log)
    try:
        child.wait(cell.shape.duration_s + LOCUST_GRACE_S)
    except subprocess.TimeoutExpired:
        child.stop()
        raise CellError(
            f"the load run did not end within {cell.shape.duration_s + LOCUST_GRACE_S:g} s (log: {log})"
        ) from None
    except BaseException:  # Ctrl-C: never leave it running
        child.stop()
        raise
    code = child.stop()
    new = [d for d in set(layout.runs.glob(f"{cell.id}-*")) - before if d.is_dir()]
    runs = [d for d in new if _is_finished(_read_json(d / "run.json"), cell.id)]
    if not runs:
        why = last_line(log, ("error",))
        raise CellError(f"the load run (exit status {code}) left no finished run folder: {why} (log: {log})")
    run_dir = max(runs, key=lambda p: p.stat().st_mtime)
    meta = _read_json(run_dir / "run.json") or {}
    if code != 0:  # 0 is the only completed run (README.md § Exit codes): 2 target failing, 130 interrupted
        reason = (meta.get("stop_reason") or {}).get("category")
        why = f"the target failed systematically ({reason})" if reason else f"outcome {meta.get('outcome')}"
        raise CellError(
            f"the load run did not complete (exit status {code}: {why}; log: {log}; run {run_dir})"
        )
    if not meta.get("rows_received"):
        raise CellError(f"the load run recorded no requests (exit status {code}; log: {log}; run {run_dir})")
    return run_dir


def run_cell(matrix: Matrix, cell: Cell, layout: Layout) -> Path:
    """One attempt: a fresh server (if launched), the load run, arena.json, the analysis."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    servers: Servers | None = None
    ports = Ports(0)
    t0 = time.time()
    try:
        if cell.target.launch:
            servers, url, ports = start_server(cell.target, layout.logs, f"{cell.id}.{stamp}")
        else:
            url = cell.target.url or ""
        pages = cell.target.metrics_pages(ports)
        run_dir = _run_load(matrix, cell, url, layout, stamp, pages)
        gone = servers.exited() if servers is not None else None
        if gone is not None:  # its errors would pass for the engine's behaviour
            name, child = gone
            code = child.stop()
            raise CellError(
                f"target '{cell.target.label}': the {name} exited (status {code}) during the load run: "
                f"{last_line(child.log)} (log: {child.log}; run {run_dir})"
            )
    finally:
        if servers is not None:
            servers.stop()
    info: dict[str, Any] = {
        "matrix": matrix.name,
        "cell": cell.id,
        "index": cell.index,
        "config": cell.target.label,
        "config_base": cell.target.base,
        "params": dict(cell.target.params),
        "engine": cell.target.engine,
        "target": cell.target.describe(),
        "url": url,
        "backends": list(ports.backends) or None,  # a router target's replicas, started for this cell
        "server_metrics": pages or None,
        "dataset": cell.dataset,
        "mix": cell.mix or None,  # a mix entry's --mix; `alone`: its class run alone (interference)
        "alone": cell.alone or None,
        "shape": cell.shape.label,
        "shape_args": list(cell.shape.args),
        "repeat": cell.repeat,
        "slos": matrix.slos,
        "signature": cell.signature,
        "t_start_unix": t0,
    }
    (run_dir / "arena.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    log = layout.logs / f"{cell.id}.{stamp}.analysis.log"
    child = Child(analysis_command(matrix, run_dir), log)
    try:
        child.wait(ANALYSIS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.stop()
        raise CellError(f"the analysis of {run_dir} took longer than {ANALYSIS_TIMEOUT_S:g} s") from None
    except BaseException:
        child.stop()
        raise
    if child.stop() != 0 or not (run_dir / "summary.json").is_file():
        raise CellError(f"the analysis of {run_dir} failed: {last_line(log)}")
    return run_dir


def _journal(layout: Layout, **entry: Any) -> None:
    with open(layout.journal, "a") as fh:
        fh.write(json.dumps({"t_unix": round(time.time(), 3), **entry}, default=str) + "\n")


def _fmt_s(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _say(text: str) -> None:
    print(text, flush=True)  # progress shows at once also when piped (tee, CI logs)


def run_matrix(matrix: Matrix, layout: Layout, say: Callable[[str], None] = _say) -> Outcome:
    """Every cell in order, skipping complete ones; a failed cell is recorded and the rest still run."""
    layout.runs.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(parents=True, exist_ok=True)
    cells = matrix.cells()
    todo = [c for c in cells if complete_run(layout, c) is None]
    out = Outcome(skipped=len(cells) - len(todo))
    if out.skipped:
        say(f"arena: {out.skipped} of {len(cells)} cells already complete (skipped); {len(todo)} to run")
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    t_start = time.monotonic()
    took: list[float] = []
    try:
        for n, cell in enumerate(todo):
            remaining = len(todo) - n
            per_cell = sum(took) / len(took) if took else cell.shape.duration_s + 15
            elapsed = time.monotonic() - t_start
            say(
                f"arena: [{cell.index}/{len(cells)}] {cell.title} — elapsed {_fmt_s(elapsed)}, "
                f"ETA {_fmt_s(per_cell * remaining)}{'' if took else ' (estimate)'}"
            )
            t0 = time.monotonic()
            try:
                run_dir = run_cell(matrix, cell, layout)
            except CellError as e:
                took.append(time.monotonic() - t0)
                out.failed.append((cell, str(e)))
                say(f"arena: error: cell {cell.index}/{len(cells)} ({cell.id}): {e}")
                _journal(layout, cell=cell.id, status="failed", reason=str(e), seconds=round(took[-1], 1))
                continue
            took.append(time.monotonic() - t0)
            out.done.append((cell, run_dir))
            say(f"arena:    done in {_fmt_s(took[-1])} → {run_dir}")
            _journal(layout, cell=cell.id, status="done", run_dir=str(run_dir), seconds=round(took[-1], 1))
    except KeyboardInterrupt:
        _journal(layout, status="interrupted")
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out.seconds = time.monotonic() - t_start
    return out


def completed(matrix: Matrix, layout: Layout) -> list[tuple[Cell, Path]]:
    """Every cell with a complete run folder (this session's or an earlier one's), in matrix order."""
    out = []
    for c in matrix.cells():
        d = complete_run(layout, c)
        if d is not None:
            out.append((c, d))
    return out
