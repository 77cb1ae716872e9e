"""Targets: a URL, or a launch command (`launch:` or the `simserver:` shorthand) templated over a grid.

Placeholders are `{port}` (a free port the arena picks per cell), `{host}` (127.0.0.1),
`{python}` (this interpreter), `{root}` (the repository), `{metrics_port}` (a second free port),
the replicas of a router target (arena/backends.py) and the grid's keys; each combination
of grid values is one configuration with its own label. Templates are checked here — an unknown
placeholder, a grid key no command uses, a missing `{port}` — before anything runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import shlex
import shutil
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena import backends
from arena.backends import Backends
from arena.places import Ctx, LineDict, MatrixError, flags, get_launched, get_str

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_PLACEHOLDERS = ("port", "host", "python", "root", "metrics_port", *backends.ROUTER_ONLY)
# what a replica's own command (and env) can take: `{replica}` is its index, 0, 1, … (CUDA_VISIBLE_DEVICES)
ENGINE_PLACEHOLDERS = ("port", "host", "python", "root", "replica")
RESERVED = (*BUILTIN_PLACEHOLDERS, "replica")  # filled at launch, never by the grid
HOST = "127.0.0.1"
TARGET_KEYS = ("label", "url", "launch", "simserver", "grid", "env", "health", "startup_timeout")
TARGET_KEYS += ("engine", "model", "backends", "server_metrics", "load_args")
SIMSERVER_KEYS = ("profile", "config", "set", "seed", "args")


@dataclass(frozen=True)
class Ports:
    """What one cell's start fills in: the target's port, a second free one for a separate metrics
    page, and the URLs of the replicas started for it (a router target)."""

    port: int | str
    metrics_port: int | str = "METRICS_PORT"
    backends: tuple[str, ...] = ()

    def values(self) -> dict[str, str]:
        return {
            "port": str(self.port),
            "metrics_port": str(self.metrics_port),
            "host": HOST,
            "python": sys.executable,
            "root": str(ROOT),
            "backends": ",".join(self.backends),
            "backend_metrics": ",".join(u + "/metrics" for u in self.backends),
        }


def _ports(p: Ports | int | str) -> Ports:
    return p if isinstance(p, Ports) else Ports(p)


@dataclass(frozen=True)
class Target:
    """One configuration: a URL, or a launch command (placeholders left for the port) and its grid values."""

    label: str
    base: str
    url: str | None = None
    launch: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    health: str = "/health"
    startup_timeout_s: float = 120.0
    params: tuple[tuple[str, Any], ...] = ()
    engine: str = ""
    model: str | None = None
    backends: Backends | None = None  # the replicas started before it (a router target)
    server_metrics: str = ""  # the run's --server-metrics; a launched target's is filled per cell
    load_args: tuple[str, ...] = ()  # load options for this target only, after the matrix's `load:`

    def command(self, ports: Ports | int | str) -> list[str]:
        p = _ports(ports)
        return backends.spread(self.launch, p.values(), list(p.backends))

    def environment(self, ports: Ports | int | str) -> dict[str, str]:
        return {k: v.format_map(_ports(ports).values()) for k, v in self.env}

    def metrics_pages(self, ports: Ports | int | str) -> str:
        """The load run's `--server-metrics` ("": none given)."""
        return self.server_metrics if self.url else self.server_metrics.format_map(_ports(ports).values())

    def describe(self) -> str:
        """The URL, or the command as a reader would type it (`{port}` stays: it differs per cell)."""
        if self.url:
            return self.url
        values = {
            "port": "{port}",
            "host": HOST,
            "python": "python",
            "root": ".",
            "metrics_port": "{metrics_port}",
        }
        values |= {"backends": "{backends}", "backend_metrics": "{backend_metrics}", "replica": "{replica}"}
        toks = backends.spread(self.launch, values, ["{backends}"])
        text = " ".join(t if " " not in t else shlex.quote(t) for t in toks)
        if self.backends is None:
            return text
        b = self.backends
        engine = " ".join(t if " " not in t else shlex.quote(t) for t in b.command(values))
        return f"{text} — in front of {b.replicas} × {engine}"


def _template_fields(ctx: Ctx, where: str, text: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise MatrixError(
            f"{where}: bad template '{text}' ({e}; write {{{{ and }}}} for literal braces)"
        ) from None
    names = set()
    for _, fname, spec, conv in parsed:
        if fname is None:
            continue
        if not fname.isidentifier() or spec or conv:
            raise MatrixError(f"{where}: bad placeholder '{{{fname}}}' in '{text}' (expected {{name}})")
        names.add(fname)
    return names


def _launch_tokens(ctx: Ctx, node: dict, name: str) -> list[str]:
    if "simserver" in node:
        sim = node["simserver"]
        sname = f"{name}.simserver"
        if isinstance(sim, str):
            sim = LineDict({"profile": sim}, getattr(sim, "line", None))
        ctx.keys(sim, SIMSERVER_KEYS, sname)
        toks = ["{python}", "-m", "simserver", "--host", "{host}", "--port", "{port}"]
        for key in ("profile", "config", "seed"):
            if key in sim:
                if not isinstance(sim[key], str | int) or isinstance(sim[key], bool):
                    raise MatrixError(f"{ctx.at(sim, key, f'{sname}.{key}')}: expected a single value")
                toks += [f"--{key}", str(sim[key])]
        sets = sim.get("set") or {}
        if not isinstance(sets, dict):
            raise MatrixError(f"{ctx.at(sim, 'set', sname + '.set')}: expected a mapping of KEY: VALUE")
        for k, v in sets.items():
            toks += ["--set", f"{k}={_yaml_scalar(v)}"]
        return toks + flags(ctx, sim, {}, sname)
    launch = node["launch"]
    if isinstance(launch, str):
        try:
            return shlex.split(launch)
        except ValueError as e:
            raise MatrixError(f"{ctx.at(node, 'launch', name + '.launch')}: {e}") from None
    if isinstance(launch, list) and launch and all(isinstance(t, str | int | float) for t in launch):
        return [str(t) for t in launch]
    raise MatrixError(f"{ctx.at(node, 'launch', name + '.launch')}: expected a command string or a list")


def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def parse_targets(ctx: Ctx, items: list, node: dict) -> list[Target]:
    out: list[Target] = []
    for i, t in enumerate(items):
        out += _parse_target(ctx, t, f"targets[{i}]")
    labels = [t.label for t in out]
    ids = [re.sub(r"[^A-Za-z0-9._-]+", "-", x) for x in labels]
    for i, x in enumerate(ids):
        if ids.index(x) != i:
            raise MatrixError(
                f"{ctx.at(node, 'targets', 'targets')}: configuration labels '{labels[ids.index(x)]}' and '{labels[i]}' "
                "collide; make them distinct"
            )
    return out


def _parse_target(ctx: Ctx, t: dict, name: str) -> list[Target]:
    """One `targets[i]` entry: a URL target, or one launch target per combination of its grid."""
    ctx.keys(t, TARGET_KEYS, name)
    label = get_str(ctx, t, "label", name + ".label")
    if not label:
        raise MatrixError(f"{ctx.at(t, None, name)}: missing 'label'")
    kinds = [k for k in ("url", "launch", "simserver") if k in t]
    if len(kinds) != 1:
        raise MatrixError(f"{ctx.at(t, None, name)}: give exactly one of url, launch, simserver")
    env, health, timeout = get_launched(ctx, t, name)
    model = get_str(ctx, t, "model", name + ".model")
    load_args = _load_args(ctx, t, name)
    grid = t.get("grid") or {}
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        raise MatrixError(f"{ctx.at(t, 'grid', name + '.grid')}: expected a mapping of NAME: [values]")
    for k in grid:
        if not str(k).isidentifier() or k in RESERVED:
            raise MatrixError(f"{ctx.at(grid, k, f'{name}.grid.{k}')}: not a usable placeholder name")
    if t.get("url") is not None:
        url = get_str(ctx, t, "url", name + ".url") or ""
        if not re.match(r"^https?://[^/\s]+", url):
            raise MatrixError(f"{ctx.at(t, 'url', name + '.url')}: expected http(s)://HOST:PORT, got '{url}'")
        if grid:
            raise MatrixError(f"{ctx.at(t, 'grid', name + '.grid')}: a grid needs launch or simserver")
        pages = get_str(ctx, t, "server_metrics", name + ".server_metrics") or ""
        if _template_fields(ctx, ctx.at(t, "server_metrics", name + ".server_metrics"), pages):
            raise MatrixError(
                f"{ctx.at(t, 'server_metrics', name + '.server_metrics')}: a running server's pages are "
                "given as they are (placeholders belong to launched targets)"
            )
        engine = t.get("engine") or "remote"
        return [
            Target(label, label, url=url.rstrip("/"), engine=engine, model=model, server_metrics=pages,
                   load_args=load_args)
        ]  # fmt: skip
    base = Target(label, label, env=tuple(env.items()), health=health, startup_timeout_s=timeout, model=model,
                  load_args=load_args)  # fmt: skip
    return _launch_targets(ctx, t, name, base, grid)


def _load_args(ctx: Ctx, t: dict, name: str) -> tuple[str, ...]:
    """`load_args:` (a command-line string or a list): load options for this target only — what a router
    that keys on sessions (`--session-header`) or a server that speaks another API (`--api`) needs."""
    raw, where = t.get("load_args"), ctx.at(t, "load_args", name + ".load_args")
    if raw is None:
        return ()
    if isinstance(raw, str):
        try:
            return tuple(shlex.split(raw))
        except ValueError as e:
            raise MatrixError(f"{where}: {e}") from None
    if isinstance(raw, list) and all(
        isinstance(a, str | int | float) and not isinstance(a, bool) for a in raw
    ):
        return tuple(str(a) for a in raw)
    raise MatrixError(f"{where}: expected a string or a list of strings")


def _checked_placeholders(
    ctx: Ctx, t: dict, name: str, tokens: list[str], label: str, grid: dict, elsewhere: set[str]
) -> tuple[set[str], set[str]]:
    """The placeholders the command uses and those the label uses; an unknown or missing one is an error.
    `elsewhere`: the grid keys its replicas' command or its metrics pages use (a key used nowhere is an
    error, unless a simulated engine takes it as a profile override)."""
    kind = "launch" if "launch" in t else "simserver"
    where = ctx.at(t, kind, f"{name}.{kind}")
    used = _fields_of(ctx, where, tokens, BUILTIN_PLACEHOLDERS, grid)
    if "port" not in used:
        raise MatrixError(f"{where}: the launch command must take the port Goodput picks: add {{port}}")
    label_fields = _template_fields(ctx, ctx.at(t, "label", name + ".label"), label)
    bad = label_fields - set(grid)
    if bad:
        raise MatrixError(f"{ctx.at(t, 'label', name + '.label')}: unknown placeholder {{{sorted(bad)[0]}}}")
    env = t.get("env") or {}
    for k, v in env.items():
        where_env = ctx.at(env, k, f"{name}.env.{k}")
        extra = _template_fields(ctx, where_env, str(v)) - set(grid) - set(BUILTIN_PLACEHOLDERS)
        if extra:
            raise MatrixError(f"{where_env}: unknown placeholder {{{sorted(extra)[0]}}}")
    unused = set(grid) - used - elsewhere
    if unused and "simserver" not in t and "simserver" not in (t.get("backends") or {}):
        raise MatrixError(
            f"{ctx.at(t, 'grid', name + '.grid')}: grid key '{sorted(unused)[0]}' is not used in the launch command"
        )
    return used, label_fields


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _fill(template: str, values: dict[str, str]) -> str:
    """`template` with its grid placeholders filled and everything else still a template: the builtins
    (`{port}`, …) stay placeholders until launch, and literal braces (`{{`, `}}`: a JSON option such as
    vLLM's `--speculative-config '{{"num_speculative_tokens": {k}}}'`) and braces inside grid values stay
    escaped, so that the launch's own formatting yields them once."""
    out = []
    for literal, field, _, _ in string.Formatter().parse(template):
        out.append(_escape(literal))
        if field is not None:
            out.append("{" + field + "}" if field in RESERVED else _escape(values[field]))
    return "".join(out)


def _fields_of(ctx: Ctx, where: str, texts: list[str], known: tuple[str, ...], grid: dict) -> set[str]:
    """The placeholders `texts` use; one that is neither in `known` nor a grid key is an error."""
    used: set[str] = set()
    for text in texts:
        used |= _template_fields(ctx, where, text)
    unknown = used - set(grid) - set(known)
    if unknown:
        raise MatrixError(
            f"{where}: unknown placeholder {{{sorted(unknown)[0]}}} (known: {', '.join([*known, *grid])})"
        )
    return used


def _overrides(keys: set[str], values: dict[str, str]) -> list[str]:
    """Grid keys no placeholder uses, as a simulated engine's profile overrides."""
    return [x for k in sorted(keys) for x in ("--set", f"{k}={_escape(values[k])}")]


def _launch_targets(ctx: Ctx, t: dict, name: str, base: Target, grid: dict) -> list[Target]:
    """One target per combination of grid values, its placeholders filled but the builtins kept."""
    tokens = _launch_tokens(ctx, t, name)
    bnode = backends.parse(ctx, t, name)
    btokens = _launch_tokens(ctx, bnode, f"{name}.backends") if bnode is not None else []
    bwhere = ctx.at(t, "backends", f"{name}.backends")
    bused = _fields_of(ctx, bwhere, btokens + [str(v) for v in (bnode or {}).get("env", {}).values()],
                       ENGINE_PLACEHOLDERS, grid)  # fmt: skip
    if bnode is not None and "port" not in bused:
        raise MatrixError(f"{bwhere}: each replica's command must take the port Goodput picks: add {{port}}")
    pages = get_str(ctx, t, "server_metrics", name + ".server_metrics") or ""
    mused = _fields_of(
        ctx, ctx.at(t, "server_metrics", name + ".server_metrics"), [pages], BUILTIN_PLACEHOLDERS, grid
    )
    used, label_fields = _checked_placeholders(
        ctx, t, name, tokens, base.label, grid, (bused | mused) & set(grid)
    )
    backends.check_router(ctx, t, name, used, mused)
    kind = "launch" if "launch" in t else "simserver"
    where = ctx.at(t, kind, f"{name}.{kind}")
    engine = get_str(ctx, t, "engine", name + ".engine") or ("simserver" if "simserver" in t else "")
    out = []
    for combo in itertools.product(*grid.values()) if grid else [()]:
        params = dict(zip(grid, combo, strict=True))
        values = {k: _yaml_scalar(v) for k, v in params.items()}
        toks = [_fill(tok, values) for tok in tokens]
        spare = set(grid) - used - bused - mused  # grid keys no placeholder uses become profile overrides
        if "simserver" in t:
            toks += _overrides(spare, values)
        replicas = None
        if bnode is not None:
            btoks = [_fill(tok, values) for tok in btokens]
            btoks += _overrides(spare, values) if "simserver" in bnode else []
            _check_executable(bwhere, btoks[0])
            benv = tuple((str(k), _fill(str(v), values)) for k, v in (bnode.get("env") or {}).items())
            bengine = "simserver" if "simserver" in bnode else _engine_name(btoks)
            replicas = backends.build(ctx, bnode, name, tuple(btoks), benv, bengine)
        lab = base.label.format_map(values) if label_fields else base.label
        if params and not label_fields:
            lab += "[" + ",".join(f"{k}={values[k]}" for k in grid) + "]"
        env_items = tuple((str(k), _fill(str(v), values)) for k, v in base.env)
        _check_executable(where, toks[0])
        engine_text = engine or _engine_name(toks)
        if replicas is not None and not engine:
            engine_text += f" + {replicas.replicas}× {replicas.engine}"
        out.append(
            dataclasses.replace(
                base,
                label=lab,
                launch=tuple(toks),
                env=env_items,
                params=tuple(params.items()),
                engine=engine_text,
                backends=replicas,
                server_metrics=_fill(pages, values),
            )
        )
    return out


def _engine_name(tokens: list[str]) -> str:
    """`python -m vllm.entrypoints…` → `vllm`; `/usr/bin/text-generation-launcher …` → its name."""
    exe = Path(tokens[0]).name
    if (exe.startswith("python") or exe == "{python}") and len(tokens) > 2 and tokens[1] == "-m":
        return tokens[2].split(".")[0]
    return exe


def _check_executable(where: str, exe: str) -> None:
    exe = exe.replace("{python}", sys.executable).replace("{root}", str(ROOT)).replace("{host}", HOST)
    if "{" in exe:  # a grid value decides it: checked when the cell starts
        return
    if shutil.which(exe) is None and not Path(exe).is_file():
        raise MatrixError(f"{where}: launch command '{exe}' not found (not on PATH, not a file)")
