"""Command-line options of the load shapes and arrival processes, and THE rule that ties them to a shape.

The rule (README.md § Load shapes), for every option in `CONFIGURES`: an option is *given* when
its value differs from its default (the web form always sends every field, so "typed" cannot be
told from "left alone" any other way). Given with `--shape auto` (the default), an option that
configures one shape selects it (`--stages …` alone runs the stages); given with a shape it does
not configure, it is one clear error line (exit 2) instead of being silently ignored; options of
two different shapes together are an error too. With nothing given, auto is the step ramp.

Registered on Locust's parser under the "load shape" heading (core/optgroups.py). Parsing
helpers raise `OptionError` (one clear line).
"""

from __future__ import annotations

import re
from typing import Any

from locust import events

from core.durations import parse_duration_s
from core.errors import OptionError
from core.optgroups import add_option

ARRIVALS = ("poisson", "gamma", "constant")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def parse_portion(value: str | float | int, option: str) -> tuple[float, float]:
    """A warm-up/cool-down: `10s`, `500ms`, a bare number of seconds, or `20%` of the stage.

    Returns (seconds, fraction); exactly one of them is used, the other is 0.
    """
    if isinstance(value, int | float):
        seconds = float(value)
        fraction = 0.0
    elif m := _PERCENT.match(str(value)):
        seconds, fraction = 0.0, float(m.group(1)) / 100.0
        if fraction >= 1.0:
            raise OptionError(f"{option}: '{value}' must be less than 100% of the stage")
    else:
        seconds, fraction = parse_duration_s(value, option), 0.0
    if seconds < 0:
        raise OptionError(f"{option}: '{value}' must not be negative")
    return seconds, fraction


def resolve_portion(spec: tuple[float, float], duration_s: float | None, option: str) -> float:
    """Seconds of a portion for a stage of `duration_s` (None: open-ended, fractions impossible)."""
    seconds, fraction = spec
    if fraction:
        if duration_s is None:
            raise OptionError(f"{option}: a percentage needs a stage of known length (give seconds, or -t)")
        return fraction * duration_s
    return seconds


def parse_rate(value: Any, option: str) -> float:
    """A positive arrival rate in requests per second (`5`, `0.5`, `5/s`)."""
    text = str(value).strip().removesuffix("/s").strip()
    try:
        rate = float(text)
    except ValueError:
        raise OptionError(
            f"{option}: '{value}' is not a rate (expected requests per second, e.g. 5)"
        ) from None
    if not rate > 0 or rate != rate or rate == float("inf"):
        raise OptionError(f"{option}: '{value}' must be a positive rate in requests per second")
    return rate


def parse_share(value: Any, option: str) -> float:
    """A share in (0, 1): `5%` or `0.05`."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise OptionError(f"{option}: '{value}' is not a share (expected e.g. 5% or 0.05)") from None
    if not 0 < share < 1:
        raise OptionError(f"{option}: '{value}' must be between 0 and 100 % (exclusive)")
    return share


def check_arrival(opts: Any) -> None:
    """`--arrival` and `--burstiness` are valid together (the web UI sends free text)."""
    if opts.arrival not in ARRIVALS:
        raise OptionError(f"--arrival: '{opts.arrival}' is not one of {', '.join(ARRIVALS)}")
    try:
        b = float(opts.burstiness)
    except (TypeError, ValueError):
        raise OptionError(f"--burstiness: '{opts.burstiness}' is not a number") from None
    if not b > 0:
        raise OptionError(f"--burstiness: {opts.burstiness} must be > 0 (1 = Poisson, < 1 burstier)")
    if b != 1.0 and opts.arrival != "gamma":
        raise OptionError(
            f"--burstiness: shapes gamma arrivals only; add --arrival gamma (not {opts.arrival})"
        )
    if int(opts.max_concurrency) < 0:
        raise OptionError(f"--max-concurrency: {opts.max_concurrency} must be ≥ 0 (0 = no cap)")


# `--shape` values; `auto` applies the rule above.
SHAPES = ("auto", "step", "none", "rate", "stages", "sweep", "trace", "search")
_OPEN = ("rate", "stages", "sweep", "search")  # shapes with rate stages drawn from an arrival process
# dest → (the option as the user types it, the shapes it configures, its default).
CONFIGURES: dict[str, tuple[str, tuple[str, ...], Any]] = {
    "num_users": ("-u/--users", ("none",), None),  # counted only when typed (`goodput_users_given`)
    "step_users": ("--step-users", ("step",), 1),
    "step_interval": ("--step-interval", ("step",), "10s"),
    "max_users": ("--max-users", ("step",), 0),
    "step_duration": ("--step-duration", ("step",), "10m"),
    "rate": ("--rate", ("rate",), 0.0),
    "stages": ("--stages", ("stages",), ""),
    "sweep_stages": ("--sweep-stages", ("sweep",), 5),
    "sweep_stage_duration": ("--sweep-stage-duration", ("sweep",), "30s"),
    "sweep_concurrency": ("--sweep-concurrency", ("sweep",), 64),
    "trace_file": ("--trace-file", ("trace",), ""),
    "time_scale": ("--time-scale", ("trace",), 1.0),
    "search_by": ("--search-by", ("search",), "rate"),
    "search_precision": ("--search-precision", ("search",), "5%"),
    "search_probe_duration": ("--search-probe-duration", ("search",), "20s"),
    "arrival": ("--arrival", _OPEN, "poisson"),
    "burstiness": ("--burstiness", _OPEN, 1.0),
    "max_concurrency": ("--max-concurrency", (*_OPEN, "trace"), 0),
}
# Only in open-loop stages: with stages that are all closed loop they would do nothing.
OPEN_LOOP_ONLY = ("arrival", "burstiness", "max_concurrency")


def given(opts: Any) -> list[str]:
    """The shape options of `opts` that differ from their defaults (CONFIGURES order)."""
    out = []
    for dest, (_, _, default) in CONFIGURES.items():
        if dest == "num_users":
            if getattr(opts, "goodput_users_given", False):
                out.append(dest)
        elif getattr(opts, dest, default) != default:
            out.append(dest)
    return out


def resolve_shape(opts: Any) -> str:
    """The shape this run uses, by the rule in this module's docstring (OptionError: one line)."""
    return shape_and_why(opts)[0]


def shape_and_why(opts: Any) -> tuple[str, str]:
    """The shape this run uses and what chose it (`--shape sweep`, `selected by --stages`, `the default`)."""
    name = str(opts.shape)
    if name not in SHAPES:
        raise OptionError(f"--shape: '{name}' is not available (expected one of {', '.join(SHAPES)})")
    options = given(opts)
    how = f"--shape {name}"
    if name == "auto":
        selecting = [d for d in options if len(CONFIGURES[d][1]) == 1]
        chosen = list(dict.fromkeys(CONFIGURES[d][1][0] for d in selecting))
        if len(chosen) > 1:
            a, b = (next(CONFIGURES[d][0] for d in selecting if CONFIGURES[d][1][0] == s) for s in chosen[:2])
            raise OptionError(
                f"{b}: belongs to the {chosen[1]} shape, but {a} selects the {chosen[0]} shape; "
                f"give one shape's options (or --shape NAME)"
            )
        name, how = (
            (chosen[0], f"selected by {CONFIGURES[selecting[0]][0]}") if chosen else ("step", "the default")
        )
    for dest in options:
        flag, shapes, _ = CONFIGURES[dest]
        if name not in shapes:
            raise OptionError(
                f"{flag}: the {name} shape ({how}) does not use it; it configures the "
                f"{_names(shapes)} shape{'s' if len(shapes) > 1 else ''}"
            )
    return name, how


def _names(shapes: tuple[str, ...]) -> str:
    return shapes[0] if len(shapes) == 1 else ", ".join(shapes[:-1]) + " or " + shapes[-1]


def check_open_loop_options(opts: Any, open_loop: bool) -> None:
    """Stages that are all closed loop take no arrival or in-flight option."""
    if open_loop:
        return
    for dest in OPEN_LOOP_ONLY:
        if dest in given(opts):
            raise OptionError(
                f"{CONFIGURES[dest][0]}: applies to rate stages, and these stages are all closed loop"
            )


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    _shape_and_step(parser)
    _open_loop(parser)
    _stages_sweep_trace(parser)
    _search(parser)


def _opt(parser: Any, *flags: str, **kwargs: Any) -> None:
    """A shape option; its default is the one `given` compares with (CONFIGURES)."""
    dest = flags[0].lstrip("-").replace("-", "_")
    if dest in CONFIGURES:
        kwargs["default"] = CONFIGURES[dest][2]
    add_option(parser, "shape", *flags, **kwargs)


def _shape_and_step(parser: Any) -> None:
    _opt(
        parser,
        "--shape",
        label="Load shape",
        web=True,
        default="auto",
        choices=list(SHAPES),
        help="auto (default): the shape its own options select (--stages, --rate, --sweep-*, "
        "--trace-file, --search-*, -u…), else the step ramp; step, none (plain -u/-r), rate, stages, "
        "sweep, trace, search (capacity search)",
    )
    _opt(
        parser,
        "--step-users",
        label="Step: users added per step",
        web=True,
        type=int,
        help="Step ramp: users added per step (default 1)",
    )
    _opt(
        parser,
        "--step-interval",
        label="Step: interval",
        web=True,
        help="Step ramp: time between steps (default 10s)",
    )
    _opt(
        parser,
        "--max-users",
        label="Step: max users",
        web=True,
        type=int,
        help="Step ramp: cap on users, then the ramp holds (0 = no cap)",
    )
    _opt(
        parser,
        "--step-duration",
        label="Step: total length",
        web=True,
        help="Step ramp: total length when -t is not given (default 10m)",
    )


def _open_loop(parser: Any) -> None:
    _opt(
        parser,
        "--rate",
        label="Rate (req/s, open loop)",
        web=True,
        type=float,
        help="Open loop: requests per second across all workers (selects the rate shape)",
    )
    _opt(
        parser,
        "--arrival",
        label="Arrivals",
        web=True,
        choices=list(ARRIVALS),
        help="Open loop: arrival process (default poisson)",
    )
    _opt(
        parser,
        "--burstiness",
        label="Burstiness (gamma k)",
        web=True,
        type=float,
        help="Open loop, --arrival gamma: gamma shape k; inter-arrival CV = 1/sqrt(k) (1 = Poisson)",
    )
    _opt(
        parser,
        "--max-concurrency",
        label="Max requests in flight",
        web=True,
        type=int,
        help="Open loop: cap on requests in flight across all workers (0 = no cap)",
    )


def _stages_sweep_trace(parser: Any) -> None:
    _opt(
        parser,
        "--stages",
        label="Stages",
        web=True,
        help="Stages shape: a YAML file, or DURATION:USERS[:SPAWN_RATE] / DURATION:rate=R items, "
        "comma-separated, e.g. '60s:10:2,120s:rate=5,30s:rate=8:warmup=5s:label=peak'",
    )
    _opt(
        parser,
        "--sweep-stages",
        label="Sweep: rates",
        web=True,
        type=int,
        help="Sweep: rates between synchronous and saturation (default 5)",
    )
    _opt(
        parser,
        "--sweep-stage-duration",
        label="Sweep: stage length",
        web=True,
        help="Sweep: length of every sweep stage (default 30s)",
    )
    _opt(
        parser,
        "--sweep-concurrency",
        label="Sweep: saturation concurrency",
        web=True,
        type=int,
        help="Sweep: concurrent requests of the saturation stage (default 64)",
    )
    _opt(
        parser,
        "--trace-file",
        label="Trace file",
        web=True,
        help="Trace replay: CSV/JSONL of timestamp, input_tokens, output_tokens[, prefix_id]",
    )
    _opt(
        parser,
        "--time-scale",
        label="Trace: time scale",
        web=True,
        type=float,
        help="Trace replay: multiply the trace's timestamps (0.5 = twice as fast; 0.001 for ms traces)",
    )
    _opt(
        parser,
        "--warmup",
        label="Warm-up per stage",
        web=True,
        default="0s",
        help="Per stage: leading part excluded from analysis (seconds, e.g. 10s, or a share, e.g. 10%%)",
    )
    _opt(
        parser,
        "--cooldown",
        label="Cool-down per stage",
        web=True,
        default="0s",
        help="Per stage: trailing part excluded from analysis (seconds or a share)",
    )


def _search(parser: Any) -> None:
    """`--shape search` (shapes/search.py): the highest load whose SLO attainment meets its target."""
    _opt(
        parser,
        "--search-by",
        label="Search: by",
        web=True,
        choices=["rate", "users"],
        help="Capacity search: the open-loop request rate (default) or closed-loop users",
    )
    _opt(
        parser,
        "--search-precision",
        label="Search: precision",
        web=True,
        help="Capacity search: stop bisecting when the bracket is this narrow, relative to its low end "
        "(default 5%%)",
    )
    _opt(
        parser,
        "--search-probe-duration",
        label="Search: probe length",
        web=True,
        help="Capacity search: length of each probe, its warm-up included (default 20s; warm-up: "
        "--warmup, or 25%% of the probe)",
    )
