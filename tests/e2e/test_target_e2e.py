"""Targets as users give them: HTTPS behind an ingress with a private CA, a base URL with /v1, a
proxy in the environment, a redirect, an Ollama model name, and gateways that want extra headers.

An HTTPS target is the simulated engine behind a real TLS-terminating proxy
(tests/support/tls_proxy.py) whose certificate a test CA signed (trustme): both clients, the target
check and the /metrics scraper must trust it through `SSL_CERT_FILE` alone, and without it the run
must stop with one line that says how to trust it.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import re
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from simserver.trace import read_lines
from tests.conftest import PYTHON, ROOT, free_port
from tests.support.json_server import Handler, http_server
from tests.support.zoo.fixture import zoo_server

pytestmark = pytest.mark.e2e
EARLY_S = 0.001  # a client stamp may precede the engine's by clock granularity, never by more


def locust(host: str, results: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(results), "--shape", "none", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)


def env_without_trust(**extra: str) -> dict[str, str]:
    """The test process's environment with no CA setting of its own (a developer's would change the answer)."""
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    return {**env, **extra}


@pytest.fixture
def https_engine(sim_server, procs, tmp_path: Path) -> tuple[str, Path, Path]:
    """(https URL, the CA's PEM, the engine's trace): the engine behind TLS signed by a private CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_pem = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(chain), append=True)
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--profile", "latency", "--trace", str(trace))
    port = free_port()
    proxy = procs(
        [PYTHON, "-m", "tests.support.tls_proxy", "--port", str(port), "--upstream-port",
         sim.url.rsplit(":", 1)[1], "--cert", str(chain), "--key", str(key)], "tls_proxy",
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=str(ca_pem))
    deadline = time.monotonic() + 20
    while True:
        assert proxy.popen.poll() is None, proxy.log()
        try:
            with urllib.request.urlopen(url + "/health", timeout=1, context=context) as r:
                if r.status == 200:
                    break
        except OSError:
            assert time.monotonic() < deadline, f"{url} did not answer: {proxy.log()}"
            time.sleep(0.1)
    return url, ca_pem, trace


def trace_lines(trace: Path, ids: set[str], timeout_s: float = 5.0) -> dict[str, dict]:
    """The engine's trace by request id, once it holds every id in `ids` (it writes every 0.5 s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        lines = read_lines(trace)
        by_id = {t["request_id"]: t for t in lines}
        if ids <= set(by_id) or time.monotonic() > deadline:
            return by_id
        time.sleep(0.1)


@pytest.mark.parametrize("client", ["raw", "openai"])
def test_https_target_with_a_private_ca(https_engine, tmp_path: Path, client: str) -> None:
    url, ca_pem, trace = https_engine
    env = env_without_trust(SSL_CERT_FILE=str(ca_pem), OPENAI_API_KEY="none")
    out = locust(url, tmp_path / "results", env, "-u", "4", "-r", "4", "-t", "5s", "--client", client,
                 "--max-tokens", "48", "--run-name", f"tls-{client}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    with open(run / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["error"] != "cancelled"]
    assert len(rows) >= 8 and all(r["ok"] == "true" for r in rows), {r["error_detail"] for r in rows}
    engine = trace_lines(trace, {r["request_id"] for r in rows})
    for r in rows:
        t = engine[r["request_id"]]
        assert t["status"] == "ok" and int(r["output_tokens"]) == t["output_tokens"]
        # the first token reached the client through TLS after the engine wrote it, never before
        seen = float(r["t_start_unix"]) + float(r["ttft_s"])
        assert seen >= t["t_first_emit_unix"] - EARLY_S, (seen, t["t_first_emit_unix"])
    meta = json.loads((run / "run.json").read_text())
    assert meta["target"].startswith("https://127.0.0.1:")
    with open(run / "server_metrics.csv", newline="") as fh:  # /metrics scraped over the same TLS
        assert sum(1 for _ in csv.DictReader(fh)) > 0


def test_untrusted_certificate_is_one_line_saying_how_to_trust_it(https_engine, tmp_path: Path) -> None:
    url, _, _ = https_engine
    out = locust(url, tmp_path / "results", env_without_trust(), "-u", "1", "-t", "3s")
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if "goodput: error" in line]
    assert len(lines) == 1 and "certificate verify failed" in lines[0], out.stderr[-3000:]
    assert "SSL_CERT_FILE=" in lines[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_a_base_url_with_v1_gets_the_root_offered(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--profile", "latency")
    out = locust(sim.url + "/v1", tmp_path / "results", env_without_trust(), "-u", "1", "-t", "3s")
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "goodput: error" in line]
    assert "/v1/v1/models: HTTP 404" in line and line.endswith(f"try --host {sim.url}"), line


def test_a_proxy_in_the_environment_is_bypassed_as_the_raw_client_bypasses_it(
    sim_server, tmp_path: Path
) -> None:
    """The raw client never reads HTTP_PROXY; the target check and the /metrics scrape must not
    either (a dead proxy left in a shell made a reachable server 'unreachable'). The openai SDK
    reads it, and so do they with --client openai: the run stops at the check, as its requests would."""
    sim = sim_server("--profile", "latency")
    dead = f"http://127.0.0.1:{free_port()}"
    env = env_without_trust(**{k: dead for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")})
    env = {k: v for k, v in env.items() if k.lower() != "no_proxy"}
    out = locust(sim.url, tmp_path / "raw", env, "-u", "2", "-r", "2", "-t", "3s", "--max-tokens", "32")
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = list((tmp_path / "raw").iterdir())
    with open(run / "requests.csv", newline="") as fh:
        assert any(r["ok"] == "true" for r in csv.DictReader(fh))
    with open(run / "server_metrics.csv", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) > 0
    out = locust(sim.url, tmp_path / "sdk", {**env, "OPENAI_API_KEY": "none"}, "-u", "1", "-t", "3s",
                 "--client", "openai")  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "goodput: error" in line]
    assert f"cannot reach {sim.url}/v1/models" in line, line


@pytest.fixture
def redirect_to_https(https_engine) -> Iterator[tuple[str, str]]:
    """(http URL, https URL): a real HTTP server on 127.0.0.1 that answers everything with 308 to
    the same path on the HTTPS engine, as an ingress does for plain HTTP once TLS is configured."""
    https_url = https_engine[0]

    class Redirect(Handler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.answer(308, b"", Location=https_url + self.path)

        do_GET = do_POST = _answer

    with http_server(Redirect) as url:
        yield url, https_url


def test_a_redirecting_target_is_refused_with_the_url_to_use(redirect_to_https, tmp_path: Path) -> None:
    """Neither client may time a redirect as the server's work: the check stops with the URL to pass,
    and a request that meets one (the raw client does not follow it) says where it pointed."""
    http_url, https_url = redirect_to_https
    out = locust(http_url, tmp_path / "results", env_without_trust(), "-u", "1", "-t", "3s")
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "goodput: error" in line]
    assert f"HTTP 308, redirected to {https_url}/v1/models — pass --host {https_url}:" in line, line
    from loadgen.transport.client import RawTransport
    from loadgen.transport.sdk import OpenAITransport

    for t in (RawTransport(http_url, None), OpenAITransport(http_url, None)):
        try:
            res = t.stream("/v1/chat/completions", {"model": "m", "messages": [], "stream": True}, {}, 10.0)
        finally:
            t.close()
        assert (res.status, res.error) == (308, "http_308"), (t, res.error_detail)
        assert res.error_detail == f"redirected to {https_url}/v1/chat/completions: not followed", t


def test_the_metrics_scrape_follows_a_redirect(redirect_to_https, https_engine, tmp_path: Path) -> None:
    """A scrape times nothing: a /metrics URL that redirects (here to the HTTPS engine's) is followed."""
    http_url, https_url = redirect_to_https
    env = env_without_trust(SSL_CERT_FILE=str(https_engine[1]))
    out = locust(https_url, tmp_path / "results", env, "-u", "1", "-r", "1", "-t", "3s", "--max-tokens", "16",
                 "--server-metrics", f"{http_url}/metrics", "--scrape-interval", "1s")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = list((tmp_path / "results").iterdir())
    with open(run / "server_metrics.csv", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) > 0


def test_a_model_name_without_its_tag_is_served_as_latest(sim_server) -> None:
    """Ollama lists `llama3:latest` and serves `llama3` (no tag means :latest, its docs' own examples):
    the check accepts the short name, and still refuses one that is not served."""
    from loadgen.run.target import TargetError, check

    sim = sim_server("--profile", "latency", "--model", "llama3:latest")
    assert check(sim.url, "llama3", "OPENAI_API_KEY").model == "llama3"
    assert check(sim.url, "", "OPENAI_API_KEY").model == "llama3:latest"
    with pytest.raises(TargetError, match="'llama4' is not served"):
        check(sim.url, "llama4", "OPENAI_API_KEY")


# -- --header: gateways that want their own key, routing headers, another auth scheme -------------
zoo = pytest.fixture(scope="module")(zoo_server)
GATEWAY_KEY = "gw-SECRET-7731"


def seen_since(url: str, before: int) -> list[dict]:
    return json.loads(urllib.request.urlopen(f"{url}/seen", timeout=5).read())[before:]


@pytest.mark.parametrize("client", ["raw", "openai"])
def test_extra_headers_reach_every_request_and_their_values_no_file(zoo, tmp_path: Path, client: str) -> None:
    before = len(seen_since(zoo.url, 0))
    env = env_without_trust(GATEWAY_KEY=GATEWAY_KEY, OPENAI_API_KEY="sk-not-sent")
    out = locust(f"{zoo.url}/zoo/vllm", tmp_path / "results", env, "-u", "2", "-r", "2", "-t", "2s",
                 "--client", client, "--server-metrics", "off", "--header", "X-Api-Key: $GATEWAY_KEY",
                 "--header", "X-Route: blue", "--header", "authorization: Basic dXNlcjpwdw==")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = list((tmp_path / "results").iterdir())
    with open(run / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["error"] != "cancelled"]
    seen = [
        s for s in seen_since(zoo.url, before) if s.get("x-request-id") in {r["request_id"] for r in rows}
    ]
    assert rows and len(seen) == len(rows) and all(r["ok"] == "true" for r in rows)
    for s in seen:  # every request: the gateway's key, the route, and one Authorization (the Basic one)
        assert (s["x-api-key"], s["x-route"], s["authorization"]) == (
            GATEWAY_KEY,
            "blue",
            "Basic dXNlcjpwdw==",
        )
    assert json.loads((run / "run.json").read_text())["headers"] == ["X-Api-Key", "X-Route", "authorization"]
    for f in run.rglob("*"):
        assert not f.is_file() or GATEWAY_KEY.encode() not in f.read_bytes(), f
    assert GATEWAY_KEY not in out.stdout + out.stderr


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("X-Api-Key", "'X-Api-Key' is not 'NAME: VALUE'"),
        (
            "X-Api-Key: $GOODPUT_TEST_UNSET",
            "X-Api-Key takes its value from $GOODPUT_TEST_UNSET, which is not set",
        ),
        ("Content-Type: text/plain", "Content-Type is set by the client itself"),
        ("X-Request-Id: 1", "X-Request-Id carries each request's id (--request-id-header)"),
    ],
)
def test_a_bad_header_is_one_line(zoo, tmp_path: Path, header: str, says: str) -> None:
    out = locust(f"{zoo.url}/zoo/vllm", tmp_path / "results", env_without_trust(), "-u", "1", "-t", "2s",
                 "--header", header)  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "goodput: error" in line]
    assert line == f"goodput: error: --header: {says}" or says in line, line
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--session-header", "X Session"], "--session-header: 'X Session' is not an HTTP header name"),
        (["--session-header", "x-request-id"], "--session-header: x-request-id is already sent"),
        (
            ["--session-header", "X-Tenant", "--header", "X-Tenant: a"],
            "--session-header: X-Tenant is already sent",
        ),
    ],
)
def test_a_bad_session_header_is_one_line(zoo, tmp_path: Path, args: list[str], says: str) -> None:
    out = locust(
        f"{zoo.url}/zoo/vllm", tmp_path / "results", env_without_trust(), "-u", "1", "-t", "2s", *args
    )
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "goodput: error" in line]
    assert line.startswith(f"goodput: error: {says}"), line
    assert "Traceback" not in out.stderr


# -- gateways and APIs that refuse a request field ------------------------------------------------
#: (field, the refusal's message, type, code) as the servers write them: new-api with such an upstream
#: and Azure OpenAI's older api-versions refuse stream_options; OpenAI's reasoning models refuse
#: max_tokens.
REFUSALS = {
    "stream_options": ("Unknown parameter: 'stream_options'.", "unknown_parameter"),
    "max_tokens": (
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        "unsupported_parameter",
    ),
}


@pytest.fixture
def refusing_gateway(sim_server) -> Callable[[str], contextlib.AbstractContextManager[str]]:
    """Factory: a real gateway in front of the simulated engine that refuses requests carrying
    `field` with a 400 (the servers' own error body) and passes every other request through,
    streaming the engine's answer back."""
    sim = sim_server("--profile", "latency")
    upstream = int(sim.url.rsplit(":", 1)[1])

    def gateway(field: str) -> contextlib.AbstractContextManager[str]:
        message, code = REFUSALS[field]
        refusal = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": field,
                                        "code": code}}).encode()  # fmt: skip

        class Gateway(Handler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if body and field in json.loads(body):
                    self.answer(400, refusal)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
                conn.request(self.command, self.path, body or None, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.getheader("Content-Type") or "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while data := resp.read1(65536):
                    self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                conn.close()

            do_GET = do_POST = _relay

        return http_server(Gateway)

    return gateway


@pytest.mark.parametrize(
    ("field", "option", "hint"),
    [
        ("stream_options", ["--stream-usage", "off"], "pass --stream-usage off"),
        ("max_tokens", ["--max-tokens-field", "max_completion_tokens"],
         "pass --max-tokens-field max_completion_tokens"),
    ],
)  # fmt: skip
def test_a_refused_request_field_stops_the_run_with_the_option_that_fixes_it(
    refusing_gateway, tmp_path: Path, field: str, option: list[str], hint: str
) -> None:
    """By default every request is refused and the run stops, naming the option; with it the run
    goes (without stream_options the counts come from the chunks; the cap as max_completion_tokens)."""
    env = env_without_trust()
    with refusing_gateway(field) as url:
        out = locust(url, tmp_path / "a", env, "-u", "2", "-r", "2", "-t", "20s", "--server-metrics", "off")
        assert out.returncode == 2, out.stderr[-3000:]
        (line,) = [line for line in out.stderr.splitlines() if "fails systematically" in line]
        assert REFUSALS[field][0] in line and hint in line, line
        out = locust(url, tmp_path / "b", env, "-u", "2", "-r", "2", "-t", "3s", "--server-metrics", "off",
                     "--max-tokens", "24", *option)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (run,) = list((tmp_path / "b").iterdir())
    with open(run / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["error"] != "cancelled"]
    assert rows and all(r["ok"] == "true" and int(r["output_tokens"]) <= 24 for r in rows), rows[:2]
    meta = json.loads((run / "run.json").read_text())
    if field == "stream_options":
        assert meta["stream_usage"] is False and {r["tokens_source"] for r in rows} == {"chunks"}
    else:
        assert meta["max_tokens_field"] == "max_completion_tokens"
        assert {r["tokens_source"] for r in rows} == {"usage"}


def test_a_server_still_loading_its_model_is_not_ready_not_foreign(tmp_path: Path) -> None:
    """llama-server answers 503 `Loading model` (type unavailable_error) to every route while it
    loads: the line says so, with the server's words, instead of doubting the API."""
    body = json.dumps(
        {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    ).encode()

    class Loading(Handler):
        def do_GET(self) -> None:
            self.answer(503, body)

    with http_server(Loading) as url:
        out = locust(url, tmp_path / "r", env_without_trust(), "-t", "2s")
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "goodput: error" in line]
    assert "HTTP 503 (Loading model) — the server is not ready" in line, line


@pytest.mark.parametrize(
    ("answer", "said"),
    [("array", "the answer is not a model list"), ("cut", "a broken answer (IncompleteRead)")],
)
def test_a_models_answer_that_is_no_model_list_is_one_line(answer: str, said: str) -> None:
    """A JSON array, or a body cut short of its Content-Length: one line naming the URL, no traceback."""
    from loadgen.run.target import TargetError, check

    class Odd(Handler):
        def do_GET(self) -> None:
            if answer == "array":
                self.answer(200, b"[]")
                return
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"data": [')
            self.close_connection = True

    with http_server(Odd) as url, pytest.raises(TargetError, match=rf"{url}/v1/models: {re.escape(said)}"):
        check(url, "", "OPENAI_API_KEY")
