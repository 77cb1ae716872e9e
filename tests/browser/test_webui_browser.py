"""The LLM view in Locust's web UI, driven in a real headless Chromium (Debian `chromium` + `chromium-driver`).

A run is started FROM THE PAGE (form filled, START clicked) against the simulated engine; the LLM
tab and the /llm charts page must show data points; the Aggregated row must count real requests
only. Screenshots go to test-artifacts/ (gitignored). Without Chromium or its driver the test
skips, except in CI (CI=true) where that is a failure: `.ci/run` installs both. Selenium Manager
is kept offline, so no browser or driver is ever downloaded at test time.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON, Proc, free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
)  # fmt: skip
FORM_OPTIONS = (
    "model",
    "dataset",
    "slo",
    "maxTokens",
    "client",
    "shape",
    "stepUsers",
    "stepInterval",
    "maxUsers",
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser]  # the Chromium test below is marked `alone`


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI installs Debian's chromium and chromium-driver; see .ci/run)")
    pytest.skip(f"{reason}: apt-get install -y chromium chromium-driver")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        _missing("chromium is not installed")
    if not os.access(DRIVER, os.X_OK):
        _missing(f"{DRIVER} is not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (it is pinned in requirements-dev.txt)")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never fetch a browser or a driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = exe
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    opts.add_argument("--window-size=1400,1000")
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def post(url: str, form: dict) -> dict:
    data = urllib.parse.urlencode(form).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as r:
        return json.load(r)


def wait_for(what: str, fn: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.5) -> Any:
    """Poll `fn` until it returns something truthy (bounded in time)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # page or server not ready yet
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")


def open_custom_parameters(d: Any) -> None:
    """Expand the start form's "Custom parameters" (Goodput's options) and wait until they show.

    A click that lands while the page is still settling can be lost (a cold Chromium in CI lost one):
    the section's own `aria-expanded` says whether it opened, and it is clicked again only if not."""
    from selenium.webdriver.common.by import By

    section = "//*[normalize-space(text())='Custom parameters']/ancestor-or-self::*[@aria-expanded][1]"

    def shown() -> bool:
        el = d.find_element(By.XPATH, section)
        if el.get_attribute("aria-expanded") != "true":
            el.click()
            return False
        return d.find_element(By.NAME, "maxTokens").is_displayed()

    wait_for("Goodput options in the form", shown, 20)


def start_web_locust(procs: Callable[..., Proc], host: str, results: Path, *args: str) -> Proc:
    port = free_port()
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--web-host", "127.0.0.1", "--web-port", str(port),
           "--host", host, "--results-dir", str(results), *args]  # fmt: skip
    p = procs(cmd, "locust-web")
    p.url = f"http://127.0.0.1:{port}"
    wait_http(p.url + "/", timeout_s=30, proc=p.popen)
    return p


def stop_and_settle(url: str, results: Path) -> dict:
    """Stopped, and the run folder closed: run.json counts the rows received (written at the close)."""
    wait_for("state stopped", lambda: get_json(url + "/stats/requests")["state"] == "stopped", 20)

    def closed() -> bool:
        metas = [json.loads(p.read_text()) for p in results.glob("*/run.json")]
        return bool(metas) and all("rows_received" in m for m in metas)

    wait_for("the run folder closed", closed, 20)
    return get_json(url + "/stats/requests")


def assert_aggregated_is_real_requests(url: str) -> dict:
    """Locust's table holds the chat requests and Aggregated, nothing of TTFT/TPOT/ITL."""
    stats = get_json(url + "/stats/requests")
    names = [(s["method"], s["name"]) for s in stats["stats"]]
    assert names == [("POST", "/v1/chat/completions"), ("", "Aggregated")], names
    agg = stats["stats"][-1]
    fig = get_json(url + "/llm/stats")["figures"]
    assert agg["num_requests"] == fig["ok"] + fig["failed"] > 0
    assert agg["num_failures"] == fig["failed"]
    return agg


def only_run(results: Path) -> Path:
    runs = [p for p in results.iterdir() if p.is_dir()] if results.exists() else []
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.alone
def test_llm_view_in_chromium_run_started_from_the_form(browser, procs, sim_server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    sim = sim_server()
    results = tmp_path / "results"
    loc = start_web_locust(procs, sim.url, results)
    d = browser
    d.get(loc.url + "/")
    wait_for("the start form", lambda: d.find_element(By.NAME, "userCount"), 20)

    def fill(name: str, value: str) -> None:
        el = d.find_element(By.NAME, name)
        el.send_keys(Keys.CONTROL, "a", Keys.DELETE)
        el.send_keys(value)

    fill("userCount", "4")
    fill("spawnRate", "4")
    open_custom_parameters(d)
    for name in FORM_OPTIONS:
        assert d.find_elements(By.NAME, name), f"--{name} is missing from the start form"
    Select(d.find_element(By.NAME, "shape")).select_by_value("none")  # plain -u/-r from the form
    fill("maxTokens", "24")
    fill("runName", "webui")
    fill("slo", "ttft=400ms,tpot=100ms")
    d.find_element(By.XPATH, "//button[@type='submit']").click()

    # The run started from the page, with the form's options.
    run = wait_for("a run folder", lambda: only_run(results), 20)
    wait_for("run.json", lambda: (run / "run.json").exists(), 10)
    assert run.name.startswith("webui-")
    meta = json.loads((run / "run.json").read_text())
    assert meta["max_tokens"] == 24 and meta["slo"]["ttft_s"] == 0.4 and meta["slo"]["tpot_s"] == 0.1

    # Enough points for lines on every chart (a point every 2 s).
    wait_for(
        "LLM time series points with completed requests",
        lambda: sum(1 for p in get_json(loc.url + "/llm/stats")["points"] if p["e2e_p50"]) >= 4,
        40,
    )

    # The LLM tab of Locust's own UI: the percentile table and the embedded charts.
    d.find_element(By.XPATH, "//button[normalize-space()='LLM']").click()
    wait_for(
        "TTFT row in the LLM tab",
        lambda: any(
            "TTFT" in r.text and " ms" in r.text
            for r in d.find_elements(By.CSS_SELECTOR, "#root main table tr")
        ),
        15,
    )
    frame = wait_for(
        "embedded charts", lambda: d.find_element(By.CSS_SELECTOR, "#goodput-llm-charts iframe"), 10
    )
    d.switch_to.frame(frame)
    wait_for(
        "charts drawn in the tab", lambda: d.execute_script("return window.goodputLLM.points.length") >= 4, 15
    )
    d.switch_to.default_content()
    wait_for("the page drawn", lambda: d.execute_script("return document.readyState") == "complete", 10)
    ARTIFACTS.mkdir(exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / "webui_llm_tab.png"))

    # The charts page on its own: every chart has data points.
    d.set_window_size(1400, 1500)
    d.get(loc.url + "/llm")
    counts = wait_for(
        "every LLM chart with points",
        lambda: (
            c
            if (c := d.execute_script(
                "return Object.fromEntries([...document.querySelectorAll('svg.chart')]"
                ".map(s => [s.dataset.chart, +s.dataset.points]))"
            )) and len(c) == 9 and min(c.values()) >= 3
            else None
        ),
        20,
    )  # fmt: skip
    assert set(counts) == {"ttft", "tpot", "itl", "e2e", "goodput", "attainment", "tokens", "load", "errors"}
    drawn = d.execute_script(
        "return [...document.querySelectorAll('svg.chart[data-chart=ttft] path')].map(p => +p.dataset.n)"
    )
    assert len(drawn) == 2 and min(drawn) >= 3, drawn  # p50 and p95 lines
    slo_line = d.find_element(By.CSS_SELECTOR, "[data-chart=ttft]").find_element(By.XPATH, "../..").text
    assert "SLO 400 ms" in slo_line, slo_line
    d.save_screenshot(str(ARTIFACTS / "webui_llm_page.png"))

    # Stop from the page; then Locust's Aggregated row must equal the LLM view's request count.
    d.get(loc.url + "/")
    wait_for(
        "the STOP button",
        lambda: d.find_element(By.XPATH, "//button[translate(normalize-space(), 'stop', 'STOP')='STOP']"),
        15,
    ).click()
    stop_and_settle(loc.url, results)
    agg = assert_aggregated_is_real_requests(loc.url)
    with open(run / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["error"] != "cancelled"]
    assert len(rows) == agg["num_requests"]
    assert all(int(r["output_tokens"]) <= 24 for r in rows if r["ok"] == "true")
    with urllib.request.urlopen(loc.url + "/llm/series.csv", timeout=5) as r:
        series = list(csv.reader(r.read().decode().splitlines()))
    assert series[0][:3] == ["seq", "t", "elapsed_s"] and len(series) > 4


def test_form_options_are_revalidated_at_start(procs, sim_server, tmp_path: Path) -> None:
    """The web UI path: a bad option typed in the form stops the run with one logged line, no run folder."""
    sim = sim_server()
    results = tmp_path / "results"
    loc = start_web_locust(procs, sim.url, results)
    base = {
        "user_count": "1",
        "spawn_rate": "1",
        "host": sim.url,
        "shape": "none",
        "slo": "chat",
        "model": "",
    }
    # The form keeps what was typed last, so each attempt sends every field it relies on.
    for bad, needle in (({"slo": "ttft=fast"}, "ttft=fast"), ({"model": "no-such-model"}, "no-such-model")):
        post(loc.url + "/swarm", {**base, **bad})
        wait_for(f"the error naming {needle}", lambda n=needle: n in loc.log(), 10)
        wait_for(
            "the run to be refused", lambda: get_json(loc.url + "/stats/requests")["state"] == "stopped", 15
        )
        assert not results.exists() or not any(results.iterdir())
    assert "Traceback" not in loc.log()


@pytest.mark.parametrize(("field", "value"), [("dataset", "no-such-dataset"), ("max_tokens", "-4")])
def test_form_dataset_and_max_tokens_are_revalidated(
    procs, sim_server, tmp_path: Path, field: str, value: str
) -> None:
    sim = sim_server()
    results = tmp_path / "results"
    loc = start_web_locust(procs, sim.url, results)
    post(
        loc.url + "/swarm",
        {"user_count": "1", "spawn_rate": "1", "host": sim.url, "shape": "none", field: value},
    )

    # Refused: one "goodput:" line naming the value. Anything else shows fast: a traceback or a run folder.
    def outcome() -> str:
        log = loc.log()
        if "Traceback" in log:
            return "traceback"
        if results.exists() and any(results.iterdir()):
            return "run folder"
        refused = any("goodput:" in line and value in line for line in log.splitlines())
        return "refused" if refused else ""

    seen = wait_for("a refusal, a traceback or a run folder", outcome, 10)
    post(loc.url + "/stop", {})
    assert seen == "refused"


def test_distributed_master_serves_the_merged_view(procs, sim_server, tmp_path: Path) -> None:
    """Master with the web UI + one worker: points, in-flight counts and percentiles arrive from the worker."""
    sim = sim_server()
    mport = free_port()
    loc = start_web_locust(procs, sim.url, tmp_path / "results", "--master", "--master-bind-host", "127.0.0.1",
                           "--master-bind-port", str(mport), "--expect-workers", "1")  # fmt: skip
    procs([PYTHON, "-m", "locust", "-f", "locustfile.py", "--worker", "--master-host", "127.0.0.1",
           "--master-port", str(mport)], "locust-worker")  # fmt: skip
    wait_for("the worker", lambda: get_json(loc.url + "/worker-count")["worker_count"] == 1, 20)
    assert post(loc.url + "/swarm", {"user_count": "4", "spawn_rate": "4", "host": sim.url, "shape": "none",
                                     "max_tokens": "32"})["success"]  # fmt: skip
    pts = wait_for(
        "merged points with requests in flight",
        lambda: [
            p for p in get_json(loc.url + "/llm/stats")["points"] if p["ttft_p95"] and p["in_flight"] > 0
        ],
        40,
    )
    p = pts[-1]
    assert p["users"] == 4 and 1 <= p["in_flight"] <= 4 and p["ok_rps"] > 0 and p["out_tok_s"] > 0
    payload = get_json(loc.url + "/llm/stats")
    assert payload["run"]["workers"] == 1
    assert {r["metric"] for r in payload["latency"] if r["count"] > 0} == {"TTFT", "TPOT", "ITL", "E2E"}
    post(loc.url + "/stop", {})
    stop_and_settle(loc.url, tmp_path / "results")
    assert_aggregated_is_real_requests(loc.url)
