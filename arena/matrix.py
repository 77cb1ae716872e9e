"""The matrix file: targets (and their parameter grids) × datasets × shapes × SLOs × repeats → cells.

Everything a run could trip over later — an unknown key, a bad duration, a template naming a
placeholder that does not exist, a grid value no command uses, an unknown dataset or SLO, a
launch command that is not installed — is found here, before any process starts, and reported as
one line naming the file, its line and the key (`MatrixError`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import shlex
import shutil
import string
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arena.yamlnodes import LineDict, load_yaml

ROOT = Path(__file__).resolve().parent.parent
BUILTIN_PLACEHOLDERS = ("port", "host", "python", "root")
HOST = "127.0.0.1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

TOP_KEYS = ("name", "description", "results", "targets", "datasets", "shapes", "slos", "repeats")
TOP_KEYS += ("processes", "load", "analysis")
TARGET_KEYS = ("label", "url", "launch", "simserver", "grid", "env", "health", "startup_timeout")
TARGET_KEYS += ("engine", "model")
SIMSERVER_KEYS = ("profile", "config", "set", "seed", "args")
# Shape entries: key → load-path flag (docs/shapes.md, docs/load.md). `args` passes anything else.
SHAPE_FLAGS = {
    "shape": "--shape",
    "users": "-u",
    "spawn_rate": "-r",
    "step_users": "--step-users",
    "step_interval": "--step-interval",
    "max_users": "--max-users",
    "rate": "--rate",
    "arrival": "--arrival",
    "burstiness": "--burstiness",
    "max_concurrency": "--max-concurrency",
    "stages": "--stages",
    "warmup": "--warmup",
    "cooldown": "--cooldown",
    "sweep_stages": "--sweep-stages",
    "sweep_stage_duration": "--sweep-stage-duration",
    "sweep_concurrency": "--sweep-concurrency",
    "trace_file": "--trace-file",
    "time_scale": "--time-scale",
}
LOAD_FLAGS = {
    "max_tokens": "--max-tokens",
    "ignore_eos": "--ignore-eos",
    "order": "--order",
    "user": "--user",
    "endpoint": "--endpoint",
    "think_time": "--think-time",
    "seed": "--seed",
    "request_timeout": "--request-timeout",
    "client": "--client",
    "model": "--model",
    "api_key_env": "--api-key-env",
}
ANALYSIS_KEYS = ("plots", "attain_target")


class MatrixError(ValueError):
    """A mistake in the matrix: one line naming the place (`file:line: key: what is expected`)."""


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

    def command(self, port: int) -> list[str]:
        values = {"port": str(port), "host": HOST, "python": sys.executable, "root": str(ROOT)}
        return [tok.format_map(values) for tok in self.launch]

    def describe(self) -> str:
        return self.url or shlex.join(self.launch)


@dataclass(frozen=True)
class Shape:
    label: str
    args: tuple[str, ...]
    duration_s: float


@dataclass(frozen=True)
class Cell:
    """One run: a configuration × dataset × shape, one repeat (1-based)."""

    index: int
    target: Target
    dataset: str
    shape: Shape
    repeat: int
    signature: str = field(default="", compare=False)

    @property
    def id(self) -> str:
        raw = f"{self.target.label}__{self.dataset}__{self.shape.label}__r{self.repeat}"
        return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-")

    @property
    def title(self) -> str:
        return f"{self.target.label} · {self.dataset} · {self.shape.label} · repeat {self.repeat}"


@dataclass
class Matrix:
    name: str
    path: Path
    description: str
    targets: list[Target]
    datasets: list[str]
    shapes: list[Shape]
    slos: list[str]
    repeats: int
    processes: int
    load_args: list[str]
    results: str | None
    plots: bool
    attain_target: float | None

    def cells(self) -> list[Cell]:
        """Repeat-major, then dataset and shape, targets innermost: the configurations one cell
        compares run back to back (fairest on a noisy machine), and an interruption leaves whole repeats."""
        out: list[Cell] = []
        for rep in range(1, self.repeats + 1):
            for ds, shape, target in itertools.product(self.datasets, self.shapes, self.targets):
                sig = self._signature(target, ds, shape)
                out.append(Cell(len(out) + 1, target, ds, shape, rep, sig))
        return out

    def _signature(self, target: Target, dataset: str, shape: Shape) -> str:
        """What a finished run must have been run with to count for this cell on a rerun."""
        facts = [target.url, list(target.launch), list(target.env), dataset, list(shape.args)]
        facts += [self.load_args, self.slos[0], self.processes]
        return hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:16]


def parse_duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = DURATION_RE.match(str(value)) if isinstance(value, str) else None
    if not m or float(m.group(1)) <= 0:
        raise MatrixError(f"{where}: '{value}' is not a duration (expected e.g. 45s, 500ms, 2m)")
    return float(m.group(1)) * UNIT_S[m.group(2)]


class _Ctx:
    """Names places in the file: `arena.yaml:12: targets[1].launch`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def at(self, node: Any, key: str | int | None, name: str) -> str:
        line = node.line_of(key) if hasattr(node, "line_of") else getattr(node, "line", None)
        return f"{self.path}:{line}: {name}" if line else f"{self.path}: {name}"

    def keys(self, node: Any, allowed: tuple[str, ...], name: str) -> None:
        if not isinstance(node, dict):
            raise MatrixError(f"{self.at(node, None, name)}: expected a mapping")
        for k in node:
            if k not in allowed:
                raise MatrixError(
                    f"{self.at(node, k, f'{name}.{k}' if name else str(k))}: unknown key (known: {', '.join(allowed)})"
                )


def _str(ctx: _Ctx, node: dict, key: str, name: str, default: str | None = None) -> str | None:
    v = node.get(key, default)
    if v is not None and not isinstance(v, str):
        raise MatrixError(f"{ctx.at(node, key, name)}: expected a string, got {v!r}")
    return v


def _int(ctx: _Ctx, node: dict, key: str, name: str, default: int, low: int) -> int:
    v = node.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise MatrixError(f"{ctx.at(node, key, name)}: expected a whole number ≥ {low}, got {v!r}")
    return v


def _list(ctx: _Ctx, node: dict, key: str, name: str, required: bool) -> list:
    v = node.get(key)
    if v is None:
        if required:
            raise MatrixError(f"{ctx.at(node, None, name)}: missing (expected a list)")
        return []
    if not isinstance(v, list) or (required and not v):
        raise MatrixError(f"{ctx.at(node, key, name)}: expected a non-empty list")
    return v


def _flags(ctx: _Ctx, node: dict, table: dict[str, str], name: str) -> list[str]:
    """Mapping entries → command-line flags; `args` (string or list) is appended verbatim."""
    out: list[str] = []
    for key, value in node.items():
        if key not in table:
            continue
        where = ctx.at(node, key, f"{name}.{key}")
        if isinstance(value, bool):
            if key != "ignore_eos":
                raise MatrixError(f"{where}: expected a value, got {value!r}")
            out += [table[key]] if value else []
        elif isinstance(value, str | int | float):
            out += [table[key], str(value)]
        else:
            raise MatrixError(f"{where}: expected a single value, got {value!r}")
    args = node.get("args")
    if isinstance(args, str):
        out += shlex.split(args)
    elif isinstance(args, list) and all(isinstance(a, str | int | float) for a in args):
        out += [str(a) for a in args]
    elif args is not None:
        raise MatrixError(f"{ctx.at(node, 'args', name + '.args')}: expected a string or a list of strings")
    return out


def _template_fields(ctx: _Ctx, where: str, text: str) -> set[str]:
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


def _launch_tokens(ctx: _Ctx, node: dict, name: str) -> list[str]:
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
        return toks + _flags(ctx, sim, {}, sname)
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


def _targets(ctx: _Ctx, items: list, node: dict) -> list[Target]:
    out: list[Target] = []
    for i, t in enumerate(items):
        name = f"targets[{i}]"
        ctx.keys(t, TARGET_KEYS, name)
        label = _str(ctx, t, "label", name + ".label")
        if not label:
            raise MatrixError(f"{ctx.at(t, None, name)}: missing 'label'")
        kinds = [k for k in ("url", "launch", "simserver") if k in t]
        if len(kinds) != 1:
            raise MatrixError(f"{ctx.at(t, None, name)}: give exactly one of url, launch, simserver")
        env = t.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(v, str | int | float) for v in env.values()):
            raise MatrixError(f"{ctx.at(t, 'env', name + '.env')}: expected a mapping of NAME: value")
        health = _str(ctx, t, "health", name + ".health", "/health") or "/health"
        timeout = parse_duration(t.get("startup_timeout", "120s"), ctx.at(t, "startup_timeout", name))
        model = _str(ctx, t, "model", name + ".model")
        grid = t.get("grid") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise MatrixError(f"{ctx.at(t, 'grid', name + '.grid')}: expected a mapping of NAME: [values]")
        for k in grid:
            if not str(k).isidentifier() or k in BUILTIN_PLACEHOLDERS:
                raise MatrixError(f"{ctx.at(grid, k, f'{name}.grid.{k}')}: not a usable placeholder name")
        if t.get("url") is not None:
            url = _str(ctx, t, "url", name + ".url") or ""
            if not re.match(r"^https?://[^/\s]+", url):
                raise MatrixError(
                    f"{ctx.at(t, 'url', name + '.url')}: expected http(s)://HOST:PORT, got '{url}'"
                )
            if grid:
                raise MatrixError(f"{ctx.at(t, 'grid', name + '.grid')}: a grid needs launch or simserver")
            out.append(
                Target(label, label, url=url.rstrip("/"), engine=t.get("engine") or "remote", model=model)
            )
            continue
        tokens = _launch_tokens(ctx, t, name)
        where = ctx.at(t, "launch" if "launch" in t else "simserver", name)
        used: set[str] = set()
        for tok in tokens:
            used |= _template_fields(ctx, where, tok)
        unknown = used - set(grid) - set(BUILTIN_PLACEHOLDERS)
        if unknown:
            raise MatrixError(
                f"{where}: unknown placeholder {{{sorted(unknown)[0]}}} (known: {', '.join(BUILTIN_PLACEHOLDERS)}"
                + (", " + ", ".join(grid) if grid else "")
                + ")"
            )
        if "{port}" not in " ".join(tokens) and "port" not in used:
            raise MatrixError(f"{where}: the launch command must take the port Goodput picks: add {{port}}")
        label_fields = _template_fields(ctx, ctx.at(t, "label", name + ".label"), label)
        bad = label_fields - set(grid)
        if bad:
            raise MatrixError(
                f"{ctx.at(t, 'label', name + '.label')}: unknown placeholder {{{sorted(bad)[0]}}}"
            )
        unused = set(grid) - used
        if unused and "simserver" not in t:
            raise MatrixError(
                f"{ctx.at(t, 'grid', name + '.grid')}: grid key '{sorted(unused)[0]}' is not used in the launch command"
            )
        engine = t.get("engine") or (
            "simserver" if "simserver" in t else Path(tokens[0]).name if "{" not in tokens[0] else ""
        )
        for combo in itertools.product(*grid.values()) if grid else [()]:
            params = dict(zip(grid, combo, strict=True))
            values = {k: _yaml_scalar(v) for k, v in params.items()}
            keep = {k: "{" + k + "}" for k in BUILTIN_PLACEHOLDERS}
            toks = [tok.format_map({**keep, **values}) for tok in tokens]
            if "simserver" in t:  # grid keys no placeholder uses become profile overrides
                toks += [x for k in sorted(set(grid) - used) for x in ("--set", f"{k}={values[k]}")]
            lab = label.format_map(values) if label_fields else label
            if params and not label_fields:
                lab += "[" + ",".join(f"{k}={values[k]}" for k in grid) + "]"
            env_items = tuple((str(k), str(v).format_map({**keep, **values})) for k, v in env.items())
            _check_executable(where, toks[0])
            engine_text = engine if engine else Path(toks[0]).name
            out.append(
                Target(
                    lab,
                    label,
                    None,
                    tuple(toks),
                    env_items,
                    health,
                    timeout,
                    tuple(params.items()),
                    engine_text,
                    model,
                )
            )
    labels = [t.label for t in out]
    ids = [re.sub(r"[^A-Za-z0-9._-]+", "-", x) for x in labels]
    for i, x in enumerate(ids):
        if ids.index(x) != i:
            raise MatrixError(
                f"{ctx.at(node, 'targets', 'targets')}: configuration labels '{labels[ids.index(x)]}' and '{labels[i]}' "
                "collide; make them distinct"
            )
    return out


def _check_executable(where: str, exe: str) -> None:
    if exe == "{python}" or "{" in exe:
        return
    if shutil.which(exe) is None and not Path(exe).is_file():
        raise MatrixError(f"{where}: launch command '{exe}' not found (not on PATH, not a file)")


def _shapes(ctx: _Ctx, items: list) -> list[Shape]:
    out: list[Shape] = []
    for i, s in enumerate(items):
        name = f"shapes[{i}]"
        ctx.keys(s, ("label", "duration", "args", *SHAPE_FLAGS), name)
        if "duration" not in s:
            raise MatrixError(
                f"{ctx.at(s, None, name)}: missing 'duration' (how long each run lasts, e.g. 45s)"
            )
        dur = parse_duration(s["duration"], ctx.at(s, "duration", name + ".duration"))
        label = _str(ctx, s, "label", name + ".label") or str(s.get("shape") or f"shape{i + 1}")
        if not NAME_RE.match(label):
            raise MatrixError(f"{ctx.at(s, 'label', name + '.label')}: use letters, digits, . _ - only")
        args = [*_flags(ctx, s, SHAPE_FLAGS, name), "-t", f"{dur:g}s"]
        out.append(Shape(label, tuple(args), dur))
    if len({s.label for s in out}) != len(out):
        raise MatrixError(f"{ctx.path}: shapes: labels must be distinct")
    return out


def _datasets(ctx: _Ctx, items: list, node: dict) -> list[str]:
    from workloads import WorkloadError, load_workload

    out = []
    for i, d in enumerate(items):
        where = ctx.at(items, i, f"datasets[{i}]")
        if not isinstance(d, str) or not d:
            raise MatrixError(f"{where}: expected a dataset spec (e.g. agentic, random)")
        if not d.startswith("hf:"):
            try:
                load_workload(d)
            except WorkloadError as e:
                raise MatrixError(f"{where}: {e}") from None
        out.append(d)
    if len(set(out)) != len(out):
        raise MatrixError(f"{ctx.at(node, 'datasets', 'datasets')}: a dataset is listed twice")
    return out


def _slos(ctx: _Ctx, node: dict) -> list[str]:
    from analysis.slo import SloError, parse_slo

    items = node.get("slos", ["chat"])
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not items:
        raise MatrixError(f"{ctx.at(node, 'slos', 'slos')}: expected a list of SLO profiles or specs")
    names = []
    for i, spec in enumerate(items):
        try:
            names.append(parse_slo(str(spec)).name)
        except SloError as e:
            raise MatrixError(f"{ctx.at(node, 'slos', f'slos[{i}]')}: {e}") from None
    if len(set(names)) != len(names):
        raise MatrixError(f"{ctx.at(node, 'slos', 'slos')}: two SLOs share the name '{names[0]}'")
    return [str(s) for s in items]


def load_matrix(path: str | Path) -> Matrix:
    p = Path(path)
    ctx = _Ctx(p)
    node = load_yaml(p, MatrixError)
    ctx.keys(node, TOP_KEYS, "")
    name = _str(ctx, node, "name", "name") or p.stem
    if not NAME_RE.match(name):
        raise MatrixError(f"{ctx.at(node, 'name', 'name')}: '{name}' — use letters, digits, . _ - only")
    targets = _targets(ctx, _list(ctx, node, "targets", "targets", True), node)
    datasets = _datasets(ctx, _list(ctx, node, "datasets", "datasets", True), node)
    shapes = _shapes(ctx, _list(ctx, node, "shapes", "shapes", True))
    load = node.get("load") or LineDict({})
    ctx.keys(load, ("args", *LOAD_FLAGS), "load")
    analysis = node.get("analysis") or LineDict({})
    ctx.keys(analysis, ANALYSIS_KEYS, "analysis")
    plots = analysis.get("plots", False)
    if not isinstance(plots, bool):
        raise MatrixError(f"{ctx.at(analysis, 'plots', 'analysis.plots')}: expected true/false")
    target = analysis.get("attain_target")
    if target is not None and (
        isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target <= 1
    ):
        raise MatrixError(
            f"{ctx.at(analysis, 'attain_target', 'analysis.attain_target')}: expected a fraction in (0, 1]"
        )
    return Matrix(
        name=name,
        path=p,
        description=_str(ctx, node, "description", "description") or "",
        targets=targets,
        datasets=datasets,
        shapes=shapes,
        slos=_slos(ctx, node),
        repeats=_int(ctx, node, "repeats", "repeats", 1, 1),
        processes=_int(ctx, node, "processes", "processes", 0, 0),
        load_args=_flags(ctx, load, LOAD_FLAGS, "load"),
        results=_str(ctx, node, "results", "results"),
        plots=plots,
        attain_target=float(target) if target is not None else None,
    )
