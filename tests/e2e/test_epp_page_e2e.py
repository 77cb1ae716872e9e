"""The llm-d endpoint picker's page beside an engine's, end to end: a run scrapes both URLs — the EPP's
page served as its source writes it (tests/fixtures), behind the bearer token its `--metrics-endpoint-auth`
default asks for, its placements rising at each scrape; the simulated engine's own page — and the report
gives the router's spread, refusals and times from the EPP's page while the engine's figures stay the
engine's. The token reaches the EPP's page alone (`--server-metrics-header`), and run.json names it only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.json_server import http_server
from tests.support.metric_pages import FIX, rising_page
from tests.support.pageruns import run_beside

pytestmark = pytest.mark.e2e
PAGE = (FIX / "llm-d-epp-metrics.txt").read_text()
TOKEN = "Bearer e2e-token"


def at_scrape(line: str, n: int) -> str:
    """One line of the page at scrape `n`: the placements and shed requests rising, the rest as written."""
    value = {'"qwen-decode-0"': 10 * n, '"qwen-decode-1"': 5 * n, "InferencePoolResourceExhausted": n // 2}
    if "_scheduler_attempts_total{" in line or "request_error_total{" in line:
        for key, v in value.items():
            if key in line and ('status="failure"' not in line):
                return f"{line.rsplit(' ', 1)[0]} {v}"
    return line


EppPage = rising_page(PAGE, at_scrape, token=TOKEN)  # its placements rising, behind the token


def test_the_epps_page_is_read_as_the_router_and_the_engines_figures_stay(sim_server, tmp_path: Path) -> None:
    engine = sim_server("--profile", "latency")
    env = dict(os.environ, EPP_TOKEN=TOKEN.removeprefix("Bearer "))  # the scheme on the command line
    with http_server(EppPage) as epp:
        folder = run_beside(
            engine.url, epp, tmp_path, "--server-metrics-header", "Authorization: Bearer $EPP_TOKEN", env=env
        )
    assert EppPage.seen and set(EppPage.seen) == {TOKEN}  # every scrape of the EPP's page carried the token
    meta = json.loads((folder / "run.json").read_text())["server_metrics"]
    assert meta["headers"] == ["Authorization"] and "e2e-token" not in json.dumps(meta)
    assert {i["failures"] for i in meta["instances"]} == {0}
    summary = json.loads((folder / "summary.json").read_text())
    rf = summary["router"]
    assert (
        rf["router"] == "llm-d EPP"
        and rf["policy"] == "kv-cache-utilization-scorer+prefix-cache-scorer+queue-scorer"
    )
    by = {r["backend"]: r for r in rf["by_backend"]}
    assert set(by) == {"qwen-decode-0", "qwen-decode-1"}
    assert by["qwen-decode-0"]["requests"] == pytest.approx(
        2 * by["qwen-decode-1"]["requests"]
    )  # 10 : 5 a scrape
    assert rf["busiest"] == "qwen-decode-0" and rf["imbalance"] == pytest.approx(4 / 3)
    assert rf["errors"]["InferencePoolResourceExhausted"] > 0
    assert rf["pick_s"] is None and rf["held_s"] is None  # its histograms stood still: no mean made up
    assert any(w.startswith("the router (llm-d EPP) counted") for w in summary["warnings"])
    assert summary["server"]["engine"] == "vllm" and summary["server"]["running_max"] <= 3  # the engine's own
    assert not [
        w for w in summary["warnings"] if "counted" in w and "finished requests" in w
    ]  # engine = client
    report = (folder / "summary.md").read_text()
    assert "## Router (its own metrics page)" in report and "Router (llm-d EPP, policy " in report
