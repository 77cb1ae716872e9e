"""`--header`: extra HTTP headers on every request to the target (gateways, routing, other auth schemes).

An API gateway in front of an inference server often wants its own key (`X-Api-Key`, Azure's
`api-key`), a routing header, or an `Authorization` of another scheme than Bearer. Each `--header
'NAME: VALUE'` is sent on every request of both clients, on the target check, and on the `/metrics`
scrape when that goes to the target's own origin (as the API key does).

A secret stays off the command line, like the API key: a `$VAR` (or `${VAR}`) in a VALUE is read from
the environment of each process that sends (so workers on other hosts read their own) — the whole
value (`$GATEWAY_KEY`) or a part of it (`Bearer $TOKEN`, as a shell would); `$$` is a literal `$`.
Only header NAMES reach run.json; values are never logged.

`--server-metrics-header` is parsed here too (`option` names it in each mistake): headers of the
`/metrics` scrape alone (loadgen/monitors/servermetrics.py), for a page that wants credentials of its
own; `overlay` lets them replace the key's or a `--header`'s of the same name there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from core.errors import OptionError

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")  # `$$`: a literal `$`
#: The request's framing and content are the client's; a header of the same name would break it.
RESERVED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "content-type", "accept", "accept-encoding"}
)


def parse(
    values: Iterable[str] | None, id_header: str | None = None, option: str = "--header"
) -> list[tuple[str, str]]:
    """(name, value as written) per `option` given; an OptionError naming the one that is wrong."""
    out: list[tuple[str, str]] = []
    for raw in values or ():
        name, sep, value = str(raw).partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not _TOKEN.match(name):
            raise OptionError(
                f"{option}: '{name or raw}' is not 'NAME: VALUE' (e.g. 'X-Api-Key: $GATEWAY_KEY')"
            )
        if name.lower() in RESERVED:
            raise OptionError(
                f"{option}: {name} is set by the client itself (the request's framing and body, the answer's encoding)"
            )
        if id_header and name.lower() == id_header.lower():
            raise OptionError(
                f"{option}: {name} carries each request's id (--request-id-header); name another"
            )
        if any(n.lower() == name.lower() for n, _ in out):
            raise OptionError(f"{option}: {name} is given twice")
        if "\r" in value or "\n" in value:
            raise OptionError(f"{option}: {name}'s value holds a line break")
        out.append((name, value))
    return out


def variables(value: str) -> list[str]:
    """The environment variables a value names (`$VAR`, `${VAR}`, anywhere in it), in order."""
    return [m.group(1) or m.group(2) for m in _VAR.finditer(value) if m.group(0) != "$$"]


def _expand(value: str, environ: Mapping[str, str]) -> str | None:
    """The value with each variable read from `environ` (None: one of them is unset or empty here)."""
    if any(not environ.get(v) for v in variables(value)):
        return None
    return _VAR.sub(lambda m: "$" if m.group(0) == "$$" else environ[m.group(1) or m.group(2)], value)


def check_set(
    headers: list[tuple[str, str]], environ: Mapping[str, str] = os.environ, option: str = "--header"
) -> None:
    """Before a run: every `$VAR` a header names is set here (each worker reads its own)."""
    for name, value in headers:
        for var in variables(value):
            if not environ.get(var):
                raise OptionError(f"{option}: {name} takes its value from ${var}, which is not set")


def resolve(headers: list[tuple[str, str]], environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The headers to send: their `$VAR`s read now (a variable unset in this process: the header left out)."""
    out = {}
    for name, value in headers:
        if (sent := _expand(value, environ)) is not None:
            out[name] = sent
    return out


def static_headers(api_key: str | None, extra: Mapping[str, str]) -> dict[str, str]:
    """What every request to the target carries besides its body's own: the API key as a Bearer
    token, then `--header`s; an `Authorization` among them replaces the Bearer (another scheme)."""
    out = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    for name, value in extra.items():
        out["Authorization" if name.lower() == "authorization" else name] = value
    return out


def overlay(base: Mapping[str, str], over: Mapping[str, str]) -> dict[str, str]:
    """`base` with `over`'s headers on top: one of the same name, whatever its case, replaces base's
    (HTTP names are case-insensitive: two spellings would send the header twice)."""
    replaced = {name.lower() for name in over}
    return {**{n: v for n, v in base.items() if n.lower() not in replaced}, **over}
