"""The live figures as a person sees them: the console table of a real run, and the web UI's feed.

A headless run used to print `goodput 0.00 req/s` while its requests were good; the console and
the web UI each had their own window. Here the console's output is parsed, and its figures are
compared with /llm/stats for the same sample; a run stopped mid-stream keeps what its cancelled
requests had received.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT, Proc, free_port

pytestmark = pytest.mark.e2e
USERS = 4
SAMPLE = re.compile(
    r"^sent (\d+)  ok (\d+)  failed (\d+)  in flight (\d+)  at ([\d.]+) s of the run \(sample (\d+)\)$", re.M
)


def tables(log: str) -> list[dict]:
    """Every console table in a log: its rate rows (last window, run) and its closing line."""
    out = []
    for m in SAMPLE.finditer(log):
        block = log[max(0, m.start() - 1500) : m.start()]
        block = block[block.rfind("INFO/goodput:") :]
        rates = {}
        for label in (
            "completed req/s",
            "goodput req/s",
            "output tok/s",
            "SLO[chat] attainment",
            "error ratio",
        ):
            r = re.search(rf"^{re.escape(label)}\s+(\S+)\s+(\S+)$", block, re.M)
            assert r, f"no '{label}' row in:\n{block}"
            rates[label] = (r.group(1), r.group(2))
        sent, ok, failed, in_flight, at_s, seq = m.groups()
        out.append({"rates": rates, "sent": int(sent), "ok": int(ok), "failed": int(failed),
                    "in_flight": int(in_flight), "at_s": float(at_s), "seq": int(seq)})  # fmt: skip
    return out


def test_a_headless_run_shows_its_good_requests_and_cancelled_rows_keep_their_tokens(
    sim_server, tmp_path: Path
) -> None:
    sim = sim_server()
    results = tmp_path / "results"
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", sim.url,
           "--results-dir", str(results), "--shape", "none", "-u", str(USERS), "-r", str(USERS), "-t", "13s",
           "--max-tokens", "150", "--ignore-eos"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    printed = tables(log)
    assert printed, f"no LLM table in the console:\n{log[-3000:]}"
    t = printed[-1]
    for label in ("goodput req/s", "completed req/s", "output tok/s"):
        now, run = (float(v) for v in t["rates"][label])
        assert now > 0 and run > 0, f"{label} shows {t['rates'][label]} for a run of good requests"
    assert float(t["rates"]["goodput req/s"][0]) <= float(t["rates"]["completed req/s"][0])
    assert t["ok"] > 0 and t["failed"] == 0
    assert t["ok"] + t["failed"] < t["sent"] <= t["ok"] + t["failed"] + USERS, (
        "sent counts requests in flight"
    )

    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run_dir / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"
    cancelled = [r for r in rows if r["error"] == "cancelled"]
    streaming = [r for r in cancelled if int(r["n_chunks"]) > 0]
    assert streaming, f"no request was cut mid-stream at the end: {cancelled}"
    for r in streaming:  # what arrived before the stop stays on the row
        n = int(r["n_chunks"])
        assert r["tokens_source"] == "chunks" and int(r["output_tokens"]) == n < 150, r
        assert float(r["ttft_s"]) > 0 and len(r["itl_s"].split(";")) == n - 1, r
        assert float(r["e2e_s"]) >= float(r["ttft_s"]) and r["ok"] == "false" and r["http_status"] == "200", r


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_the_console_and_the_web_ui_show_the_same_figures_for_the_same_window(
    sim_server, procs: Callable[..., Proc], tmp_path: Path
) -> None:
    sim = sim_server()
    port = free_port()
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--host", sim.url, "--web-host", "127.0.0.1",
           "--web-port", str(port), "--autostart", "--autoquit", "1", "--print-stats",
           "--results-dir", str(tmp_path / "results"), "--shape", "none", "-u", str(USERS), "-r", str(USERS),
           "-t", "16s", "--max-tokens", "60"]  # fmt: skip
    load = procs(cmd, "locust-web")
    deadline = time.monotonic() + 40
    printed: list[dict] = []
    while not printed and time.monotonic() < deadline:
        assert load.popen.poll() is None, load.log()[-3000:]
        time.sleep(0.3)
        printed = tables(load.log())
    assert printed, f"no LLM table printed with --print-stats:\n{load.log()[-3000:]}"
    t = printed[0]
    stats = get_json(f"http://127.0.0.1:{port}/llm/stats?since=0")
    (point,) = [p for p in stats["points"] if p["seq"] == t["seq"]]
    assert point["elapsed_s"] == t["at_s"]
    web = {
        "completed req/s": f"{point['ok_rps']:.2f}",
        "goodput req/s": f"{point['goodput_rps']:.2f}",
        "output tok/s": f"{point['out_tok_s']:.0f}",
        "SLO[chat] attainment": f"{point['attainment']:.1%}",
    }
    assert {k: t["rates"][k][0] for k in web} == web, (t, point)
    assert float(web["goodput req/s"]) > 0, point
    # the window is the last 10 s, or the run so far when younger (the console's clock starts with
    # the process, the run with the web UI's autostart: its first table can come before 10 s of run)
    assert stats["window_s"] == 10.0
    assert point["window_s"] == pytest.approx(min(10.0, point["elapsed_s"]), abs=1.1), point
    assert load.popen.wait(40) in (0, 1), load.log()[-3000:]
