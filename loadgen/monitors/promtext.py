"""Prometheus text → `(metric, labels, value)` rows, parsed in pieces so the event loop keeps running.

The scraper (loadgen/monitors/servermetrics.py) writes these rows into server_metrics.csv. Labels are
`k=v;k=v` with keys sorted and `%`, `;`, `=` and newlines %-escaped; values as Prometheus writes them
(`NaN`, `+Inf`, `-Inf`). The runtimes' own families (`python_*`, `process_*`, Go's `go_*` and
`promhttp_*`) and `*_created` samples are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

DROP_PREFIXES = ("python_", "process_", "go_", "promhttp_")  # the runtime's, not the server's
CHUNK_SAMPLES = 20  # samples parsed between two yields to the event loop (≈1–2 ms)
_ESCAPES = str.maketrans({"%": "%25", ";": "%3B", "=": "%3D", "\n": "%0A", "\r": "%0D"})


def _name_of(line: str) -> str:
    """The metric name a text-format line is about ('' for comments other than HELP/TYPE)."""
    if line[0] == "#":
        parts = line.split(None, 3)
        return parts[2] if len(parts) > 2 and parts[1] in ("HELP", "TYPE") else ""
    end = len(line)
    for ch in "{ \t":
        i = line.find(ch)
        if 0 <= i < end:
            end = i
    return line[:end]


def _keep(line: str) -> bool:
    if not line or line.isspace():
        return False
    name = _name_of(line)
    return bool(name) and not name.startswith(DROP_PREFIXES) and not name.endswith("_created")


def format_labels(labels: dict[str, str]) -> str:
    """`k=v;k=v`, sorted: one label set is always the same string (the analysis groups by it)."""
    return ";".join(f"{k}={str(v).translate(_ESCAPES)}" for k, v in sorted(labels.items()))


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def chunks(text: str, size: int = CHUNK_SAMPLES) -> Iterator[str]:
    """The kept lines in pieces of at most `size` samples, each led by its family's TYPE line.

    The parser yields only once per metric family, and one family can be large (TGI's batch-size
    histogram has 1,025 buckets): parsing it in one go would hold the event loop for tens of ms.
    A piece of a histogram parses to the same samples as the whole (the classic text parser does
    not check bucket completeness); the TYPE line keeps counters' `_total` naming. HELP is dropped.
    """
    buf: list[str] = []
    type_line = ""
    n = 0
    for line in text.splitlines():
        if not _keep(line):
            continue
        if line[0] == "#":
            if line.split(None, 2)[1] == "TYPE":
                if n >= size:
                    yield "\n".join(buf)
                    buf, n = [], 0
                type_line = line
                buf.append(line)
            continue
        if n >= size:
            yield "\n".join(buf)
            buf, n = ([type_line] if type_line else []), 0
        buf.append(line)
        n += 1
    if n:
        yield "\n".join(buf)


def relabel(labels: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """`labels` with `extra` added; a label of the page that `extra` would overwrite is kept as
    `exported_<name>`, as Prometheus does with `honor_labels: false`."""
    out = dict(labels)
    for k, v in extra.items():
        if k in out:
            out["exported_" + k] = out[k]
        out[k] = v
    return out


def parse(
    text: str, pause: Callable[[], Any] | None = None, extra: dict[str, str] | None = None
) -> Iterator[tuple[str, str, str]]:
    """(metric, labels, value) of every kept sample, in page order; `pause()` runs between pieces;
    `extra` labels (the scraper's `instance`) are added to every sample.

    Raises ValueError on text that is not the Prometheus exposition format.
    """
    for piece in chunks(text):
        for family in text_string_to_metric_families(piece):
            for s in family.samples:
                if not s.name.endswith("_created"):
                    labels = relabel(s.labels, extra) if extra else s.labels
                    yield s.name, format_labels(labels), format_value(s.value)
        if pause is not None:
            pause()
