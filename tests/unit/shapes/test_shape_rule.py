"""The one rule of the shape options (shapes/options.py): a shape's own option given alone selects
that shape; given with another shape, or with another shape's option, it is one clear error line.

Options are parsed by Locust's real parser with every Goodput option registered, from the same
strings a user types, then marked as the lifecycle marks a headless run's `-u`.
"""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import OptionError
from tests.conftest import ROOT

TRACE = str(ROOT / "datasets" / "traces" / "example.csv")


def parse(*argv: str) -> Any:
    from locust.argument_parser import get_parser

    import locustfile  # noqa: F401  (registers every Goodput option)

    opts = get_parser(default_config_files=[]).parse_args(["-f", "locustfile.py", "--headless", *argv])
    opts.goodput_users_given = opts.num_users is not None  # as loadgen/run/lifecycle.py, headless
    return opts


def shape_of(*argv: str) -> str:
    from shapes import build_schedule
    from shapes.options import resolve_shape

    opts = parse(*argv)
    build_schedule(opts)  # valid as a whole, not only its name
    return resolve_shape(opts)


# Every shape option, alone: the shape it selects.
SELECTS = [
    ([], "step"),
    (["--step-users", "2"], "step"),
    (["--step-interval", "5s"], "step"),
    (["--max-users", "4"], "step"),
    (["--step-duration", "1m"], "step"),
    (["-u", "3"], "none"),
    (["--rate", "5"], "rate"),
    (["--stages", "10s:2,10s:rate=3"], "stages"),
    (["--sweep-stages", "3"], "sweep"),
    (["--sweep-stage-duration", "10s"], "sweep"),
    (["--sweep-concurrency", "8"], "sweep"),
    (["--trace-file", TRACE], "trace"),
    (["--trace-file", TRACE, "--time-scale", "0.5"], "trace"),
    (["--search-by", "users", "-t", "60s"], "search"),
    (["--search-precision", "10%", "-t", "60s"], "search"),
    (["--search-probe-duration", "10s", "-t", "60s"], "search"),
    (["--shape", "search", "--max-concurrency", "8", "-t", "60s"], "search"),
    # options of several shapes ride along with the one selected
    (["--rate", "5", "--arrival", "gamma", "--burstiness", "0.5", "--max-concurrency", "4"], "rate"),
    (["--stages", "10s:rate=2", "--arrival", "constant", "--max-concurrency", "4"], "stages"),
    (["--sweep-stages", "3", "--arrival", "gamma", "--burstiness", "2"], "sweep"),
    (["--trace-file", TRACE, "--max-concurrency", "8"], "trace"),
    (["--shape", "sweep", "--max-concurrency", "8"], "sweep"),
    (["--shape", "none", "-u", "2"], "none"),
    (["--shape", "step", "--step-users", "2"], "step"),
    (["--warmup", "10%", "-t", "60s"], "step"),  # every shape takes warm-up and cool-down
]


@pytest.mark.parametrize(("argv", "shape"), SELECTS, ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_a_shape_option_alone_selects_its_shape(argv: list[str], shape: str) -> None:
    assert shape_of(*argv) == shape


# Every shape option with a shape it does not configure: one line naming the option first.
MISMATCHES = [
    (["--shape", "sweep", "--stages", "10s:2"], "--stages: the sweep shape (--shape sweep) does not use it"),
    (["--shape", "stages", "--stages", "10s:2", "--sweep-stages", "3"], "--sweep-stages: the stages shape"),
    (["--shape", "step", "--sweep-stage-duration", "10s"], "--sweep-stage-duration: the step shape"),
    (
        ["--shape", "trace", "--trace-file", TRACE, "--sweep-concurrency", "8"],
        "--sweep-concurrency: the trace",
    ),
    (["--shape", "step", "--trace-file", TRACE], "--trace-file: the step shape (--shape step)"),
    (["--shape", "sweep", "--time-scale", "2"], "--time-scale: the sweep shape"),
    (["--shape", "step", "--search-by", "users"], "--search-by: the step shape (--shape step)"),
    (["--rate", "5", "--search-precision", "10%"], "--search-precision: belongs to the search shape"),
    (["--shape", "search", "--stages", "10s:2"], "--stages: the search shape"),
    (["--shape", "none", "--step-users", "2"], "--step-users: the none shape"),
    (["--shape", "rate", "--rate", "5", "--step-interval", "5s"], "--step-interval: the rate shape"),
    (["--shape", "sweep", "--max-users", "4"], "--max-users: the sweep shape"),
    (
        ["--shape", "trace", "--trace-file", TRACE, "--step-duration", "1m"],
        "--step-duration: the trace shape",
    ),
    (["--shape", "step", "--rate", "5"], "--rate: the step shape (--shape step) does not use it"),
    (["--shape", "stages", "--stages", "10s:2", "-u", "3"], "-u/--users: the stages shape"),
    (
        ["--arrival", "gamma", "--burstiness", "0.5"],
        "--arrival: the step shape (the default) does not use it",
    ),
    (["--burstiness", "0.5"], "--burstiness: shapes gamma arrivals only"),
    (["--rate", "5", "--burstiness", "0.5"], "--burstiness: shapes gamma arrivals only"),
    (["--max-concurrency", "4"], "--max-concurrency: the step shape (the default) does not use it"),
    (["--shape", "none", "--max-concurrency", "4"], "--max-concurrency: the none shape"),
    (["--step-users", "2", "--arrival", "constant"], "--arrival: the step shape (selected by --step-users)"),
    (["--stages", "10s:2", "--max-concurrency", "4"], "--max-concurrency: applies to rate stages"),
    (["--stages", "10s:2", "--arrival", "gamma"], "--arrival: applies to rate stages"),
    # two shapes' own options together
    (["--stages", "10s:2", "--trace-file", TRACE], "--trace-file: belongs to the trace shape, but --stages"),
    (["-u", "4", "--step-users", "2"], "belongs to the"),
    (["--rate", "5", "--sweep-stages", "3"], "--sweep-stages: belongs to the sweep shape, but --rate"),
    # an option alone that selects its shape is validated there (the README's promise: exit 2)
    (["--stages", "30s:lots"], "--stages: item 1 '30s:lots'"),
    (["--time-scale", "0.5"], "--trace-file"),
    (["--shape", "stages"], "--stages"),
    (["--shape", "rate"], "--rate"),
    (["--shape", "nope"], "--shape"),
]


@pytest.mark.parametrize(
    ("argv", "needle"), MISMATCHES, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_a_shape_option_with_another_shape_is_one_clear_line(argv: list[str], needle: str) -> None:
    with pytest.raises((OptionError, SystemExit)) as e:
        shape_of(*argv)
    if e.type is SystemExit:  # argparse's own refusal (a value outside --shape's choices): exit 2
        assert e.value.code == 2 and needle == "--shape"
        return
    message = str(e.value)
    assert needle in message and "\n" not in message, message
    assert message.startswith(("-", needle)), message


def test_every_shape_option_is_covered_by_the_rule() -> None:
    """A new shape option must be added to CONFIGURES (and so to these tests), never silently ignored."""
    from locust.argument_parser import get_parser

    import locustfile  # noqa: F401
    from shapes.options import CONFIGURES

    parser = get_parser(default_config_files=[])
    shape_opts = {a.dest for a in parser._actions if getattr(a, "goodput_group", "") == "shape"}
    assert shape_opts - set(CONFIGURES) == {"shape", "warmup", "cooldown"}
    tested = {a for argv, _ in SELECTS + MISMATCHES for a in argv if a.startswith("-")}
    assert {CONFIGURES[d][0].split("/")[0] for d in CONFIGURES} <= tested
    defaults = {a.dest: a.default for a in parser._actions if a.dest in CONFIGURES and a.dest != "num_users"}
    assert defaults == {d: v[2] for d, v in CONFIGURES.items() if d != "num_users"}
