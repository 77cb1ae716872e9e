"""Secrets stay secret and the web UI can be locked.

- An API key in the environment reaches no output file, log line or web UI page.
- Credentials in `--host` (user:password@) are refused at start, and when typed into the web form.
- `--web-login` (Locust 2.47 has no `--web-auth` any more): the page and the JSON routes refuse
  anonymous requests and accept the login form or HTTP Basic with the password from the environment.
- Locust binds the web UI to all interfaces unless `--web-host` says otherwise; Goodput warns.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import PYTHON, ROOT, free_port, wait_http

SECRET = "sk-test-SECRET-123"
WEB_PASSWORD = "web-pw-Q7x9"
URL_PASSWORD = "url-pw-Z3k1"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, str, dict]:
    """(status, body, headers) without following redirects."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with OPENER.open(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), dict(e.headers)
    except urllib.error.URLError:  # not listening (yet)
        return 0, "", {}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def wait_for(cond, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


# -- units ---------------------------------------------------------------------------------------


def test_safe_url_strips_credentials_and_survives_bad_urls() -> None:
    from loadgen.transport.urls import safe_url

    assert safe_url(f"http://user:{URL_PASSWORD}@10.0.0.1:8000/base?q=1#x") == "http://10.0.0.1:8000/base"
    assert safe_url("http://[::1]:8000/") == "http://[::1]:8000/"
    assert safe_url(f"http://user:{URL_PASSWORD}@127.0.0.1:notaport") == ""  # raised ValueError before


def test_credentials_on_the_command_line_are_refused_without_echo() -> None:
    from loadgen.run.target import TargetError, check_credentials

    for host, env in [(f"http://u:{URL_PASSWORD}@h:1", "OPENAI_API_KEY"), ("http://h:1", SECRET)]:
        with pytest.raises(TargetError) as e:
            check_credentials(host, env)
        assert URL_PASSWORD not in str(e.value) and SECRET not in str(e.value)
    check_credentials("http://h:1/v1", "MY_KEY_2")  # fine


def test_the_key_is_sent_as_a_bearer_token() -> None:
    from loadgen.transport.client import RawTransport

    t = RawTransport("http://127.0.0.1:9", SECRET)
    assert t.auth == {"Authorization": f"Bearer {SECRET}"}
    t.close()


def test_web_ui_binds_all_interfaces_by_default_and_goodput_warns(caplog: pytest.LogCaptureFixture) -> None:
    from locust.argument_parser import get_parser

    from loadgen.live.webauth import protect

    assert get_parser().parse_args(["-f", "locustfile.py"]).web_host == ""  # Locust: '' = all interfaces
    for web_host, warned in [("", True), ("*", True), ("127.0.0.1", False)]:
        caplog.clear()
        opts = SimpleNamespace(web_login=False, web_host=web_host, web_port=8089)
        with caplog.at_level(logging.WARNING, logger="goodput"):
            protect(SimpleNamespace(parsed_options=opts), web_ui=object())
        assert ("all interfaces" in caplog.text) == warned, (web_host, caplog.text)


# -- real processes ------------------------------------------------------------------------------


def start_locust(procs, tmp_path: Path, name: str, args: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    port = free_port()
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--web-host", "127.0.0.1", "--web-port", str(port),
           "--results-dir", str(tmp_path / "results"), *args]  # fmt: skip
    p = procs(cmd, name, env=env)
    p.url = f"http://127.0.0.1:{port}"
    return p


@pytest.mark.e2e
def test_api_key_reaches_no_file_log_or_page(sim_server, procs, tmp_path: Path) -> None:
    sim = sim_server()
    env = {"OPENAI_API_KEY": SECRET}
    html = tmp_path / "locust-report.html"
    ui = start_locust(procs, tmp_path, "locust",
                      ["--host", sim.url, "--autostart", "--autoquit", "1", "--shape", "none", "-u", "2", "-r", "2",
                       "-t", "5s", "--max-tokens", "16", "--html", str(html)], env)  # fmt: skip
    wait_http(ui.url + "/", proc=ui.popen)

    def requests_seen() -> bool:
        stats = json.loads(get(ui.url + "/stats/requests")[1])
        return any(s["num_requests"] for s in stats["stats"])

    wait_for(requests_seen, 20, "no request in the web UI's stats")
    pages = {
        path: get(ui.url + path) for path in ("/", "/stats/requests", "/logs", "/stats/report", "/llm/stats")
    }
    assert pages["/"][0] == 200 and pages["/stats/requests"][0] == 200
    for path, (_, body, _) in pages.items():
        assert SECRET not in body, f"the key is on the web UI page {path}"
    assert ui.popen.wait(40) in (0, 1), ui.log()[-2000:]

    (run,) = (tmp_path / "results").iterdir()
    a = subprocess.run([PYTHON, "-m", "analysis", str(run), "--no-plots"], cwd=ROOT, capture_output=True,
                       text=True, timeout=90)  # fmt: skip
    assert a.returncode == 0, a.stderr
    files = [*run.rglob("*"), html]
    names = {p.name for p in files}
    assert {
        "requests.csv",
        "run.json",
        "locust_stats.csv",
        "summary.md",
        "summary.json",
        "report.html",
    } <= names
    assert json.loads((run / "run.json").read_text())["requests_sent"] > 0
    for f in files:
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f"the key is in {f}"
    for text in (ui.log(), sim.log(), a.stdout, a.stderr):
        assert SECRET not in text


@pytest.mark.e2e
def test_web_login_refuses_anonymous_and_accepts_form_or_basic(sim_server, procs, tmp_path: Path) -> None:
    sim = sim_server()
    env = {"GOODPUT_WEB_PASSWORD": WEB_PASSWORD}
    ui = start_locust(procs, tmp_path, "locust", ["--host", sim.url, "--web-login", "--shape", "none"], env)
    wait_for(
        lambda: get(ui.url + "/login")[0] == 200 if ui.popen.poll() is None else True, 20, "no login page"
    )
    assert ui.popen.poll() is None, ui.log()

    status, _, headers = get(ui.url + "/")
    assert status == 302 and headers["Location"].endswith("/login")
    assert get(ui.url + "/stats/requests")[0] == 401
    assert get(ui.url + "/stats/requests", basic("goodput", "wrong"))[0] == 401
    assert get(ui.url + "/stats/requests", basic("someone", WEB_PASSWORD))[0] == 401
    good = basic("goodput", WEB_PASSWORD)
    status, body, _ = get(ui.url + "/stats/requests", good)
    assert status == 200 and "stats" in json.loads(body)
    assert get(ui.url + "/", good)[0] == 200
    if (
        get(ui.url + "/llm/stats", good)[0] == 200
    ):  # the LLM view's routes (loadgen/live/webui) are guarded too
        assert get(ui.url + "/llm/stats")[0] == 401

    def login(password: str) -> tuple[int, str, dict]:
        form = urllib.parse.urlencode({"username": "goodput", "password": password}).encode()
        return get(ui.url + "/login_submit", data=form)

    status, _, headers = login("wrong")
    assert status == 302 and headers["Location"].endswith("/login")
    if "Set-Cookie" in headers:  # the session carries the error message, not a login
        assert get(ui.url + "/stats/requests", {"Cookie": headers["Set-Cookie"].split(";", 1)[0]})[0] == 401
    status, _, headers = login(WEB_PASSWORD)
    assert status == 302 and not headers["Location"].endswith("/login")
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert get(ui.url + "/stats/requests", {"Cookie": cookie})[0] == 200

    # Credentials typed into the start form's host: refused, never logged, not kept for the page.
    form = urllib.parse.urlencode(
        {"user_count": 1, "spawn_rate": 1, "host": sim.url.replace("//", f"//user:{URL_PASSWORD}@")}
    ).encode()
    assert get(ui.url + "/swarm", good, data=form)[0] == 200
    wait_for(lambda: "credentials in the URL" in ui.log(), 10, "the form's credentials were not refused")
    assert URL_PASSWORD not in get(ui.url + "/", good)[1]
    assert WEB_PASSWORD not in ui.log() and URL_PASSWORD not in ui.log()
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
