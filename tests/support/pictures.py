"""A run of pictures against a server that takes none (a text-only model, a llama-server without its
projector): what each real engine's test asserts of it is its own status and words; the run is this."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from tests.conftest import PYTHON, ROOT


def refused_run(url: str, results: Path) -> list[dict[str, str]]:
    """The rows of a 60 s run of `chat:images=1` by 2 users against `url` (it should stop on its
    failures long before), with no traceback on the way."""
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", url, "--results-dir",
           str(results), "--only-summary", "--dataset", "chat:images=1", "--users", "2", "-t", "60s",
           "--stop-timeout", "5"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run / "requests.csv", newline="") as fh:
        return list(csv.DictReader(fh))
