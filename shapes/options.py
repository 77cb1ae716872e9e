"""Command-line options of the load shapes and arrival processes (stages, open-loop rate, sweep, trace, search).

Registered on Locust's parser with their own listener so they show in `--help` and the web UI
start form next to the spine's options. Parsing helpers raise `OptionError` (one clear line).
"""

from __future__ import annotations

import re
from typing import Any

from locust import events

from core.durations import parse_duration_s
from core.errors import OptionError

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
    if int(opts.max_concurrency) < 0:
        raise OptionError(f"--max-concurrency: {opts.max_concurrency} must be ≥ 0 (0 = no cap)")


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    # Locust's web-UI flag (include_in_web_ui) exists only on the parser itself, not on argument groups.
    g = parser
    g.add_argument(
        "--stages",
        default="",
        help="StagesShape: a YAML file, or DURATION:USERS[:SPAWN_RATE] / DURATION:rate=R items, "
        "comma-separated, e.g. '60s:10:2,120s:rate=5,30s:rate=8:warmup=5s:label=peak'",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="Open loop: requests per second across all workers (selects the open-loop user)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--arrival",
        default="poisson",
        choices=list(ARRIVALS),
        help="Open loop: arrival process (default poisson)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--burstiness",
        type=float,
        default=1.0,
        help="Open loop, --arrival gamma: gamma shape k; inter-arrival CV = 1/sqrt(k) (1 = Poisson)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--max-concurrency",
        type=int,
        default=0,
        help="Open loop: cap on requests in flight across all workers (0 = no cap)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--warmup",
        default="0s",
        help="Per stage: leading part excluded from analysis (seconds, e.g. 10s, or a share, e.g. 10%%)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--cooldown",
        default="0s",
        help="Per stage: trailing part excluded from analysis (seconds or a share)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--sweep-stages",
        type=int,
        default=5,
        help="SweepShape: rates between synchronous and saturation (default 5)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--sweep-stage-duration",
        default="30s",
        help="SweepShape: length of every sweep stage (default 30s)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--sweep-concurrency",
        type=int,
        default=64,
        help="SweepShape: concurrent requests of the saturation stage (default 64)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--trace-file",
        default="",
        help="Trace replay: CSV/JSONL of timestamp, input_tokens, output_tokens[, prefix_id]",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="Trace replay: multiply the trace's timestamps (0.5 = twice as fast; 0.001 for ms traces)",
        include_in_web_ui=True,
    )


@events.init_command_line_parser.add_listener
def add_search_options(parser: Any) -> None:
    """`--shape search` (shapes/search.py)."""
    g = parser
    g.add_argument(
        "--search-by",
        default="rate",
        choices=["rate", "users"],
        help="--shape search: search the open-loop request rate (default) or closed-loop users",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--search-precision",
        default="5%",
        help="--shape search: stop bisecting when the bracket is this narrow, relative to its low end (default 5%%)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--search-probe-duration",
        default="20s",
        help="--shape search: length of each probe, its warm-up included (default 20s; warm-up: "
        "--warmup, or 25%% of the probe)",
        include_in_web_ui=True,
    )
