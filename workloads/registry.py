"""From a spec string to a loaded `Workload`: built-in sets and generators, files, hub sets.

Adding a built-in = one entry in BUILTINS plus a `generate(opts)` function in `workloads/gen/`.
A built-in with a shipped file (`datasets/NAME.jsonl`) loads that file when given no options; any
generator option builds the set in memory with the same code that wrote the file
(`python datasets/regenerate.py`), so `random` and `random:n=100` are the same requests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workloads.conversation import Conversation, Workload
from workloads.errors import WorkloadError
from workloads.gen import pictures
from workloads.sources import batch, chatlog, columns, jsonfile, sessions
from workloads.spec import Options, Spec, parse_spec
from workloads.stream import WorkloadStream

# The shipped sets: datasets/ beside the packages in a checkout (and an editable install); inside this
# package in a built wheel, where pyproject.toml maps datasets/ to workloads/datasets (a top-level
# package named `datasets` would shadow Hugging Face's).
_HERE = Path(__file__).resolve().parent
DATA_DIR = _HERE / "datasets" if (_HERE / "datasets").is_dir() else _HERE.parent / "datasets"
JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
FILE_LOADERS: dict[str, Callable] = {"batch": batch.load, "sharegpt": chatlog.load, "sessions": sessions.load}
SHAPES = {
    "batch": batch.SHAPE,
    "sharegpt": chatlog.SHAPE,
    "sessions": sessions.SHAPE,
    "columns": jsonfile.JSONL_SHAPE,
}


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    description: str
    generator: str  # "module:function", imported on first use
    shipped: str | None = None  # datasets/<file> holding the default set
    file_options: tuple[str, ...] = ()  # options the shipped file honours without regenerating

    def generate(self, opts: Options) -> list[Conversation]:
        module, _, func = self.generator.partition(":")
        return getattr(importlib.import_module(module), func)(opts)


BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin(
            "agentic",
            "coding-agent sessions: a long system prompt with tool definitions shared across sessions, "
            "tool results appended turn by turn, context growing (context=4096 default; 8192+ for longer)",
            "workloads.gen.agentic:generate",
            "agentic.jsonl",
            ("think",),
        ),
        Builtin(
            "random",
            "random-word prompts, lengths from configurable distributions",
            "workloads.gen.randomwords:generate_random",
            "random.jsonl",
        ),
        Builtin(
            "code",
            "code completion and editing requests carrying file contents",
            "workloads.gen.code:generate",
            "code.jsonl",
        ),
        Builtin("chat", "short single-turn chat prompts", "workloads.gen.chat:generate", "chat.jsonl"),
        Builtin(
            "shared-prefix",
            "G groups x prefix P tokens x suffix S tokens x output length (generator only)",
            "workloads.gen.randomwords:generate_shared_prefix",
        ),
    )
}

_CACHE: dict[tuple, Workload] = {}
_CACHE_SIZE = 8


def _fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _load_json_file(
    path: Path, opts: Options, name: str, limit: int | None
) -> tuple[list[Conversation], str]:
    """`limit` keeps the first N records (N sessions for session files, whose prefix lines come first)."""
    forced = opts.choice("format", "", ("batch", "sharegpt", "sessions", "columns"))
    records = _records(path, forced or None)
    if limit and (forced or (jsonfile.detect(records[0][1]) if records else "")) != "sessions":
        records = records[:limit]
    if not records:
        raise WorkloadError(f"{path}: no requests (empty dataset)")
    fmt = forced or jsonfile.detect(records[0][1])
    if fmt == "columns":
        cols = list(dict.fromkeys(k for _, r in records if isinstance(r, dict) for k in r))
        for where, r in records:
            if not isinstance(r, dict):
                raise WorkloadError(
                    f"{where}: not an object; expected {jsonfile.JSONL_SHAPE} with the mapped columns"
                )
        return columns.load_rows(records, cols, opts, name, str(path)), ""
    header: dict = {}
    if fmt == "sessions":
        convs = sessions.load(records, opts, name, header)[:limit]
    else:
        convs = FILE_LOADERS[fmt](records, opts, name)
    return convs, str(header.get("description", ""))


def _records(path: Path, fmt: str | None) -> list[tuple[str, object]]:
    """All records of a JSON/JSONL file; a bad line names the shape of the format seen so far."""
    out: list[tuple[str, object]] = []
    try:
        for record in jsonfile.read_records(path):
            out.append(record)
    except jsonfile.BadJson as e:
        known = fmt or (jsonfile.detect(out[0][1]) if out else "")
        raise WorkloadError(f"{e}; expected {SHAPES.get(known, jsonfile.JSONL_SHAPE)}") from None
    return out


def _load_file(spec: Spec, opts: Options) -> Workload:
    path = Path(spec.target).expanduser()
    if not path.exists():
        if "/" not in spec.target and not path.suffix:
            known = ", ".join(BUILTINS)
            raise WorkloadError(
                f"unknown dataset '{spec.target}': expected a built-in ({known}), a file path or hf:NAME"
            )
        raise WorkloadError(f"{spec.target}: no such file")
    if path.is_dir():
        raise WorkloadError(f"{spec.target}: is a directory; expected a .jsonl, .json, .parquet or .csv file")
    suffix = path.suffix.lower()
    limit = opts.integer("limit", 0, lo=0) or None
    description = ""
    if suffix in JSON_SUFFIXES:
        convs, description = _load_json_file(path, opts, path.stem, limit)
    elif suffix in TABLE_SUFFIXES:
        cols, rows = columns.file_table(str(path), TABLE_SUFFIXES[suffix])
        if not rows:
            raise WorkloadError(f"{path}: no requests (empty dataset)")
        convs = columns.load_rows(rows[:limit], cols, opts, path.stem, str(path))
    else:
        raise WorkloadError(
            f"{path}: unsupported file type '{suffix}'; expected .jsonl, .json, .parquet or .csv"
        )
    if not convs:
        raise WorkloadError(f"{path}: no requests (no record holds a user turn)")
    return Workload(
        path.name, spec.text, str(path), tuple(convs), description, _fingerprint(path.read_bytes())
    )


def _load_builtin(spec: Spec, options: dict[str, str]) -> Workload:
    b = BUILTINS[spec.target]
    opts = Options(options, b.name)
    if b.shipped and set(options) <= set(b.file_options):
        path = DATA_DIR / b.shipped
        if not path.exists():
            raise WorkloadError(
                f"{path}: missing; run `python datasets/regenerate.py` to write the shipped sets"
            )
        convs = sessions.load(_records(path, "sessions"), opts, b.name)
        fingerprint = _fingerprint(path.read_bytes())
        source = str(path)
    else:
        convs = b.generate(opts)
        opts.done()
        canonical = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
        fingerprint = _fingerprint(f"{b.name}:{canonical}".encode())
        source = "generated"
    if not convs:
        raise WorkloadError(f"{spec.text}: no requests (empty dataset)")
    return Workload(b.name, spec.text, source, tuple(convs), b.description, fingerprint)


def _load_hub(spec: Spec, opts: Options) -> Workload:
    limit = opts.integer("limit", 0, lo=0) or None
    cols, rows = columns.hub_table(spec.target, opts)
    convs = columns.load_rows(rows[:limit], cols, opts, spec.target.replace("/", "_"), f"hf:{spec.target}")
    if not convs:
        raise WorkloadError(f"hf:{spec.target}: no requests (empty dataset)")
    return Workload(
        f"hf:{spec.target}",
        spec.text,
        f"hf:{spec.target}",
        tuple(convs),
        "",
        _fingerprint(spec.text.encode()),
    )


def load_workload(spec_text: str, **gen_options: object) -> Workload:
    """Load (or reuse) the immutable set a spec names; keyword options override the spec's own."""
    spec = parse_spec(spec_text, tuple(BUILTINS))
    options = {**spec.options, **{k.replace("-", "_"): str(v) for k, v in gen_options.items()}}
    stamp: tuple = ()
    if spec.kind == "file":
        try:
            st = Path(spec.target).expanduser().stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            pass
    key = (spec.kind, spec.target, tuple(sorted(options.items())), stamp)
    if key in _CACHE:
        return _CACHE[key]
    repeat = Options({"repeat": options.pop("repeat")} if "repeat" in options else {}, spec.target)
    repeat_mode = repeat.choice("repeat", "fresh", ("fresh", "exact"))
    images = pictures.take_options(options, spec.target)  # any set takes them, as repeat=
    if spec.kind == "builtin":
        workload = _load_builtin(spec, options)
    elif spec.kind == "hf":
        workload = _load_hub(spec, Options(options, f"hf:{spec.target}"))
    else:
        workload = _load_file(spec, Options(options, spec.target))
    if images is not None:
        workload = pictures.with_images(workload, images.count, images.sizes, images.fmt, images.seed)
    if repeat_mode != workload.repeat:
        workload = dataclasses.replace(workload, repeat=repeat_mode)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = workload
    return workload


def open_workload(
    spec: str,
    *,
    seed: int,
    worker_index: int = 0,
    worker_count: int = 1,
    order: str = "shuffled",
    **gen_options: object,
) -> WorkloadStream:
    """The request stream for one load process: deterministic for (spec, seed, worker slice, order)."""
    workload = load_workload(spec, **gen_options)
    return WorkloadStream(
        workload, seed=seed, worker_index=worker_index, worker_count=worker_count, order=order
    )
