"""The cluster recipes' own commands, run here as processes (no Docker engine, no cluster): the
commands docker-compose.yml and k8s/job.yaml give the image's entrypoint (`locust -f
locustfile.py`) and `python -m simserver`, read from the files, with only what a single host
must change — service names → 127.0.0.1, the fixed ports 5557/8000 → free ones, /app/results and
/etc/goodput → a temporary folder, and the Job's 10-minute run → a few seconds. A headless run
must start with the files' worker count, lose no row and (the Job) be analysed."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import PYTHON, Proc, free_port, wait_http
from tests.unit.deploy.test_scaleout_deploy import argv, compose, container_args, manifests

pytestmark = pytest.mark.e2e


def local(args: list[str], ports: dict[str, str], hosts: dict[str, str], results: Path) -> list[str]:
    """A file's argv on this host: its ports, service names and results folder swapped."""
    out = []
    for a in args:
        for old, new in ports.items():
            a = a.replace(old, new) if a == old or f":{old}" in a else a
        for old, new in hosts.items():
            a = new if a == old else a.replace(f"//{old}:", f"//{new}:")
        out.append(a.replace("/app/results", str(results)))
    return out


def check_run(results: Path, workers: int) -> Path:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    meta = json.loads((run / "run.json").read_text())
    assert meta["workers"] == workers and len(meta["per_worker"]) == workers
    assert meta["rows_received"] == meta["requests_sent"] > 0 and meta["lost_rows"] == 0
    return run


def test_compose_commands_run_a_headless_test_with_its_worker_count(
    procs: Callable[..., Proc], tmp_path: Path
) -> None:
    workers = 3  # not the file's default (2): the one setting must move both counts
    env = {"GOODPUT_HEADLESS": "1", "GOODPUT_WORKERS": str(workers), "SIM_REPLICAS": "2",
           "GOODPUT_ARGS": "-t 4s --shape none -u 4 -r 4 --dataset random --max-tokens 8 --stop-timeout 5"}  # fmt: skip
    s = compose(env)["services"]
    ports = {"5557": str(free_port()), "8000": str(free_port())}
    hosts = {"master": "127.0.0.1", "target": "127.0.0.1", "0.0.0.0": "127.0.0.1"}
    results = tmp_path / "results"
    target = local(argv(s["target"]["command"]), ports, hosts, results)
    sim = procs([PYTHON, *s["target"]["entrypoint"][1:], *target], "target")
    wait_http(f"http://127.0.0.1:{ports['8000']}/health", proc=sim.popen)
    entry = [PYTHON, "-m", "locust", "-f", "locustfile.py"]  # the image's ENTRYPOINT
    master_env = {k: str(v) for k, v in s["master"]["environment"].items() if v is not None}
    master = procs(
        [*entry, *local(argv(s["master"]["command"]), ports, hosts, results)], "master", master_env
    )
    for _ in range(int(s["worker"]["deploy"]["replicas"])):
        procs([*entry, *local(argv(s["worker"]["command"]), ports, hosts, results)], "worker")
    assert master.popen.wait(90) == 0, master.log()[-3000:]
    check_run(results, workers)


def test_k8s_job_commands_run_and_analyse_a_headless_test(procs: Callable[..., Proc], tmp_path: Path) -> None:
    docs = manifests()
    conf_dir, results = tmp_path / "etc-goodput", tmp_path / "results"
    conf_dir.mkdir()
    results.mkdir()
    ports = {"5557": str(free_port()), "8000": str(free_port())}
    hosts = {"goodput-run": "127.0.0.1", "goodput-target": "127.0.0.1", "0.0.0.0": "127.0.0.1"}
    job_conf = docs[("ConfigMap", "goodput-options")]["data"]["job.conf"]
    job_conf = re.sub(r"^run-time\s*=.*$", "run-time = 4s", job_conf, flags=re.M)
    job_conf = "\n".join(
        " = ".join(local(ln.split(" = ", 1), ports, hosts, results)) for ln in job_conf.splitlines()
    )
    (conf_dir / "job.conf").write_text(job_conf + "\nstop-timeout = 5\n")
    target = docs[("Deployment", "goodput-target")]
    sim = procs(
        [PYTHON, *container_args(target)[1:3], *local(container_args(target)[3:], ports, hosts, results)]
    )
    wait_http(f"http://127.0.0.1:{ports['8000']}/health", proc=sim.popen)
    script = container_args(docs[("Job", "goodput-run")])[-1].replace("/etc/goodput", str(conf_dir))
    script = script.replace("--master-bind-port 5557", f"--master-bind-port {ports['5557']}")
    script = script.replace("/app/results", str(results))
    bin_dir = str(Path(PYTHON).parent)
    master = procs(["sh", "-c", script], "job-master", {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    workers = docs[("Job", "goodput-run-workers")]
    for _ in range(workers["spec"]["parallelism"]):
        args = local(container_args(workers), ports, hosts, results)
        procs([PYTHON, "-m", "locust", "-f", "locustfile.py", *args], "job-worker")
    assert master.popen.wait(180) == 0, master.log()[-3000:]
    run = check_run(results, workers["spec"]["parallelism"])
    assert (run / "summary.md").exists() and (run / "report.html").exists(), sorted(
        p.name for p in run.iterdir()
    )
