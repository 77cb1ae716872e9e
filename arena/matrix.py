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
from dataclasses import dataclass, field
from pathlib import Path

from arena.places import (
    Ctx,
    LineDict,
    MatrixError,
    flags,
    get_int,
    get_list,
    get_str,
    load_yaml,
    parse_duration,
)
from arena.targets import HOST, ROOT, Target, parse_targets

__all__ = ["HOST", "ROOT", "Cell", "Matrix", "MatrixError", "Shape", "Target", "load_matrix"]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
TOP_KEYS = ("name", "description", "results", "targets", "datasets", "shapes", "slos", "repeats")
TOP_KEYS += ("processes", "load", "analysis")
# Shape entries: key → load-path flag (README.md § Load shapes, README.md § Running a load test). `args` passes anything else.
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
    "search_by": "--search-by",
    "search_precision": "--search-precision",
    "search_probe_duration": "--search-probe-duration",
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
        facts += [self.load_args, self.processes]  # not the SLOs: they judge a run, they do not change it
        return hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:16]


def _shapes(ctx: Ctx, items: list) -> list[Shape]:
    out: list[Shape] = []
    for i, s in enumerate(items):
        name = f"shapes[{i}]"
        ctx.keys(s, ("label", "duration", "args", *SHAPE_FLAGS), name)
        if "duration" not in s:
            raise MatrixError(
                f"{ctx.at(s, None, name)}: missing 'duration' (how long each run lasts, e.g. 45s)"
            )
        dur = parse_duration(s["duration"], ctx.at(s, "duration", name + ".duration"))
        label = get_str(ctx, s, "label", name + ".label") or str(s.get("shape") or f"shape{i + 1}")
        if not NAME_RE.match(label):
            raise MatrixError(f"{ctx.at(s, 'label', name + '.label')}: use letters, digits, . _ - only")
        args = [*flags(ctx, s, SHAPE_FLAGS, name), "-t", f"{dur:g}s"]
        out.append(Shape(label, tuple(args), dur))
    if len({s.label for s in out}) != len(out):
        raise MatrixError(f"{ctx.path}: shapes: labels must be distinct")
    return out


def _datasets(ctx: Ctx, items: list, node: dict) -> list[str]:
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


def _slos(ctx: Ctx, node: dict) -> list[str]:
    from core.slo import SloError, parse_slo

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
    ctx = Ctx(p)
    node = load_yaml(p, MatrixError)
    ctx.keys(node, TOP_KEYS, "")
    name = get_str(ctx, node, "name", "name") or p.stem
    if not NAME_RE.match(name):
        raise MatrixError(f"{ctx.at(node, 'name', 'name')}: '{name}' — use letters, digits, . _ - only")
    targets = parse_targets(ctx, get_list(ctx, node, "targets", "targets", True), node)
    datasets = _datasets(ctx, get_list(ctx, node, "datasets", "datasets", True), node)
    shapes = _shapes(ctx, get_list(ctx, node, "shapes", "shapes", True))
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
        description=get_str(ctx, node, "description", "description") or "",
        targets=targets,
        datasets=datasets,
        shapes=shapes,
        slos=_slos(ctx, node),
        repeats=get_int(ctx, node, "repeats", "repeats", 1, 1),
        processes=get_int(ctx, node, "processes", "processes", 0, 0),
        load_args=flags(ctx, load, LOAD_FLAGS, "load"),
        results=get_str(ctx, node, "results", "results"),
        plots=plots,
        attain_target=float(target) if target is not None else None,
    )
