"""`python -m arena run MATRIX.yaml [--results DIR] [--repeats N] [--dry-run]` and `python -m arena leaderboard [--results DIR]`.

User mistakes (a bad matrix, an unwritable results folder, a missing store) are one line on
stderr and exit status 2, never a traceback. A cell that fails (its server never became healthy,
its load run broke) is one line too; the matrix goes on, and the exit status is 2 at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
from pathlib import Path
from typing import NoReturn

from arena.matrix import Matrix, MatrixError, load_matrix

USAGE = """python -m arena run MATRIX.yaml [--results DIR] [--repeats N] [--dry-run]
       python -m arena leaderboard [--results DIR] [--matrix NAME]"""
BOARD_TITLE = "Goodput arena leaderboard"


class UserError(Exception):
    """One line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"arena: error: {message} (usage: {USAGE.splitlines()[0].strip()})\n")
        raise SystemExit(2)


def _results(args: argparse.Namespace, matrix: Matrix | None = None) -> Path:
    return Path(args.results or (matrix.results if matrix and matrix.results else "results"))


def dry_run(matrix: Matrix, root: Path) -> None:
    from arena.runner import Layout, analysis_command, complete_run, locust_command
    from arena.targets import Ports

    layout = Layout(root)
    cells = matrix.cells()
    est = sum(c.shape.duration_s + 15 for c in cells)
    counts = [(len(matrix.targets), "configuration"), (len(matrix.datasets), "dataset")]
    counts += [(len(matrix.shapes), "shape"), (matrix.repeats, "repeat")]
    print(
        f"matrix {matrix.name}: "
        + " × ".join(f"{n} {w}{'s' if n != 1 else ''}" for n, w in counts)
        + f" = {len(cells)} cells"
        + (
            f" ({alone} of them classes alone: the interference view)"
            if (alone := sum(bool(c.alone) for c in cells))
            else ""
        )
        + ", "
        f"SLOs {', '.join(matrix.slos)}; about {est / 60:.0f} min; results in {root}/"
    )
    for c in cells:
        done = complete_run(layout, c) if layout.runs.is_dir() else None
        print(f"[{c.index}/{len(cells)}] {c.title}{'  (complete: skipped)' if done else ''}")
        b, urls = c.target.backends, ()
        if b is not None:
            values = Ports("REPLICA_PORT").values() | {"replica": "REPLICA"}
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in b.environment(values).items())
            print(f"    replicas: {b.replicas} × {env + ' ' if env else ''}{shlex.join(b.command(values))}")
            urls = tuple(f"http://127.0.0.1:REPLICA_PORT_{i}" for i in range(1, b.replicas + 1))
        ports = Ports("PORT", "METRICS_PORT", urls)
        if c.target.launch:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in c.target.environment(ports).items())
            print(f"    server: {env + ' ' if env else ''}{shlex.join(c.target.command(ports))}")
        url = c.target.url or "http://127.0.0.1:PORT"
        print(
            f"    load:   {shlex.join(locust_command(matrix, c, url, layout, c.target.metrics_pages(ports)))}"
        )
    print(f"    then:   {shlex.join(analysis_command(matrix, layout.runs / 'RUN'))}")


def report(matrix: Matrix, root: Path, results: Path) -> list[tuple]:
    """Comparison, store, leaderboards from every complete cell (this session's and earlier ones)."""
    from arena import board, store, tables
    from arena.runner import Layout, completed

    done = completed(matrix, Layout(root))
    if not done:
        print("arena: no complete cell yet: no comparison or leaderboard written")
        return []
    sections = tables.evaluate(matrix, done)
    if not sections:
        print("arena: no run could be analyzed: no comparison or leaderboard written")
        return []
    tables.write_comparison(root, matrix, sections)
    db = results / "arena.sqlite"
    mine = tables.entries(matrix, sections, store.hardware())  # in the matrix's order of datasets and SLOs
    store.upsert(db, mine, replace_matrix=matrix.name)
    board.write(mine, root, f"Leaderboard — matrix {matrix.name}")
    board.write(store.entries(db), results, BOARD_TITLE)
    print(f"comparison: {root / 'comparison.md'} (+ .csv; per SLO: {root / 'compare'}/*/report.html)")
    print(f"leaderboard: {root / 'leaderboard.md'} (+ .html); all matrices: {results / 'leaderboard.md'}")
    return board.ranked(mine)


def print_winners(cells: list[tuple]) -> None:
    from arena import board

    for key, items in cells:
        winners = [e for e in items if e["winner"]]
        name = board.winner_names(winners) if winners else "none met the SLO"
        cap = board.capacity_text(winners[0]) if winners else ""
        print(
            f"  {key[0]} × {key[1]} · {key[3]}: {board.WINNER} {name}" + (f" (capacity {cap})" if cap else "")
        )
    if cells:
        print("  " + board.verdict(cells).replace("**", ""))


def cmd_run(argv: list[str]) -> int:
    p = Parser(
        prog="python -m arena run", usage=USAGE, description="Run a benchmark matrix (README.md § Arena)."
    )
    p.add_argument("matrix", metavar="MATRIX.yaml")
    p.add_argument(
        "--results", metavar="DIR", help="results folder (default: the matrix's results:, else results)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the cells and their commands; run nothing")
    p.add_argument(
        "--repeats",
        type=int,
        metavar="N",
        help="run every cell N times (default: the matrix's repeats:); repeats merge into one row with "
        "their spread and a merged 95 %% interval",
    )
    args = p.parse_args(argv)
    try:
        matrix = load_matrix(args.matrix)
    except MatrixError as e:
        raise UserError(str(e)) from None
    if args.repeats is not None:
        if args.repeats < 1:
            raise UserError(f"--repeats: {args.repeats} must be ≥ 1")
        matrix = dataclasses.replace(matrix, repeats=args.repeats)
    results = _results(args, matrix)
    root = results / matrix.name
    if args.dry_run:
        dry_run(matrix, root)
        return 0
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "matrix.yaml").write_text(matrix.path.read_text())
    except OSError as e:
        raise UserError(f"{root}: cannot write the results folder ({e.strerror or e})") from None
    from arena.runner import Layout, run_matrix

    t0 = time.monotonic()
    try:
        outcome = run_matrix(matrix, Layout(root))
        cells = report(matrix, root, results)
    except KeyboardInterrupt:
        sys.stderr.write("arena: interrupted; complete cells are kept: rerun the same command to resume\n")
        return 130
    ran = len(outcome.done) + len(outcome.failed)
    print(
        f"arena: {len(matrix.cells())} cell{'s' if len(matrix.cells()) != 1 else ''}: {len(outcome.done)} run now, {outcome.skipped} already complete, "
        f"{len(outcome.failed)} failed; {time.monotonic() - t0:.0f} s in all"
        + (f" ({outcome.seconds / ran:.0f} s per cell run)" if ran else "")
    )
    print_winners(cells)
    for cell, why in outcome.failed:
        sys.stderr.write(f"arena: error: cell {cell.index} ({cell.id}) failed: {why}\n")
    return 2 if outcome.failed else 0


def cmd_leaderboard(argv: list[str]) -> int:
    p = Parser(
        prog="python -m arena leaderboard",
        usage=USAGE,
        description="Re-render the leaderboard from its store.",
    )
    p.add_argument("--results", metavar="DIR", help="results folder holding arena.sqlite (default results)")
    p.add_argument("--matrix", metavar="NAME", help="only this matrix's entries, into <results>/<NAME>/")
    args = p.parse_args(argv)
    from arena import board, store

    results = _results(args)
    db = results / "arena.sqlite"
    if not db.is_file():
        raise UserError(
            f"{db}: no leaderboard store yet (run a matrix first: python -m arena run MATRIX.yaml)"
        )
    rows = store.entries(db, args.matrix)
    if args.matrix and not rows:
        raise UserError(f"{db}: no entries of matrix '{args.matrix}'")
    out = results / args.matrix if args.matrix else results
    board.write(rows, out, f"Leaderboard — matrix {args.matrix}" if args.matrix else BOARD_TITLE)
    print(f"leaderboard: {out / 'leaderboard.md'} (+ .html), {len(rows)} entries")
    print_winners(board.ranked(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from arena.store import StoreError

    commands = {"run": cmd_run, "leaderboard": cmd_leaderboard}
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {USAGE}\n\nBenchmark matrices and the leaderboard; see README.md § Arena.")
        return 0 if argv else 2
    if argv[0] not in commands:
        sys.stderr.write(f"arena: error: unknown command '{argv[0]}' (expected run or leaderboard)\n")
        return 2
    try:
        return commands[argv[0]](argv[1:])
    except (UserError, StoreError) as e:
        sys.stderr.write(f"arena: error: {e}\n")
        return 2
    except BrokenPipeError:  # `python -m arena run X --dry-run | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush stays quiet
        return 0
    except OSError as e:
        sys.stderr.write(f"arena: error: {getattr(e, 'filename', '') or ''}: {e.strerror or e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
