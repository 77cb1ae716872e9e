"""The `goodput` command: Locust with Goodput's own locustfile, from any directory.

`goodput [Locust and Goodput options]` runs `locust -f <goodput/locustfile.py> …`, the file that
`pip install .` installs with the packages, so an installed Goodput needs no checkout. The other
console scripts (pyproject.toml `[project.scripts]`) are the packages' own `python -m` mains.

`--help`: Locust parses the command line twice — first only `-f` (and `--help`, which it answers
right there), then, after importing the locustfile, everything. The options a locustfile
registers on `init_command_line_parser` exist only after that import, so `locust -f
locustfile.py --help` cannot list them (Locust issue #2917). `goodput --help` imports the
composition first and then prints Locust's help, which lists Goodput's options under their
headings (core/optgroups.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from core.errors import exit_with

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
HELP_FLAGS = ("-h", "--help")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-f", "--locustfile") or a.startswith("--locustfile=") for a in args):
        exit_with("-f: goodput runs its own locustfile; for another one, run locust -f FILE")
    if any(a in HELP_FLAGS for a in args):
        print_help()
        return 0
    sys.argv = ["goodput", "-f", str(LOCUSTFILE), *args]
    from locust.main import main as locust_main

    locust_main()  # exits with the run's code (loadgen/run/lifecycle.py EXIT_CODES)
    return 0


def print_help() -> None:
    """Locust's help with every Goodput option (registered by importing the composition first)."""
    from locust.argument_parser import get_parser

    import goodput.locustfile  # noqa: F401  (registers Goodput's options on Locust's parser)

    parser = get_parser(default_config_files=[])
    parser.prog = "goodput"
    parser.description = (parser.description or "").replace(
        "locust [options] [UserClass ...]", "goodput [options]   (Locust's options, then Goodput's)"
    )
    parser.print_help()
