"""`--server-metrics-header`: a `/metrics` page that wants credentials of its own (the llm-d endpoint
picker's authenticated page, a kube-rbac-proxy in front of vLLM's) gets them at every scrape — each
URL, each address a name has, `auto`'s — and no request of the load ever carries them."""

from __future__ import annotations

import csv
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from locust.event import Events

from core.errors import OptionError
from core.slo import parse_slo
from loadgen import context
from loadgen.context import RunContext
from loadgen.monitors import servermetrics
from loadgen.monitors.servermetrics import Scraper, make_scraper
from loadgen.transport.client import make_transport

TOKEN = "t0k"
PAGE = b"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 3\nvllm:num_requests_waiting 1\n"
EXPECTED = "--server-metrics-header: 'nocolon' is not 'NAME: VALUE' (e.g. 'X-Api-Key: $GATEWAY_KEY')"


class _Page(BaseHTTPRequestHandler):
    """Any path ending in /metrics: 401 without `Authorization: Bearer t0k`, the page with it."""

    seen: list[dict[str, str]]

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers.items()))
        ok = self.path.endswith("/metrics") and self.headers.get("Authorization") == f"Bearer {TOKEN}"
        body = PAGE if ok else b"Unauthorized\n"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:  # quiet
        pass


@pytest.fixture
def page() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """(base URL, the headers of every request it got): a real HTTP server on 127.0.0.1."""
    seen: list[dict[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Page", (_Page,), {"seen": seen}))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)  # quick to stop
    thread.start()  # the socket listens already: nothing to wait for
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _options(*argv: str) -> Any:
    """The command line parsed with every Goodput option, as Locust parses it."""
    from locust.argument_parser import get_parser

    import locustfile  # noqa: F401  (registers every Goodput option)

    parser = get_parser(default_config_files=[])  # fires init_command_line_parser itself
    return parser.parse_args(["-f", "locustfile.py", "--headless", *argv])


class _Environment:
    """A master's environment as the scraper reads it (the context keys on it: weak-referenceable)."""

    def __init__(self, opts: Any, host: str) -> None:
        self.parsed_options, self.host, self.runner = opts, host, None


def _context(host: str, run_dir: Path, *argv: str) -> tuple[Any, RunContext]:
    """A master's environment and context with its run folder open (what make_scraper needs)."""
    env = _Environment(_options("--host", host, *argv), host)
    ctx = context.attach(env, RunContext(env, parse_slo("chat"), "m"))
    ctx.run_dir, ctx.sink = run_dir, object()
    return env, ctx


def _rows(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [(r["metric"], r["value"]) for r in csv.DictReader(fh)]


def test_the_scrape_carries_the_pages_token_and_only_names_reach_run_json(
    page: tuple[str, list[dict[str, str]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page answers 401 to the API key (its Bearer goes to the target's origin) and its rows to the
    token of `--server-metrics-header`, whose `Authorization` replaces the key's there."""
    base, seen = page
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-metrics")
    monkeypatch.setenv("EPP_AUTH", f"Bearer {TOKEN}")
    env, ctx = _context(base, tmp_path, "--server-metrics", base + "/metrics")
    sc = make_scraper(env)
    assert sc is not None and not sc.scrape_once()  # without the option: the key's Bearer, refused
    sc.close()
    m = ctx.meta["server_metrics"]
    assert (m["scrapes"], m["failures"], m["last_error"], m["file"]) == (0, 1, "HTTP 401", None)
    assert not (tmp_path / "server_metrics.csv").exists()
    assert seen[-1]["Authorization"] == "Bearer sk-not-for-metrics" and "headers" not in m

    argv = ["--server-metrics", base + "/metrics", "--server-metrics-header", "authorization: $EPP_AUTH"]
    env, ctx = _context(base, tmp_path, *argv)
    sc = make_scraper(env)
    assert sc is not None and sc.scrape_once()
    sc.close()
    assert [k for k in sc.sources[0].headers if k.lower() == "authorization"] == ["authorization"]
    assert seen[-1]["Authorization"] == f"Bearer {TOKEN}"
    assert _rows(tmp_path / "server_metrics.csv") == [
        ("vllm:num_requests_running", "3.0"),
        ("vllm:num_requests_waiting", "1.0"),
    ]
    m = ctx.meta["server_metrics"]
    assert (m["scrapes"], m["failures"], m["headers"]) == (1, 0, ["authorization"])
    assert TOKEN not in json.dumps(ctx.meta) and "EPP_AUTH" not in json.dumps(ctx.meta)


def test_every_page_gets_the_header_each_url_each_address_and_autos(
    page: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    """A comma-separated list, a dns+http:// name's addresses and `auto`'s target page: all sent it,
    whatever their origin; the key and `--header`'s still go to the target's origin only."""
    base, seen = page
    own = {"Authorization": f"Bearer {TOKEN}"}
    port = base.rsplit(":", 1)[1]
    urls = [base + "/metrics", base + "/r1/metrics", f"dns+http://pods.ns.svc:{port}/pod/metrics"]
    sc = Scraper(urls, "url", 1.0, tmp_path / "a.csv", resolver=lambda _n, _p: ["127.0.0.1"], headers=own)
    assert sc.scrape_once()
    sc.close()
    m = sc.meta["server_metrics"]
    assert [(x["scrapes"], x["failures"]) for x in m["instances"]] == [(1, 0)] * 3
    assert len(seen) == 3 and {h["Authorization"] for h in seen} == {f"Bearer {TOKEN}"}
    auto = Scraper(base + "/metrics", "auto", 1.0, tmp_path / "b.csv", lambda _: {"X-Gw": "1"}, headers=own)
    assert auto.scrape_once() and auto.meta["server_metrics"]["enabled"]
    auto.close()
    assert seen[-1]["Authorization"] == f"Bearer {TOKEN}" and seen[-1]["X-Gw"] == "1"


def test_no_request_of_the_load_carries_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The requests' headers come from `ctx.extra_headers` (users/base.py, loadgen/openloop.py): the
    key and `--header`'s, never `--server-metrics-header`'s."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk")
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    argv = ["--header", "X-Gw: 1", "--server-metrics-header", "X-Metrics-Token: ${METRICS_TOKEN}"]
    _, ctx = _context("http://127.0.0.1:9", tmp_path, *argv)
    assert ctx.scrape_headers == {"X-Metrics-Token": TOKEN}  # `${VAR}` read in this process
    assert ctx.extra_headers == {"X-Gw": "1"}
    transport = make_transport("raw", "http://127.0.0.1:9", ctx.api_key, ctx.extra_headers, ctx.api)
    assert transport.auth == {"Authorization": "Bearer sk", "X-Gw": "1"}
    assert TOKEN not in json.dumps(transport.auth)


def test_a_bad_value_is_one_line_naming_the_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsed as `--header` is: the same mistakes, named after this option; at init, one line and exit 2."""
    opts = _options("--server-metrics-header", "nocolon")
    with pytest.raises(OptionError) as e:
        servermetrics._check(opts, "http://h:8000")
    assert str(e.value) == EXPECTED
    events = Events()
    servermetrics.install(events)
    with pytest.raises(SystemExit) as ended:
        events.init.fire(environment=_Environment(opts, "http://h:8000"), runner=None)
    assert ended.value.code == 2 and capsys.readouterr().err == f"goodput: error: {EXPECTED}\n"
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    unset = _options("--server-metrics-header", "Authorization: $NO_SUCH_TOKEN")
    with pytest.raises(
        OptionError,
        match=r"^--server-metrics-header: Authorization takes its value from \$NO_SUCH_TOKEN, which is not set$",
    ):
        servermetrics._check(unset, "http://h:8000")
    with pytest.raises(OptionError, match=r"^--server-metrics-header: Accept is set by the client itself"):
        servermetrics._check(_options("--server-metrics-header", "Accept: */*"), "http://h:8000")
