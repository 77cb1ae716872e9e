"""A short real run that scrapes a served page beside a simulated engine's, then analysed: the steps the
end-to-end tests of a router's, a picker's or a gateway's own page share (tests/e2e/test_*_page_e2e.py).
Each test serves its page (metric_pages.rising_page) and asserts on what the run and the report kept."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import PYTHON, ROOT


def run_beside(engine_url: str, page_url: str, results: Path, *extra: str, env: dict | None = None) -> Path:
    """3 users for 5 s against the engine, scraping the page and the engine's own every second; the run
    analysed (summary.json, summary.md). Returns the run folder."""
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", engine_url,
           "--results-dir", str(results), "-u", "3", "-r", "3", "-t", "5s", "--max-tokens", "16",
           "--scrape-interval", "1s", "--server-metrics", f"{page_url}/metrics,{engine_url}/metrics", *extra]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    analysed = subprocess.run([PYTHON, "-m", "analysis", str(folder), "--quiet", "--no-plots"], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert analysed.returncode == 0, analysed.stderr[-3000:]
    return folder
