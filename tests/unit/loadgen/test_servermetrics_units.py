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

from analysis.samples import parse_labels
from analysis.server import load_server_metrics
from core.errors import OptionError
from loadgen.monitors.promtext import DROP_PREFIXES, format_labels, format_value, parse
from loadgen.monitors.servermetrics import Scraper, interval_of, resolve, same_origin
from tests.support.metric_pages import FIX as FIXTURES
from tests.support.metric_pages import PAGES, grep, page


# -- the parser ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", list(PAGES))
def test_parse_keeps_engine_series_drops_noise(engine: str) -> None:
    text = page(engine)
    rows = list(parse(text))
    names = {m for m, _, _ in rows}
    assert not any(n.startswith(DROP_PREFIXES) or n.endswith("_created") for n in names)
    prefix = {
        "vllm": "vllm:",
        "sglang": "sglang:",
        "tgi": "tgi_",
        "lmdeploy": "lmdeploy:",
        "trtllm": "trtllm_",
        "trtllm-2026": "trtllm_",
        "dynamo": "dynamo_frontend_",
        "nim": "",  # NIM's names have no prefix of their own
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


def test_a_go_routers_runtime_families_are_dropped_and_its_own_kept() -> None:
    """The llm-d EPP is a Go controller: its page carries the Go runtime's families, which say nothing
    about serving; its own (`llm_d_epp_*`, the Inference Extension's names) stay."""
    text = (FIXTURES / "llm-d-epp-metrics.txt").read_text()
    names = {m for m, _, _ in parse(text)}
    assert "go_goroutines" in text and not any(n.startswith(("go_", "promhttp_")) for n in names)
    assert {"llm_d_epp_request_total", "inference_pool_per_pod_queue_size"} <= names


@pytest.mark.parametrize("engine", list(PAGES))
def test_parse_in_pieces_equals_parsing_the_whole_page(engine: str) -> None:
    """The scraper parses ≤ 20 samples at a time (to yield to the event loop): same samples, same order."""
    text = page(engine)
    whole = [
        (s.name, format_labels(s.labels), format_value(s.value))
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if not s.name.startswith(DROP_PREFIXES) and not s.name.endswith("_created")
    ]
    pauses = []
    assert list(parse(text, lambda: pauses.append(1))) == whole
    assert len(pauses) >= len(whole) // 20


def test_parse_lets_other_greenlets_run() -> None:
    """On a local runner the users share the event loop with the scraper: between pieces, a user
    whose timer came due must run (`gevent.sleep(0)` would not let it: callbacks only)."""
    import gevent

    from loadgen.monitors.metricsource import pause as _pause

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
    assert resolve("auto", "http://h:8000/") == ("auto", ["http://h:8000/metrics"])
    assert resolve("auto", "") == ("off", [])
    assert resolve("OFF", "http://h:8000") == ("off", [])
    assert resolve("http://m:9090/metrics", "http://h:8000") == ("url", ["http://m:9090/metrics"])
    assert resolve(" http://a:1/metrics, http://b:1/metrics ", "") == (
        "url", ["http://a:1/metrics", "http://b:1/metrics"],
    )  # fmt: skip
    with pytest.raises(OptionError, match="'http://a:1/metrics' is given twice"):
        resolve("http://a:1/metrics,http://a:1/metrics", "")
    with pytest.raises(OptionError, match=r"^--server-metrics: 'auto' is not a URL"):
        resolve("http://a:1/metrics,auto", "")
    with pytest.raises(OptionError, match="names no URL"):
        resolve(",", "")
    with pytest.raises(OptionError, match=r"^--server-metrics: 'ftp://x' is not a URL"):
        resolve("ftp://x", "http://h")
    with pytest.raises(OptionError, match="credentials in the URL") as e:
        resolve("http://u:secret@m:9090/metrics", "http://h")
    assert "secret" not in str(e.value)
    with pytest.raises(OptionError, match="is not a URL") as e:
        resolve("http://u:secret@m:badport/metrics", "http://h")
    assert "secret" not in str(e.value)
    # a name looked up at each round: checked here, never resolved
    assert resolve("dns+http://engines.ns.svc:8000/metrics,http://r:29000/metrics", "") == (
        "url", ["dns+http://engines.ns.svc:8000/metrics", "http://r:29000/metrics"],
    )  # fmt: skip
    with pytest.raises(OptionError, match=r"'dns\+https://e:8000/metrics': only dns\+http:// is looked up"):
        resolve("dns+https://e:8000/metrics", "")
    with pytest.raises(OptionError, match=r"'dns\+http://e/metrics' is not dns\+http://NAME:PORT/PATH"):
        resolve("dns+http://e/metrics", "")
    with pytest.raises(OptionError, match="'the value' is not dns") as e:
        resolve("dns+http://u:secret@e:1/metrics", "")
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
        mode, urls = resolve("auto", base)
        meta: dict = {}
        sc = Scraper(urls, mode, 1.0, tmp_path / "server_metrics.csv", meta=meta)
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


def test_auto_finds_nims_page_under_its_api_prefix(tmp_path: Path) -> None:
    """NVIDIA NIM for LLMs serves its page at /v1/metrics (its /metrics answers 404): `auto` scrapes it."""
    server, base = _serve({"/v1/metrics": (200, {"Content-Type": "text/plain"}, page("nim").encode())})
    try:
        mode, urls = resolve("auto", base)
        meta: dict = {}
        sc = Scraper(urls, mode, 1.0, tmp_path / "server_metrics.csv", meta=meta)
        assert sc.scrape_once()
        sc.close()
        assert (meta["server_metrics"]["url"], meta["server_metrics"]["enabled"]) == (
            base + "/v1/metrics",
            True,
        )
        df, _ = load_server_metrics(tmp_path)
        assert "time_to_first_token_seconds_count" in set(df["metric"])
    finally:
        server.stop()


def test_several_urls_are_scraped_in_one_round_each_labelled_with_its_instance(tmp_path: Path) -> None:
    """The replicas of one server behind a router: one stamp per round for all (the analysis lines
    their gauges up by `t`), every sample labelled with its URL's host:port, a page's own `instance`
    kept as `exported_instance`, and a replica that does not answer counted apart without losing the
    others' rows."""
    a, base_a = _serve({"/metrics": (200, {}, b"vllm:num_requests_running 3\nvllm:num_requests_waiting 1\n")})
    b, base_b = _serve({"/metrics": (200, {}, b'vllm:num_requests_running{instance="pod-7"} 5\n')})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/metrics"
    try:
        urls = [base_a + "/metrics", base_b + "/metrics", dead]
        sent: dict[str, dict] = {}

        def headers_for(url: str) -> dict[str, str]:
            sent[url] = {"Authorization": "Bearer k"} if url.startswith(base_a) else {}
            return sent[url]

        meta: dict = {}
        sc = Scraper(urls, "url", 1.0, tmp_path / "server_metrics.csv", headers_for, meta=meta)
        assert sc.sources[0].headers["Authorization"] == "Bearer k"
        assert "Authorization" not in sc.sources[1].headers
        assert sc.scrape_once() and sc.scrape_once()
        sc.close()
    finally:
        a.stop()
        b.stop()
    df, _ = load_server_metrics(tmp_path)
    assert df.groupby("t").size().tolist() == [3, 3]  # one stamp per round, both pages in it
    inst_a, inst_b = base_a.split("//")[1], base_b.split("//")[1]
    labels = {(m, lab) for m, lab in zip(df["metric"], df["labels"], strict=True)}
    assert labels == {
        ("vllm:num_requests_running", f"instance={inst_a}"),
        ("vllm:num_requests_waiting", f"instance={inst_a}"),
        ("vllm:num_requests_running", f"exported_instance=pod-7;instance={inst_b}"),
    }
    m = meta["server_metrics"]
    assert (m["scrapes"], m["failures"], m["enabled"], m["file"]) == (2, 2, True, "server_metrics.csv")
    assert m["url"] == ", ".join(urls) and m["last_error"].startswith(dead + ": ")
    assert [(x["instance"], x["scrapes"], x["failures"]) for x in m["instances"]] == [
        (inst_a, 2, 0), (inst_b, 2, 0), (dead.split("//")[1].split("/")[0], 0, 2),
    ]  # fmt: skip


def test_instance_names_add_the_path_only_where_host_and_port_repeat() -> None:
    from loadgen.monitors.metricsource import instance_names

    assert instance_names(["http://a:1/metrics", "http://b:1/metrics"]) == ["a:1", "b:1"]
    assert instance_names(["http://gw:80/r0/metrics", "http://gw:80/r1/metrics", "http://c:2/metrics"]) == [
        "gw:80/r0/metrics", "gw:80/r1/metrics", "c:2",
    ]  # fmt: skip
