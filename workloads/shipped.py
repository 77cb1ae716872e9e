"""The shipped sets in datasets/: how they are written and checked (`python datasets/regenerate.py`).

Each file is the output of its built-in generator with default options, in session JSONL, so the
repository holds small, reviewable data and `NAME:options` can regenerate or enlarge it exactly.
`datasets/MANIFEST.json` records sizes, hashes and the Python version whose stdlib supplied the
code material (agentic, code): another Python version may write slightly different text.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

from workloads.registry import BUILTINS, DATA_DIR
from workloads.sources.sessions import dump_lines
from workloads.spec import Options

SHIPPED = tuple(name for name, b in BUILTINS.items() if b.shipped)
FULL_SIZE = {
    "agentic": {"sessions": "1000"},
    "random": {"n": "5000"},
    "code": {"n": "2000"},
    "chat": {"n": "5000"},
}


def render_set(name: str, options: dict[str, str] | None = None) -> str:
    """The file content of one set: a header line, shared prefixes once, one line per session."""
    b = BUILTINS[name]
    opts = Options(dict(options or {}), name)
    conversations = b.generate(opts)
    opts.done()
    header = {"name": name, "description": b.description, "generator": name, "options": dict(options or {})}
    return "\n".join(dump_lines(conversations, header)) + "\n"


def manifest_entry(name: str, text: str) -> dict:
    lines = [json.loads(line) for line in text.splitlines()]
    sessions = [x for x in lines if x.get("type") == "session"]
    return {
        "file": BUILTINS[name].shipped,
        "sessions": len(sessions),
        "requests": sum(len(x["turns"]) for x in sessions),
        "bytes": len(text.encode()),
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def write_all(out_dir: Path = DATA_DIR, names: tuple[str, ...] = SHIPPED, full: bool = False) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"python": platform.python_version(), "full_size": full, "sets": {}}
    for name in names:
        text = render_set(name, FULL_SIZE[name] if full else None)
        (out_dir / (BUILTINS[name].shipped or f"{name}.jsonl")).write_text(text, encoding="utf-8")
        manifest["sets"][name] = manifest_entry(name, text)
    (out_dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def check_all(out_dir: Path = DATA_DIR, names: tuple[str, ...] = SHIPPED) -> list[str]:
    """Names of the sets whose file differs from what the generator writes now."""
    stale = []
    for name in names:
        path = out_dir / (BUILTINS[name].shipped or "")
        if not path.exists() or path.read_text(encoding="utf-8") != render_set(name):
            stale.append(name)
    return stale
