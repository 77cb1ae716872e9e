"""The start form grouped, its shape note, the latency charts' scale, and the run folder after STOP,
in a real headless Chromium (as tests/browser/test_webui_browser.py, whose fixture and helpers this
uses). Screenshots: test-artifacts/webui_form.png (users, shape note, target, workload),
webui_form_shape.png (load shape, SLO, output), webui_llm_scaled.png, webui_stopped.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.test_webui_browser import (  # noqa: F401  (browser: the fixture)
    ARTIFACTS,
    browser,
    get_json,
    only_run,
    open_custom_parameters,
    start_web_locust,
    stop_and_settle,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.alone]

GROUPS = ["target", "workload", "shape", "slo", "output"]  # core/optgroups.py, most important first
SLO_TTFT_MS = 5000  # far above the simulated engine's TTFT (tens of ms)


def top(d, el) -> float:
    return d.execute_script("return arguments[0].getBoundingClientRect().top", el)


def field(d, name: str):
    from selenium.webdriver.common.by import By

    return d.find_element(By.CSS_SELECTOR, f'[data-goodput-field="{name}"]')


def fill(d, name: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = d.find_element(By.NAME, name)
    el.send_keys(Keys.CONTROL, "a", Keys.DELETE)
    if value:
        el.send_keys(value)


def note(d) -> dict:
    return d.execute_script(
        "var n = document.getElementById('goodput-shape-note');"
        "return n && {text: n.textContent, shape: n.dataset.shape, users: n.dataset.usesUsers}"
    )


def check_grouped_form(d) -> None:
    from selenium.webdriver.common.by import By

    headings = wait_for(
        "the Goodput headings", lambda: d.find_elements(By.CSS_SELECTOR, ".goodput-heading"), 10
    )
    by_top = sorted(headings, key=lambda h: top(d, h))
    assert [h.get_attribute("data-group") for h in by_top] == GROUPS
    edges = [top(d, h) for h in by_top] + [float("inf")]
    for name, group in (("model", "target"), ("client", "target"), ("dataset", "workload"),
                        ("max_tokens", "workload"), ("shape", "shape"), ("stages", "shape"), ("rate", "shape"),
                        ("slo", "slo"), ("run_name", "output"), ("results_dir", "output")):  # fmt: skip
        i = GROUPS.index(group)
        assert edges[i] < top(d, field(d, name)) < edges[i + 1], f"{name} is not under its {group} heading"
    tokens = field(d, "max_tokens")
    assert "Max output tokens" in tokens.text and "Max Tokens (" not in tokens.text, tokens.text
    assert "--max-tokens" in tokens.find_element(By.CSS_SELECTOR, ".goodput-help").text
    assert top(d, field(d, "model")) < top(d, field(d, "dataset")) < top(d, field(d, "shape"))


def check_shape_note(d) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    n = wait_for("the shape note", lambda: (x := note(d)) and x["shape"] and x, 10)
    assert n["shape"] == "step" and n["users"] == "0" and "Ramp up are not used" in n["text"], n
    fill(d, "stages", "10s:2,10s:4")
    n = wait_for("stages selected", lambda: (x := note(d)) and x["shape"] == "stages" and x, 10)
    assert "selected by --stages" in n["text"], n
    Select(d.find_element(By.NAME, "shape")).select_by_value("sweep")
    n = wait_for("the conflict shown", lambda: (x := note(d)) and "✗" in x["text"] and x, 10)
    assert "--stages: the sweep shape (--shape sweep) does not use it" in n["text"], n
    fill(d, "stages", "")
    Select(d.find_element(By.NAME, "shape")).select_by_value("none")
    n = wait_for("a plain run", lambda: (x := note(d)) and x["shape"] == "none" and x, 10)
    assert n["users"] == "1" and "set the load" in n["text"], n


def check_chart_scale(d, url: str) -> None:
    d.get(url + "/llm")
    ymax = wait_for(
        "the TTFT chart drawn",
        lambda: d.execute_script(
            "var s = document.querySelector('svg.chart[data-chart=ttft]');"
            "return s && +s.dataset.points >= 3 && +s.dataset.ymax"
        ),
        20,
    )
    pts = get_json(url + "/llm/stats")["points"]
    data_max = max(p[k] for p in pts for k in ("ttft_p50", "ttft_p95") if p[k] is not None)
    assert data_max <= ymax <= max(3 * data_max, 20), (ymax, data_max)  # fits the data, not the SLO
    off = d.execute_script(
        "return [...document.querySelectorAll('svg.chart[data-chart=ttft] line.ref')].map(l => l.dataset.off)"
    )
    assert off == ["1"], off
    marker = d.execute_script(
        "return document.querySelector('svg.chart[data-chart=ttft] .ref-off').textContent"
    )
    assert "SLO 5.00 s" in marker and "above the scale" in marker, marker
    d.save_screenshot(str(ARTIFACTS / "webui_llm_scaled.png"))


def test_form_groups_shape_note_chart_scale_and_run_folder(
    browser,  # noqa: F811  (the fixture imported above)
    procs,
    sim_server,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    sim = sim_server()
    results = tmp_path / "results"
    loc = start_web_locust(procs, sim.url, results)
    d = browser
    d.set_window_size(1400, 3000)  # the whole form in one screenshot
    d.get(loc.url + "/")
    wait_for("the start form", lambda: d.find_element(By.NAME, "userCount"), 20)
    open_custom_parameters(d)
    check_grouped_form(d)
    check_shape_note(d)
    fill(d, "userCount", "3")
    fill(d, "spawnRate", "3")
    fill(d, "maxTokens", "16")
    fill(d, "slo", f"ttft={SLO_TTFT_MS}ms")
    ARTIFACTS.mkdir(exist_ok=True)
    for name, where in (
        ("webui_form.png", "[name=userCount]"),
        ("webui_form_shape.png", "[data-group=shape]"),
    ):
        d.execute_script("document.querySelector(arguments[0]).scrollIntoView({block: 'start'})", where)
        d.save_screenshot(str(ARTIFACTS / name))
    d.find_element(By.XPATH, "//button[@type='submit']").click()

    run = wait_for("a run folder", lambda: only_run(results), 20)
    wait_for(
        "TTFT points",
        lambda: sum(1 for p in get_json(loc.url + "/llm/stats")["points"] if p["ttft_p95"]) >= 4,
        40,
    )
    d.set_window_size(1400, 1500)
    check_chart_scale(d, loc.url)

    d.get(loc.url + "/")
    wait_for(
        "the STOP button",
        lambda: d.find_element(By.XPATH, "//button[translate(normalize-space(), 'stop', 'STOP')='STOP']"),
        15,
    ).click()
    stop_and_settle(loc.url, results)
    shown = wait_for(
        "the run folder after STOP",
        lambda: d.execute_script(
            "var c = document.getElementById('goodput-run-card');"
            "return c && getComputedStyle(c).display !== 'none' && {dir: c.querySelector('[data-run-dir]').dataset.runDir,"
            " cmd: c.querySelector('.goodput-analyse').textContent, text: c.textContent}"
        ),
        15,
    )
    assert shown["dir"] == str(run.resolve()), shown
    assert shown["cmd"] == f"python -m analysis {run.resolve()}", shown
    assert "completed" in shown["text"] or "stopped" in shown["text"], shown
    d.save_screenshot(str(ARTIFACTS / "webui_stopped.png"))
