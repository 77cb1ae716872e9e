"""A gateway's own TTFT page beside an engine's, end to end: a run scrapes both URLs — Envoy AI Gateway's
page served as its source writes it (tests/fixtures, OpenTelemetry's GenAI names with the exporter's scope
labels), its first tokens rising at each scrape; the simulated engine's own — and the report gives the
gateway's section beside the engine's figures, which stay the engine's, with no replica made of the
gateway's page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.json_server import http_server
from tests.support.metric_pages import FIX, rising_page
from tests.support.pageruns import run_beside

pytestmark = pytest.mark.e2e
PAGE = (FIX / "envoy-ai-gateway-metrics.txt").read_text()
TTFT = "gen_ai_server_time_to_first_token_seconds"


def at_scrape(line: str, n: int) -> str:
    """A line of the page at scrape `n`: 4n first tokens timed, 50 ms each (buckets from 0.06 s up hold
    them all); the rest as written."""
    if not line.startswith(TTFT):
        return line
    head = line.rsplit(" ", 1)[0]
    if line.startswith(TTFT + "_sum"):
        return f"{head} {0.2 * n:.6f}"
    le = re.search(r'le="([^"]+)"', line)
    held = le is None or float(le.group(1)) >= 0.06  # _count, or a bucket at or above 50 ms
    return f"{head} {4 * n if held else 0}"


GatewayPage = rising_page(PAGE, at_scrape)


def test_the_gateways_page_gives_its_ttft_beside_the_engines(sim_server, tmp_path: Path) -> None:
    engine = sim_server("--profile", "latency")
    with http_server(GatewayPage) as gateway:
        folder = run_beside(engine.url, gateway, tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    g = summary["gateway_page"]
    assert g["metric"] == TTFT and g["requests"] > 0
    assert g["ttft_mean_s"] == pytest.approx(0.05)  # 0.2 s over 4 first tokens a scrape
    assert g["engine_ttft_mean_s"] is not None and g["client_ttft_mean_s"] is not None
    assert summary["server"]["engine"] == "vllm" and summary["server"]["running_max"] <= 3  # the engine's own
    assert summary["server"]["replicas"] is None  # the gateway's page is not a replica
    # the served page's first tokens (50 ms) came later than the client's (the simulated engine's): not on
    # this run's path, and said so
    assert g["client_minus_gateway_ttft_s"] < 0
    (line,) = [w for w in summary["warnings"] if "the gateway's page" in w]
    assert "its cut of the TTFT is not this run's" in line
    report = (folder / "summary.md").read_text()
    assert (
        "## Gateway (its own metrics page)" in report and "Gateway (OpenTelemetry GenAI metrics, " in report
    )
