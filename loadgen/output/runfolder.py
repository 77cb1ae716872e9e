"""The run folder: created once per run on the master, never reusing an existing folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from core.errors import OptionError

ROOT = Path(__file__).resolve().parents[2]  # the checkout (for the git commit in run.json)


def check_results_dir(results_dir: str | Path) -> None:
    """At init, one clear line, rather than a traceback when the run starts and opens its folder."""
    base = Path(results_dir)
    if base.exists() and not base.is_dir():
        raise OptionError(f"--results-dir: '{base}' exists and is not a directory")
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OptionError(f"--results-dir: cannot create '{base}' ({e.strerror or e})") from None
    if not os.access(base, os.W_OK | os.X_OK):
        raise OptionError(f"--results-dir: '{base}' is not writable")


def create_run_dir(results_dir: str | Path, name: str) -> Path:
    """`<results>/<name>-<UTC timestamp>/`, with a numeric suffix rather than touching an existing folder."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = Path(results_dir)
    base.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        path = base / (f"{clean}-{stamp}" if i == 0 else f"{clean}-{stamp}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not find a free run folder name under {base}")


def analyse_command(run_dir: Path) -> str:
    """What a user types to analyse a run folder (the log's last line, the web UI after STOP)."""
    return f"python -m analysis {shlex.quote(str(run_dir))}"


def write_json(path: Path, obj: dict) -> None:
    """Atomic replace, so a reader (or a crash) never sees half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""
