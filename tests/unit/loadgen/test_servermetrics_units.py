"""Server metrics without processes: the scrape parser on each engine's page, the CSV's values, options,
the scraper's failures and where `auto` looks (the mapping: tests/unit/analysis/test_engine_mappings.py)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gevent.pywsgi import WSGIServer
from prometheus_client.parser import text_string_to_metric_families

from analysis.engines import parse_labels
from analysis.server import load_server_metrics
from core.errors import OptionError
from loadgen.monitors.promtext import format_labels, format_value, parse
from loadgen.monitors.servermetrics import Scraper, interval_of, resolve, same_origin
from tests.support.metric_pages import PAGES, grep, page


# -- the parser ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", list(PAGES))
def test_parse_keeps_engine_series_drops_noise(engine: str) -> None:
    text = page(engine)
    rows = list(parse(text))
    names = {m for m, _, _ in rows}
    assert not any(n.startswith(("python_", "process_")) or n.endswith("_created") for n in names)
    prefix = {
        "vllm": "vllm:",
        "sglang": "sglang:",
        "tgi": "tgi_",
        "lmdeploy": "lmdeploy:",
        "trtllm": "trtllm_",
        "trtllm-2026": "trtllm_",
        "dynamo": "dynamo_frontend_",
    }[engine]
    assert sum(n.startswith(prefix) for n in names) >= 10
    # histograms keep every bucket, the sum and the count; +Inf bucket == count
    base = {"tgi": "tgi_request_duration"}.get(engine, f"{prefix}time_to_first_token_seconds")
    buckets = [(lab, float(v)) for m, lab, v in rows if m == base + "_bucket"]
    assert len(buckets) == len(re.findall(rf"^{re.escape(base)}_bucket", text, re.M)) > 5
    inf = [v for lab, v in buckets if "le=+Inf" in lab]
    count = [float(v) for m, _, v in rows if m == base + "_count"]
    assert inf == count and count[0] == grep(text, base + "_count")
    # one label set is one stable string: sorted keys, no quotes
    for _, lab, _ in rows:
        keys = [p.split("=", 1)[0] for p in lab.split(";") if p]
        assert keys == sorted(keys) and '"' not in lab


@pytest.mark.parametrize("engine", list(PAGES))
def test_parse_in_pieces_equals_parsing_the_whole_page(engine: str) -> None:
    """The scraper parses ≤ 20 samples at a time (to yield to the event loop): same samples, same order."""
    text = page(engine)
    whole = [
        (s.name, format_labels(s.labels), format_value(s.value))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if not s.name.startswith(("python_", "process_")) and not s.name.endswith("_created")
    ]
    pauses = []
    assert list(parse(text, lambda: pauses.append(1))) == whole
    assert len(pauses) >= len(whole) // 20


def test_parse_lets_other_greenlets_run() -> None:
    """On a local runner the users share the event loop with the scraper: between pieces, a user
    whose timer came due must run (`gevent.sleep(0)` would not let it: callbacks only)."""
    import gevent

    from loadgen.monitors.servermetrics import _pause

    woke: list[int] = []

    def user() -> None:
        while True:
            gevent.sleep(0.0005)
            woke.append(1)

    g = gevent.spawn(user)
    gevent.sleep(0.002)
    woke.clear()
    n = sum(1 for _ in parse(page("tgi"), _pause))
    g.kill()
    assert n > 1000 and len(woke) >= 10, len(woke)


def test_parse_tgi_counters_get_total_and_summaries_survive() -> None:
    names = {m for m, _, _ in parse(page("tgi"))}
    assert "tgi_batch_inference_count_total" in names and "tgi_request_count_total" in names
    assert {"tgi_request_skipped_tokens", "tgi_request_skipped_tokens_count"} <= names  # a summary


def test_parse_rejects_a_page_that_is_not_prometheus_text() -> None:
    with pytest.raises(ValueError):
        list(parse("<html><body>Not Found</body></html>\n"))


def test_label_and_value_formatting_round_trip() -> None:
    labels = {"z": "1", "path": "/v1/chat;x=y%", "le": "+Inf", "msg": 'a "b"\nc'}
    text = format_labels(labels)
    assert text.startswith("le=+Inf;msg=") and text.count(";") == 3
    assert parse_labels(text) == labels
    assert parse_labels('model_name="tiny"') == {"model_name": "tiny"}  # the older quoted form
    assert [format_value(v) for v in (1.0, 2.5e-7, float("nan"), float("inf"), -float("inf"))] == [
        "1.0", "2.5e-07", "NaN", "+Inf", "-Inf",
    ]  # fmt: skip


def test_csv_values_read_back(tmp_path: Path) -> None:
    rows = [
        "t,metric,labels,value",
        "1.000,a,,NaN",
        "1.000,b,le=+Inf,+Inf",
        "1.000,c,,-Inf",
        "1.000,d,k=v,2.5",
    ]
    (tmp_path / "server_metrics.csv").write_text("\n".join(rows) + "\n")
    df, warnings = load_server_metrics(tmp_path)
    assert not warnings and list(df["metric"]) == ["b", "c", "d"]  # NaN samples carry nothing
    assert list(df["value"]) == [np.inf, -np.inf, 2.5] and list(df["labels"]) == ["le=+Inf", "", "k=v"]


# -- options and the scraper ---------------------------------------------------------------------------
def test_resolve_and_interval() -> None:
    assert resolve("auto", "http://h:8000/") == ("auto", "http://h:8000/metrics")
    assert resolve("auto", "") == ("off", "")
    assert resolve("OFF", "http://h:8000") == ("off", "")
    assert resolve("http://m:9090/metrics", "http://h:8000") == ("url", "http://m:9090/metrics")
    with pytest.raises(OptionError, match=r"^--server-metrics: 'ftp://x' is not a URL"):
        resolve("ftp://x", "http://h")
    with pytest.raises(OptionError, match="credentials in the URL") as e:
        resolve("http://u:secret@m:9090/metrics", "http://h")
    assert "secret" not in str(e.value)
    with pytest.raises(OptionError, match="is not a URL") as e:
        resolve("http://u:secret@m:badport/metrics", "http://h")
    assert "secret" not in str(e.value)
    assert interval_of("500ms") == 0.5
    with pytest.raises(OptionError, match="--scrape-interval"):
        interval_of("10ms")
    with pytest.raises(OptionError, match="--scrape-interval"):
        interval_of("often")
    assert same_origin("http://h:8000/metrics", "http://h:8000") and not same_origin(
        "http://m:1/x", "http://h:1"
    )


def test_scraper_counts_failures_and_writes_nothing(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    meta: dict = {}
    sc = Scraper(f"http://127.0.0.1:{port}/metrics", "url", 1.0, tmp_path / "server_metrics.csv", meta=meta)
    assert not sc.scrape_once() and not sc.scrape_once()
    sc.close()
    m = meta["server_metrics"]
    assert (m["scrapes"], m["failures"], m["enabled"], m["file"]) == (0, 2, True, None)
    assert m["last_error"] and not (tmp_path / "server_metrics.csv").exists()
    # auto mode: a target without /metrics turns the scraper off after its first try
    auto = Scraper(f"http://127.0.0.1:{port}/metrics", "auto", 1.0, tmp_path / "x.csv", meta=meta)
    auto.scrape_once()
    assert (
        meta["server_metrics"]["enabled"] is False
        and "no Prometheus /metrics" in meta["server_metrics"]["note"]
    )


def _serve(routes: dict[str, tuple[int, dict[str, str], bytes]]) -> tuple[WSGIServer, str]:
    """A real HTTP server on 127.0.0.1 answering each path from `routes` (404 elsewhere)."""

    def app(environ: dict, start_response: Any) -> list[bytes]:
        status, headers, body = routes.get(environ["PATH_INFO"], (404, {}, b"not found"))
        start_response(f"{status} X", list(headers.items()))
        return [body]

    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    return server, f"http://127.0.0.1:{server.server_port}"


def test_auto_finds_trtllm_serves_page_where_its_metrics_is_json(tmp_path: Path) -> None:
    """trtllm-serve answers /metrics with JSON iteration stats and mounts its Prometheus page at
    /prometheus/metrics (a mount: 307 to the path with a slash): `auto` scrapes that one."""
    page_text = page("trtllm").encode()
    server, base = _serve({
        "/metrics": (200, {"Content-Type": "application/json"}, b'[{"iter": 5, "numActiveRequests": 3}]'),
        "/prometheus/metrics": (307, {"Location": "/prometheus/metrics/"}, b""),
        "/prometheus/metrics/": (200, {"Content-Type": "text/plain"}, page_text),
    })  # fmt: skip
    try:
        mode, url = resolve("auto", base)
        meta: dict = {}
        sc = Scraper(url, mode, 1.0, tmp_path / "server_metrics.csv", meta=meta)
        assert sc.scrape_once() and sc.scrape_once()
        sc.close()
        m = meta["server_metrics"]
        assert (m["url"], m["enabled"], m["scrapes"], m["failures"]) == (
            base + "/prometheus/metrics",
            True,
            2,
            0,
        )
        df, _ = load_server_metrics(tmp_path)
        assert "trtllm_time_to_first_token_seconds_count" in set(df["metric"])
        # a target with neither: off, naming both tries
        none, none_base = _serve({})
        try:
            sc = Scraper(none_base + "/metrics", "auto", 1.0, tmp_path / "y.csv", meta=meta)
            assert not sc.scrape_once()
            note = meta["server_metrics"]["note"]
            assert meta["server_metrics"]["enabled"] is False
            assert f"{none_base}/metrics (HTTP 404), {none_base}/prometheus/metrics (HTTP 404)" in note, note
        finally:
            none.stop()
        # a URL given by the user is scraped as it is: no other place is tried
        sc = Scraper(base + "/metrics", "url", 1.0, tmp_path / "z.csv", meta=meta)
        assert not sc.scrape_once() and meta["server_metrics"]["url"] == base + "/metrics"
    finally:
        server.stop()
