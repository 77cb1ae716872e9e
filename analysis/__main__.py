"""`python -m analysis RUN_DIR [RUN_DIR ...]` and `python -m analysis compare RUN_DIR ... [--out DIR]`.

The commands are thin: options → analysis/api.py (load, analyze, compare, write). User mistakes
(a missing folder, a corrupt CSV, a bad `--slo`) print one line on stderr and exit with status 2
— no traceback: the message names the file or option and what is wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NoReturn

from core.slo import PROFILES, Slo, SloError, parse_slo, with_target

USAGE = """python -m analysis RUN_DIR [RUN_DIR ...] [--slo SPEC ...] [--attain-target F] [--include-startup] [--no-plots] [--no-html]
       python -m analysis compare RUN_DIR [RUN_DIR ...] [--out DIR] [--slo SPEC] [--repeats median|best|all]"""
SLO_HELP = (
    f"SLO: a profile ({', '.join(PROFILES)}), a YAML file, or e.g. ttft=500ms,tpot=50ms,e2e=20s,p99:tpot=250ms,attain=90%%. "
    "Repeat to get a verdict for several; the first one drives goodput and capacity. Default: the run's own SLO (run.json), else chat."
)


class UserError(Exception):
    """Shown as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"analysis: error: {message} (see python -m analysis --help)\n")
        raise SystemExit(2)


class Timer:
    """Phase timings for `--timings` (the bench reads them)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.t = enabled, time.perf_counter()

    def lap(self, what: str) -> None:
        now = time.perf_counter()
        if self.enabled:
            sys.stderr.write(f"timing: {what} {now - self.t:.2f} s\n")
        self.t = now


def parse_slos(specs: list[str] | None, target: float | None) -> list[Slo]:
    try:
        return [with_target(parse_slo(s), target) for s in specs or []]
    except SloError as e:
        raise UserError(str(e)) from None


def run_slo(meta: dict, given: list[Slo], target: float | None) -> tuple[Slo, list[str]]:
    """The primary SLO: `--slo` first, else the one the run was recorded with, else `chat`."""
    if given:
        return given[0], []
    if isinstance(meta.get("slo"), dict):
        try:
            return with_target(Slo.from_dict(meta["slo"]), target), []
        except (SloError, KeyError, TypeError, ValueError):
            return with_target(PROFILES["chat"], target), [
                "run.json: unreadable 'slo'; using the chat profile"
            ]
    return with_target(PROFILES["chat"], target), []


def analyze_one(
    path: str, slos: list[Slo], target: float | None, args: argparse.Namespace, timer: Timer
) -> Path | None:
    from analysis import api

    run = api.load_run(path)
    timer.lap("load")
    slo, warnings = run_slo(run.meta, slos, target)
    run.warnings += warnings
    # ITL keeps parsing in the background during the plots
    a = api.analyze(run, slo, slos[1:], wait=False, include_startup=args.include_startup)
    timer.lap("metrics")
    try:
        html_path = api.write_run(a, with_plots=not args.no_plots, with_html=not args.no_html, lap=timer.lap)
    except OSError as e:
        raise UserError(f"{run.path}: cannot write the analysis output ({e.strerror or e})") from None
    if not args.quiet:
        print(api.console_text(a.summary, html_path))
        print(f"summary: {run.path / 'summary.md'}")
    return html_path


def cmd_analyze(argv: list[str]) -> int:
    p = Parser(
        prog="python -m analysis",
        usage=USAGE,
        description="Analyze run folders: summary.md/json, plots, report.html.",
        epilog="Compare runs: python -m analysis compare --help. Metric definitions: README.md § Analysis.",
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN_DIR", help="run folder(s) holding requests.csv (+ run.json)"
    )
    p.add_argument("--slo", action="append", metavar="SPEC", help=SLO_HELP)
    p.add_argument(
        "--attain-target",
        type=_fraction,
        metavar="F",
        help="attainment target for verdicts and capacity (default 0.9)",
    )
    p.add_argument(
        "--no-plots", action="store_true", help="skip the PNG plots (faster; the report has tables only)"
    )
    p.add_argument("--no-html", action="store_true", help="skip report.html")
    p.add_argument(
        "--include-startup",
        action="store_true",
        help="keep the start-up (until every user has sent its first request) in the headline and the "
        "first level; it is always reported apart",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--timings", action="store_true", help="print seconds per phase on stderr")
    args = p.parse_args(argv)
    slos = parse_slos(args.slo, args.attain_target)
    from analysis.api import AnalysisError

    failed = 0
    for path in args.runs:
        timer = Timer(args.timings)
        try:
            analyze_one(path, slos, args.attain_target, args, timer)
        except (AnalysisError, UserError) as e:
            sys.stderr.write(f"analysis: error: {e}\n")
            failed += 1
    return 2 if failed else 0


def cmd_compare(argv: list[str]) -> int:
    p = Parser(
        prog="python -m analysis compare",
        usage=USAGE,
        description="Compare runs: Table 4.2 + goodput + capacity.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders: servers, datasets, repeats")
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default: <parent of the first run>/compare-<UTC time>)",
    )
    p.add_argument(
        "--slo", metavar="SPEC", help="one SLO for every run (default: the first run's, else chat)"
    )
    p.add_argument("--attain-target", type=_fraction, metavar="F", help="attainment target (default 0.9)")
    p.add_argument(
        "--repeats",
        choices=["median", "best", "all"],
        default="median",
        help="repeated runs of one configuration: their median (with min–max), the best run, or all",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    args = p.parse_args(argv)
    slos = parse_slos([args.slo] if args.slo else None, args.attain_target)
    from analysis import api

    try:
        runs = [api.load_run(r) for r in args.runs]
    except api.AnalysisError as e:
        raise UserError(str(e)) from None
    slo, _ = run_slo(runs[0].meta, slos, args.attain_target)
    recorded = {
        str((r.meta.get("slo") or {}).get("profile")) for r in runs if isinstance(r.meta.get("slo"), dict)
    }
    if not slos and len(recorded) > 1 and not args.quiet:
        print(
            f"note: runs were recorded with different SLOs ({', '.join(sorted(recorded))}); all compared under {slo.name}"
        )
    try:
        comparison = api.compare([api.analyze(r, slo).summary for r in runs], slo, args.repeats)
    except api.AnalysisError as e:
        raise UserError(str(e)) from None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = args.out or Path(args.runs[0]).resolve().parent / f"compare-{stamp}"
    try:
        api.write_comparison(out, comparison, with_plots=not args.no_plots)
    except OSError as e:
        raise UserError(f"{out}: cannot write the comparison ({e.strerror or e})") from None
    if not args.quiet:
        print(api.comparison_text(comparison))
        print(f"comparison: {out / 'comparison.md'}\nreport: {out / 'report.html'}")
    return 0


def _fraction(text: str) -> float:
    try:
        v = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a fraction (e.g. 0.9 or 90%)") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be in (0, 1]")
    return v


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv and argv[0] == "compare":
            return cmd_compare(argv[1:])
        return cmd_analyze(argv)
    except UserError as e:
        sys.stderr.write(f"analysis: error: {e}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("analysis: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
