"""The one duration grammar of every option, SLO and file: a number and a unit.

`500ms`, `10s`, `2m`, `1.5h`, `800us` (or `µs`). A bare number is seconds where the caller allows
it (`--request-timeout 120`), and refused where it would be ambiguous (an SLO limit `ttft=500` could
mean ms or s: `require_unit=True` asks for one). One grammar, so `--slo e2e=2m` and
`--request-timeout 2m` are read the same way.
"""

from __future__ import annotations

import re

from core.errors import OptionError

UNIT_S: dict[str, float] = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(us|µs|ms|s|m|h)?\s*$")


def parse_duration_s(
    value: str | float | int,
    where: str,
    *,
    require_unit: bool = False,
    error: type[ValueError] = OptionError,
) -> float:
    """Seconds from `10s`, `500ms`, `2m`, … (or a bare number of seconds unless `require_unit`).

    `where` names the place in the error (`--step-interval`, `SLO 'ttft=…'`); `error` is the
    caller's error type, so an SLO mistake stays an SloError.
    """
    if isinstance(value, bool):
        raise error(f"{where}: '{value}' is not a duration (expected e.g. 10s, 500ms, 2m)")
    if isinstance(value, int | float):
        if require_unit:
            raise error(f"{where}: '{value}' needs a unit (ms, s, m), e.g. {value}ms")
        return float(value)
    text = str(value)
    m = _DURATION.match(text)
    if not m:
        raise error(f"{where}: '{text.strip()}' is not a duration (expected e.g. 10s, 500ms, 2m)")
    if m.group(2) is None and require_unit:
        raise error(f"{where}: '{text.strip()}' needs a unit (ms, s, m), e.g. {text.strip()}ms")
    return float(m.group(1)) * UNIT_S[m.group(2) or "s"]


def fmt_duration(seconds: float) -> str:
    """Human units for limits and labels: `500 ms`, `2 s`, `800 µs`."""
    if seconds >= 1:
        return f"{seconds:g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:g} ms"
    return f"{seconds * 1e6:g} µs"
