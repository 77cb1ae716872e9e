"""vLLM production-stack's router page beside an engine's, end to end: a run scrapes both URLs (the
router's page served as its source writes it — tests/fixtures — with its request counter rising, the
simulated engine's own), and the report leaves the router's `vllm:` names out of the engine's figures
with a warning naming its page; the server's figures are the engine's alone (its running requests, the
requests it finished = the client's)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from tests.support.json_server import http_server
from tests.support.metric_pages import FIX, rising_page
from tests.support.pageruns import run_beside

pytestmark = pytest.mark.e2e
PAGE = (FIX / "production-stack-router-metrics.txt").read_text()


def at_scrape(line: str, n: int) -> str:
    """A line of the router's page at scrape `n`: its incoming-request counter 10 higher at each."""
    return re.sub(r"(vllm:num_incoming_requests_total\{[^}]*\}) \S+", rf"\1 {120 + 10 * n}.0", line)


RouterPage = rising_page(PAGE, at_scrape)


def test_the_routers_page_is_left_out_and_the_engines_figures_stay(sim_server, tmp_path: Path) -> None:
    engine = sim_server("--profile", "latency")
    with http_server(RouterPage) as router:
        folder = run_beside(engine.url, router, tmp_path)
    with open(folder / "server_metrics.csv", newline="") as fh:
        scraped = {r["metric"] for r in csv.DictReader(fh)}
    assert {"vllm:current_qps", "vllm:e2e_request_latency_seconds_count"} <= scraped  # both pages kept raw
    summary = json.loads((folder / "summary.json").read_text())
    host = router.removeprefix("http://")
    (line,) = [w for w in summary["warnings"] if "production-stack" in w]
    assert line.startswith(f"server_metrics.csv: the page of {host} is vLLM production-stack's router"), line
    srv = summary["server"]
    assert (
        srv["engine"] == "vllm" and srv["running_max"] <= 3
    )  # the engine's own: 3 users, not the router's 8
    assert not [
        w for w in summary["warnings"] if "counted" in w and "finished requests" in w
    ]  # engine = client
    assert not [w for w in summary["warnings"] if "went back at" in w]
