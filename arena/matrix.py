"""The matrix file: targets (and their parameter grids) × datasets × shapes × SLOs × repeats → cells.

Everything a run could trip over later — an unknown key, a bad duration, a template naming a
placeholder that does not exist, a grid value no command uses, an unknown dataset or SLO, a
launch command that is not installed — is found here, before any process starts, and reported as
one line naming the file, its line and the key (`MatrixError`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from arena import mixes
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
    "api": "--api",
    "api_path": "--api-path",
    "think_time": "--think-time",
    "seed": "--seed",
    "request_timeout": "--request-timeout",
    "client": "--client",
    "model": "--model",
    "models": "--models",
    "api_key_env": "--api-key-env",
}
ANALYSIS_KEYS = ("plots", "attain_target")


@dataclass(frozen=True)
class Shape:
    label: str
    args: tuple[str, ...]
    duration_s: float
    params: tuple[tuple[str, object], ...] = ()  # the matrix's keys, for a mix class's share (arena/mixes.py)


@dataclass(frozen=True)
class Cell:
    """One run: a configuration × dataset × shape, one repeat (1-based)."""

    index: int
    target: Target
    dataset: str
    shape: Shape
    repeat: int
    signature: str = field(default="", compare=False)
    mix: str = ""  # a mix entry's --mix value (`dataset` is then its label)
    alone: str = ""  # the class of that mix run alone at its share of the load (the interference view)

    @property
    def dataset_part(self) -> str:
        return f"{self.dataset}.alone-{self.alone}" if self.alone else self.dataset

    @property
    def id(self) -> str:
        raw = f"{self.target.label}__{self.dataset_part}__{self.shape.label}__r{self.repeat}"
        return re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-")

    @property
    def title(self) -> str:
        alone = f" · {self.alone} alone" if self.alone else ""
        return f"{self.target.label} · {self.dataset}{alone} · {self.shape.label} · repeat {self.repeat}"


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
    mixes: dict[str, mixes.MixEntry] = field(default_factory=dict)  # dataset label → its mix
    # (mix label, shape label, class) → the class's alone shape (arena/mixes.py); None: it held no user
    alone_shapes: dict[tuple[str, str, str], Shape | None] = field(default_factory=dict)

    def cells(self) -> list[Cell]:
        """Repeat-major, then dataset and shape, targets innermost: the configurations one cell
        compares run back to back (fairest on a noisy machine), and an interruption leaves whole repeats.
        A mix's alone cells (interference) come after the repeat's other cells."""
        out: list[Cell] = []
        for rep in range(1, self.repeats + 1):
            for ds, shape, target in itertools.product(self.datasets, self.shapes, self.targets):
                spec = self.mixes[ds].spec if ds in self.mixes else ""
                sig = self._signature(target, ds, shape, spec)
                out.append(Cell(len(out) + 1, target, ds, shape, rep, sig, mix=spec))
            for (ds, _shape, name), alone in self.alone_shapes.items():
                for target in self.targets if alone is not None else ():
                    spec = self.mixes[ds].spec
                    sig = self._signature(target, ds, alone, spec, name)
                    out.append(Cell(len(out) + 1, target, ds, alone, rep, sig, mix=spec, alone=name))
        return out

    def _signature(self, target: Target, dataset: str, shape: Shape, mix: str = "", alone: str = "") -> str:
        """What a finished run must have been run with to count for this cell on a rerun."""
        facts = [target.url, list(target.launch), list(target.env), dataset, list(shape.args)]
        facts += [self.load_args, self.processes]  # not the SLOs: they judge a run, they do not change it
        facts += [mix, alone] if mix else []  # (cells without a mix keep their signatures)
        if target.backends is not None or target.server_metrics:  # (nor do targets without these)
            facts += [dataclasses.asdict(target.backends) if target.backends else None, target.server_metrics]
        facts += [list(target.load_args)] if target.load_args else []
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
        params = tuple((k, v) for k, v in s.items() if k in SHAPE_FLAGS or k == "args")
        out.append(Shape(label, tuple(args), dur, params))
    if len({s.label for s in out}) != len(out):
        raise MatrixError(f"{ctx.path}: shapes: labels must be distinct")
    return out


def _datasets(ctx: Ctx, items: list, node: dict) -> list[str]:
    from workloads import WorkloadError, load_workload

    out = []
    for i, d in enumerate(items):
        where = ctx.at(items, i, f"datasets[{i}]")
        if isinstance(d, dict):  # a mix: checked by _mixes once the SLOs are known
            out.append(str(d.get("label") or ""))
            continue
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


def _mixes(ctx: Ctx, items: list, shapes: list[Shape], slo: str) -> tuple[dict, dict]:
    """The mix entries of `datasets` (by label) and, with `interference: true`, each class's alone shape."""
    entries: dict[str, mixes.MixEntry] = {}
    alone: dict[tuple[str, str, str], Shape | None] = {}
    for i, d in enumerate(items):
        if isinstance(d, dict):
            m = entries[str(d.get("label") or "")] = mixes.entry(ctx, d, f"datasets[{i}]", slo)
            for shape, (name, _) in itertools.product(shapes, m.classes if m.interference else ()):
                alone[(m.label, shape.label, name)] = mixes.alone_shape(ctx, shape, m, name, SHAPE_FLAGS)
    return entries, alone


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
    slos = _slos(ctx, node)
    load_args = flags(ctx, load, LOAD_FLAGS, "load")
    paged = [t.label for t in targets if t.server_metrics]
    if paged and any(a.split("=")[0] == "--server-metrics" for a in load_args):
        raise MatrixError(
            f"{ctx.at(load, 'args', 'load.args')}: --server-metrics is given here and by target '{paged[0]}'"
            " (server_metrics:); give each target its own"
        )
    twice = [t.label for t in targets if t.server_metrics and "--server-metrics" in t.load_args]
    if twice:
        raise MatrixError(
            f"{ctx.path}: target '{twice[0]}' gives --server-metrics in load_args and server_metrics"
        )
    entries, alone = _mixes(ctx, get_list(ctx, node, "datasets", "datasets", True), shapes, slos[0])
    return Matrix(
        mixes=entries,
        alone_shapes=alone,
        name=name,
        path=p,
        description=get_str(ctx, node, "description", "description") or "",
        targets=targets,
        datasets=datasets,
        shapes=shapes,
        slos=slos,
        repeats=get_int(ctx, node, "repeats", "repeats", 1, 1),
        processes=get_int(ctx, node, "processes", "processes", 0, 0),
        load_args=load_args,
        results=get_str(ctx, node, "results", "results"),
        plots=plots,
        attain_target=float(target) if target is not None else None,
    )
