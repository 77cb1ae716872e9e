"""A router target in the arena: its replicas (`backends:`), their URLs in the router's command, its
metrics pages per target (`server_metrics:`), the checks that find a mistake before anything starts,
and the signatures of targets without them unchanged."""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from arena.matrix import MatrixError, load_matrix
from arena.runner import Layout, locust_command
from arena.targets import Ports

ROOT = Path(__file__).resolve().parents[3]
ROUTER = """
targets:
  - label: "2x-{{policy}}"
    backends:
      replicas: 3
      simserver: {{profile: latency}}
    launch: "{{python}} -m vllm_router.launch_router --port {{port}} --worker-urls {{backends}} --policy {{policy}}
      --prometheus-port {{metrics_port}}"
    grid: {{policy: [round_robin, cache_aware], max_num_seqs: [4]}}
    server_metrics: "http://{{host}}:{{metrics_port}}/metrics,{{backend_metrics}}"
{more}
datasets: [random]
shapes: [{{duration: 10s}}]
{top}
"""


def matrix(tmp_path: Path, more: str = "", top: str = "") -> Path:
    p = tmp_path / "m.yaml"
    p.write_text(ROUTER.format(more=more, top=top))
    return p


def test_replicas_are_started_from_one_command_and_the_router_takes_their_urls(tmp_path):
    m = load_matrix(matrix(tmp_path))
    rr, ca = m.targets
    assert (rr.label, ca.label) == ("2x-round_robin", "2x-cache_aware")
    b = rr.backends
    assert b is not None and b.replicas == 3 and b.health == "/health" and b.engine == "simserver"
    # the grid key no command uses is the simulated replicas' profile override
    replica = b.command(Ports(9001).values())
    assert replica[:7] == [sys.executable, "-m", "simserver", "--host", "127.0.0.1", "--port", "9001"]
    assert replica[-2:] == ["--set", "max_num_seqs=4"] and "--set" not in rr.launch
    urls = ("http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003")
    ports = Ports(8000, 8001, urls)
    cmd = rr.command(ports)
    at = cmd.index("--worker-urls")
    assert cmd[at + 1 : at + 5] == [*urls, "--policy"]  # one argument per replica
    assert cmd[-1] == "8001" and "cache_aware" in ca.command(ports)
    pages = rr.metrics_pages(ports).split(",")
    assert pages == ["http://127.0.0.1:8001/metrics", *(u + "/metrics" for u in urls)]
    assert rr.engine == "vllm_router + 3× simserver"
    assert (
        "--worker-urls {backends}" in rr.describe() and "in front of 3 × python -m simserver" in rr.describe()
    )
    cmd = locust_command(m, m.cells()[0], "http://127.0.0.1:8000", Layout(tmp_path), rr.metrics_pages(ports))
    assert cmd[-2:] == ["--server-metrics", ",".join(pages)]
    assert locust_command(m, m.cells()[0], "http://h", Layout(tmp_path))[-2] != "--server-metrics"


def test_backends_inside_a_longer_argument_are_joined_by_commas(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text(
        """
targets:
  - label: gw
    backends: {replicas: 2, launch: "{python} -m simserver --port {port} --set max_num_seqs={n}"}
    launch: ["{python}", "-m", "gateway", "--port", "{port}", "--upstreams={backends}"]
    grid: {n: [2]}
datasets: [random]
shapes: [{duration: 10s}]
"""
    )
    (t,) = load_matrix(p).targets
    assert t.command(Ports(1, 2, ("http://a:1", "http://b:2")))[-1] == "--upstreams=http://a:1,http://b:2"
    assert t.backends is not None and t.backends.command(Ports(7).values())[-1] == "max_num_seqs=2"
    assert t.engine == "gateway + 2× simserver" and t.server_metrics == ""


def test_a_url_target_takes_its_pages_as_they_are(tmp_path):
    m = load_matrix(
        matrix(
            tmp_path,
            '  - {label: prod, url: "http://10.0.0.5:8000", server_metrics: "http://10.0.0.5:29000/metrics"}',
        )
    )
    assert m.targets[-1].metrics_pages(Ports(0)) == "http://10.0.0.5:29000/metrics"


@pytest.mark.parametrize(
    ("more", "top", "says"),
    [
        ("  - {label: x, simserver: {profile: latency}, backends: {simserver: {profile: latency}}}", "",
         "backends need a router in front of them"),
        ("  - {label: x, launch: '{python} gateway --port {port}', backends: {simserver: latency}}", "",
         "must take its replicas' URLs: add {backends}"),
        ("  - {label: x, launch: '{python} gateway --port {port} --up {backends}'}", "",
         "{backends} needs a backends: entry"),
        ("  - {label: x, simserver: latency, server_metrics: 'http://{host}:{port}/m,{backend_metrics}'}", "",
         "{backend_metrics} needs a backends: entry"),
        ("  - {label: x, launch: '{python} gw --port {port} {backends}', backends: {launch: '{python} eng --listen 80'}}", "",
         "each replica's command must take the port Goodput picks"),
        ("  - {label: x, launch: '{python} gw --port {port} {backends}', backends: {launch: '{python} e {port} {metrics_port}'}}", "",
         "unknown placeholder {metrics_port}"),
        ("  - {label: x, launch: '{python} gw --port {port} {backends}', backends: {replicas: 0, simserver: latency}}", "",
         "replicas: expected a whole number ≥ 1"),
        ("  - {label: x, launch: '{python} gw --port {port} {backends}', backends: {replicas: 65, simserver: latency}}", "",
         "at most 64 replicas"),
        ("  - {label: x, launch: '{python} gw --port {port} {backends}', backends: {simserver: latency, launch: '{python} e {port}'}}", "",
         "give exactly one of launch, simserver"),
        ("  - {label: x, launch: '{python} gw --port {port} {backends}', backends: {simserver: latency, size: 2}}", "",
         "backends.size: unknown key"),
        ("  - {label: x, simserver: latency, server_metrics: 'http://{host}:{prt}/metrics'}", "",
         "unknown placeholder {prt}"),
        ("  - {label: x, url: 'http://h:1', server_metrics: 'http://{host}:9/metrics'}", "",
         "a running server's pages are given as they are"),
        ("", "load: {args: '--server-metrics http://h:9/metrics'}",
         "--server-metrics is given here and by target '2x-round_robin'"),
    ],
)  # fmt: skip
def test_a_mistake_is_one_line_naming_its_place(tmp_path, more, top, says):
    with pytest.raises(MatrixError) as e:
        load_matrix(matrix(tmp_path, more, top))
    assert says in str(e.value) and str(e.value).startswith(str(tmp_path / "m.yaml") + ":")
    assert "\n" not in str(e.value)


def test_signatures_of_targets_without_replicas_or_pages_are_unchanged(tmp_path):
    """A finished cell of an older matrix must still count on a rerun: the facts behind a plain
    target's signature are the ones they were before router targets existed."""
    m = load_matrix(ROOT / "examples" / "arena.yaml")
    c = m.cells()[0]
    facts = [c.target.url, list(c.target.launch), list(c.target.env), c.dataset, list(c.shape.args)]
    facts += [m.load_args, m.processes]
    assert c.signature == hashlib.sha256(json.dumps(facts, default=str).encode()).hexdigest()[:16]
    # the replicas and the pages are part of what a router cell was run with
    base = load_matrix(matrix(tmp_path)).cells()[0].signature
    other = ROUTER.replace("replicas: 3", "replicas: 2")
    (tmp_path / "m2.yaml").write_text(other.format(more="", top=""))
    assert load_matrix(tmp_path / "m2.yaml").cells()[0].signature != base
    pages = ROUTER.replace(",{{backend_metrics}}", "")
    (tmp_path / "m3.yaml").write_text(pages.format(more="", top=""))
    assert load_matrix(tmp_path / "m3.yaml").cells()[0].signature != base


def test_the_router_example_expands_and_its_dry_run_names_every_process(capsys):
    from arena.__main__ import main

    m = load_matrix(ROOT / "examples" / "arena-router.yaml")
    labels = [
        "smg-round_robin",
        "smg-cache_aware",
        "vllm-router-cache_aware",
        "vllm-router-consistent_hash",
        "1x",
    ]
    assert [t.label for t in m.targets] == labels
    assert [t.backends.replicas if t.backends else 0 for t in m.targets] == [2, 2, 2, 2, 0]
    assert len(m.cells()) == 10 and m.targets[0].model == "sim-llm"
    assert [t.load_args for t in m.targets][2:4] == [(), ("--session-header", "X-Session-Id")]
    assert main(["run", str(ROOT / "examples" / "arena-router.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert (
        out.count("    replicas: 2 × ") == 8
        and out.count("--worker-urls http://127.0.0.1:REPLICA_PORT_1 ") == 8
    )
    assert (
        out.count("--server-metrics http://127.0.0.1:METRICS_PORT/metrics,http://127.0.0.1:REPLICA_PORT_1/")
        == 8
    )
    assert out.count("--server-metrics http://127.0.0.1:PORT/metrics") == 2
    assert out.count("--session-header X-Session-Id") == 2  # its two cells only


def test_a_replica_that_exits_fails_the_cell_naming_it_and_its_log(tmp_path):
    from arena.procs import CellError, start_server

    p = tmp_path / "m.yaml"
    p.write_text(
        """
targets:
  - label: gw
    backends: {replicas: 2, launch: ["{python}", "-c", "import sys; print('no GPU'); sys.exit(3)", "{port}"]}
    launch: ["{python}", "-c", "import time; time.sleep(60)", "{port}", "{backends}"]
datasets: [random]
shapes: [{duration: 10s}]
"""
    )
    (t,) = load_matrix(p).targets
    with pytest.raises(CellError) as e:
        start_server(t, tmp_path / "logs", "cell")
    assert str(e.value).startswith("target 'gw', replica 1: launch command exited with status 3 before it was "
                                   "healthy: no GPU (log: ")  # fmt: skip
    assert sorted(x.name for x in (tmp_path / "logs").iterdir()) == ["cell.replica1.log", "cell.replica2.log"]


def test_a_targets_own_load_options_follow_the_matrixs_and_sign_its_cells(tmp_path):
    """`load_args:` — what one router needs of the client (a session header) and the others do not."""
    m = load_matrix(
        matrix(tmp_path, "  - {label: ch, simserver: latency, load_args: '--session-header X-Session-Id'}",
               "load: {max_tokens: 16}")
    )  # fmt: skip
    cells = {c.target.label: c for c in m.cells()}
    cmd = locust_command(m, cells["ch"], "http://h", Layout(tmp_path))
    at = cmd.index("--max-tokens")
    assert cmd[at : at + 4] == ["--max-tokens", "16", "--session-header", "X-Session-Id"]
    assert "--session-header" not in locust_command(m, cells["2x-round_robin"], "http://h", Layout(tmp_path))
    listed = load_matrix(
        matrix(tmp_path, "  - {label: ch, simserver: latency, load_args: [--api, completions]}")
    )
    assert listed.targets[-1].load_args == ("--api", "completions")
    plain = load_matrix(matrix(tmp_path, "  - {label: ch, simserver: latency}", "load: {max_tokens: 16}"))
    signatures = {c.target.label: c.signature for c in plain.cells()}
    assert (
        signatures["ch"] != cells["ch"].signature
        and signatures["2x-round_robin"] == cells["2x-round_robin"].signature
    )
    for bad, says in (
        ("{a: 1}", "expected a string or a list of strings"),
        ("'--x \"open'", "No closing quotation"),
    ):
        with pytest.raises(MatrixError, match=says):
            load_matrix(matrix(tmp_path, f"  - {{label: ch, simserver: latency, load_args: {bad}}}"))
    with pytest.raises(MatrixError, match="gives --server-metrics in load_args and server_metrics"):
        load_matrix(matrix(tmp_path, "  - {label: ch, simserver: latency, server_metrics: 'http://{host}:{port}/metrics',"
                                     " load_args: '--server-metrics auto'}"))  # fmt: skip


def test_each_replica_knows_its_index_for_its_own_gpu(tmp_path):
    """`{replica}` (0, 1, …) in a replica's command and env — `CUDA_VISIBLE_DEVICES: "{replica}"` puts each
    on its own GPU; the router's command cannot take it, nor can a grid key be named so."""
    from arena.procs import CellError, start_server

    p = tmp_path / "m.yaml"
    p.write_text(
        """
targets:
  - label: gw
    backends:
      replicas: 2
      launch: ["{python}", "-c", "import os, sys; print(os.environ['CUDA_VISIBLE_DEVICES'], sys.argv[1]); sys.exit(3)",
               "{replica}", "{port}"]
      env: {CUDA_VISIBLE_DEVICES: "{replica}"}
    launch: ["{python}", "-c", "import time; time.sleep(60)", "{port}", "{backends}"]
datasets: [random]
shapes: [{duration: 10s}]
"""
    )
    (t,) = load_matrix(p).targets
    b = t.backends
    assert b is not None and b.environment(Ports(1).values() | {"replica": "1"}) == {
        "CUDA_VISIBLE_DEVICES": "1"
    }
    assert "CUDA_VISIBLE_DEVICES" not in t.environment(Ports(1)) and "in front of 2 ×" in t.describe()
    with pytest.raises(CellError, match=r"^target 'gw', replica 1: launch command exited with status 3 before it was "
                                        r"healthy: 0 0 \(log: "):  # fmt: skip
        start_server(t, tmp_path / "logs", "cell")
    router = (
        "  - {label: x, launch: '{python} gw {port} {backends} {replica}', backends: {simserver: latency}}"
    )
    grid = "  - {label: x, launch: '{python} gw {port} {backends}', backends: {simserver: latency}, grid: {replica: [1]}}"
    for more, says in (
        (router, "unknown placeholder {replica}"),
        (grid, "grid.replica: not a usable placeholder name"),
    ):
        with pytest.raises(MatrixError, match=re.escape(says)):
            load_matrix(matrix(tmp_path, more))
