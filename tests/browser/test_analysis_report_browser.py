"""report.html opens in a real headless Chromium (Debian `chromium`) with every plot decoded; screenshots kept.

The report sets `data-plots-loaded` / `data-plots-total` on <body> once the page has loaded
(images with naturalWidth > 0). Screenshots go to test-artifacts/ (gitignored) for a human look.
Without Chromium the test skips, except in CI (CI=true), where a missing browser is a failure:
`.ci/run` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from analysis.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
FIX = Path(__file__).resolve().parents[1] / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.alone]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is not installed (CI installs Debian's `chromium`; see .ci/run)")
    pytest.skip("chromium is not installed: apt-get install -y chromium")


def headless(exe: str, profile: Path, *args: str) -> subprocess.Popen:
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
        f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def render(exe: str, html: Path, shot: Path, tmp_path: Path) -> tuple[int, int]:
    """Screenshot `html` and dump its DOM (two browsers at once); return (plots loaded, plots total)."""
    url = html.resolve().as_uri()
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    tag = html.parent.name
    shooter = headless(
        exe,
        tmp_path / f"shot-{tag}",
        f"--screenshot={shot}",
        "--window-size=1280,4000",
        "--hide-scrollbars",
        url,
    )
    dumper = headless(exe, tmp_path / f"dom-{tag}", "--virtual-time-budget=5000", "--dump-dom", url)
    dom, dom_err = dumper.communicate(timeout=90)
    _, shot_err = shooter.communicate(timeout=90)
    assert shot.exists() and shot.stat().st_size > 10_000, shot_err[-2000:]
    m = re.search(r'<body[^>]*data-plots-total="(\d+)"[^>]*data-plots-loaded="(\d+)"', dom)
    assert m, f"plot counters missing from the rendered DOM: {dom[:500]} {dom_err[-1000:]}"
    return int(m.group(2)), int(m.group(1))


def test_run_and_comparison_reports_render_in_chromium(tmp_path: Path) -> None:
    exe = chromium()
    run = tmp_path / "openloop"
    shutil.copytree(FIX / "run_openloop", run)
    assert main([str(run), "--quiet"]) == 0
    loaded, total = render(exe, run / "report.html", ARTIFACTS / "analysis_report.png", tmp_path)
    # load curves, attainment with its interval, goodput vs throughput, CDFs, time series, server metrics
    assert (loaded, total) == (6, 6)

    small = tmp_path / "small"
    shutil.copytree(FIX / "run_small", small)
    out = tmp_path / "cmp"
    assert main(["compare", str(small), str(run), "--out", str(out), "--quiet"]) == 0
    loaded, total = render(exe, out / "report.html", ARTIFACTS / "analysis_compare.png", tmp_path)
    assert (loaded, total) == (3, 3)  # bars, load curves, the Pareto frontier
