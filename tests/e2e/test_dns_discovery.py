"""Replicas found by DNS (`--server-metrics dns+http://NAME:PORT/metrics`), end to end.

Two simulated engines share one port on two loopback addresses (127.0.0.1 and 127.0.0.2), as a
headless Service's pods share the container port on their own IPs. The scraper, given a resolver that
answers as a DNS server would while pods come and go (both, then one, then both again), scrapes each
address the name has at each round, labels its samples `IP:PORT`, drops a vanished one and picks it
up again. Then a whole run: `dns+http://localhost:PORT/metrics` through the system's own resolver."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from loadgen.monitors.servermetrics import Scraper, resolve
from tests.conftest import PYTHON, ROOT, free_port, wait_http

pytestmark = pytest.mark.e2e
ADDRESSES = ["127.0.0.1", "127.0.0.2"]


def instances(path: Path) -> list[set[str]]:
    """Per scrape round (rows in round order), the `instance` labels it holds."""
    rounds: dict[str, set[str]] = {}
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            lab = dict(p.split("=", 1) for p in r["labels"].split(";") if p)
            rounds.setdefault(r["t"], set()).add(lab.get("instance", ""))
    return list(rounds.values())


def test_each_address_a_name_has_is_scraped_as_it_comes_and_goes(procs, tmp_path: Path) -> None:
    port = free_port()
    for address in ADDRESSES:
        p = procs([PYTHON, "-m", "simserver", "--host", address, "--port", str(port)], f"simserver-{address}")
        wait_http(f"http://{address}:{port}/health", proc=p.popen)
    answers = [ADDRESSES, ADDRESSES[1:], OSError("Temporary failure in name resolution"), ADDRESSES]

    def resolver(name: str, asked_port: int) -> list[str]:
        assert (name, asked_port) == ("engines.default.svc", port)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    mode, urls = resolve(f"dns+http://engines.default.svc:{port}/metrics", "http://127.0.0.1:1")
    meta: dict = {}
    scraper = Scraper(urls, mode, 1.0, tmp_path / "server_metrics.csv", meta=meta, resolver=resolver)
    assert [scraper.scrape_once() for _ in range(4)] == [True] * 4
    scraper.close()
    names = [f"{a}:{port}" for a in ADDRESSES]
    # both; the second only; the lookup failed — the last answer still scraped; both again
    assert instances(tmp_path / "server_metrics.csv") == [set(names), {names[1]}, {names[1]}, set(names)]
    sm = meta["server_metrics"]
    assert sm["url"] == f"dns+http://engines.default.svc:{port}/metrics" and sm["failures"] == 0
    assert [(x["instance"], x["scrapes"], x.get("discovered")) for x in sm["instances"]] == [
        (names[0], 2, True), (names[1], 4, True)
    ]  # fmt: skip
    assert sm["lookups"] == [{"url": sm["url"], "addresses": ADDRESSES, "failures": 1,
                              "last_error": "Temporary failure in name resolution"}]  # fmt: skip


def test_a_run_scrapes_the_addresses_the_system_resolver_gives(sim_server, tmp_path: Path) -> None:
    engine = sim_server("--profile", "latency")
    port = engine.url.rsplit(":", 1)[1]
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", engine.url,
           "--results-dir", str(tmp_path / "r"), "-u", "2", "-r", "2", "-t", "4s", "--max-tokens", "8",
           "--scrape-interval", "1s", "--server-metrics", f"dns+http://localhost:{port}/metrics"]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    (run,) = [p for p in (tmp_path / "r").iterdir() if p.is_dir()]
    sm = json.loads((run / "run.json").read_text())["server_metrics"]
    (lookup,) = sm["lookups"]
    assert "127.0.0.1" in lookup["addresses"] and lookup["failures"] == 0
    mine = next(x for x in sm["instances"] if x["instance"] == f"127.0.0.1:{port}")
    assert mine["scrapes"] >= 3 and mine["failures"] == 0
    assert all(f"127.0.0.1:{port}" in r for r in instances(run / "server_metrics.csv"))
