"""README.md § "Running on a cluster" against the files it describes: its `locust`, `docker compose`
and `kubectl` commands, parsed, must be what docker-compose.yml and k8s/ start and define, and the
worker count must move by one setting. The files themselves are checked in test_scaleout_deploy.py."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.conftest import ROOT
from tests.unit.deploy.test_scaleout_deploy import (
    COMPOSE,
    VAR,
    argv,
    compose,
    container_args,
    locust_parse,
    manifests,
)


def cluster_commands() -> list[list[str]]:
    """Every command in the bash blocks of README.md § "Running on a cluster", as argv (continuation
    lines joined, comments dropped; leading VAR=value assignments kept as tokens)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Running on a cluster") :]
    section = section[: section.index("\n## ", 5)]
    out = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                out.append(argv)
    return out


def program(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """(the VAR=value assignments in front, the command itself)."""
    env, i = {}, 0
    while i < len(argv) and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[i]):
        key, _, value = argv[i].partition("=")
        env[key], i = value, i + 1
    return env, argv[i:]


def flags(argv: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in argv if a.startswith("--")}


MASTER_TOPOLOGY = {"--master", "--expect-workers", "--expect-workers-max-wait", "--host"}
WORKER_TOPOLOGY = {"--worker", "--master-host"}


def test_readme_locust_commands_are_the_ones_compose_and_k8s_start() -> None:
    cmds = [program(c)[1] for c in cluster_commands()]
    locust = [c[3:] for c in cmds if c[:3] == [".venv/bin/locust", "-f", "locustfile.py"]]
    readme_master = [c for c in locust if "--master" in c]
    readme_worker = [c for c in locust if "--worker" in c]
    assert readme_master and readme_worker and any("--processes" in c for c in locust)
    s, docs = compose()["services"], manifests()
    job_conf = {
        ln.split("=")[0].strip()
        for ln in docs[("ConfigMap", "goodput-options")]["data"]["job.conf"].splitlines()
    }
    masters = {
        "compose": flags(argv(s["master"]["command"])),
        "k8s job": flags(container_args(docs[("Job", "goodput-run")])[-1].split())
        | {f"--{k}" for k in job_conf},
    }
    workers = {
        "compose": argv(s["worker"]["command"]),
        "k8s": container_args(docs[("Deployment", "goodput-worker")]),
        "k8s job": container_args(docs[("Job", "goodput-run-workers")]),
    }
    for cmd in readme_master:
        assert flags(cmd) >= MASTER_TOPOLOGY, cmd
        for where, given in masters.items():
            assert given >= MASTER_TOPOLOGY, f"{where} master lacks {MASTER_TOPOLOGY - given}"
    for cmd in readme_worker:
        assert flags(cmd) >= WORKER_TOPOLOGY, cmd
        port = locust_parse(cmd).master_port  # the README's workers use the default port…
        for where, given in workers.items():
            assert flags(given) >= WORKER_TOPOLOGY, f"{where} worker: {given}"
            assert locust_parse(given).master_port == port == 5557, where  # …which every file binds
    assert (
        argv(s["master"]["command"])[argv(s["master"]["command"]).index("--master-bind-port") + 1] == "5557"
    )
    for cmd in locust:  # every option the README shows exists (Locust's parser, Goodput's options)
        locust_parse(cmd)


def test_readme_compose_and_kubectl_commands_name_what_the_files_define() -> None:
    doc, docs = compose(), manifests()
    compose_vars = {m.group(1) for m in VAR.finditer(COMPOSE.read_text())}
    profiles = {p for svc in doc["services"].values() for p in svc.get("profiles", [])}
    names = {f"{kind.lower()}/{name}" for kind, name in docs} | {
        f"svc/{n}" for k, n in docs if k == "Service"
    }
    seen_compose = seen_kubectl = 0
    for raw in cluster_commands():
        env, cmd = program(raw)
        if cmd[:2] == ["docker", "compose"]:
            seen_compose += 1
            assert set(env) <= compose_vars | {"GOODPUT_UID", "GOODPUT_GID"}, env
            if "up" in cmd:
                assert not any(a.startswith("--scale") for a in cmd), "the worker count is GOODPUT_WORKERS"
                if "--no-deps" not in cmd:
                    assert "GOODPUT_WORKERS" in env, f"one setting for the worker count: {raw}"
            for i, a in enumerate(cmd):
                if a == "--profile":
                    assert cmd[i + 1] in profiles
                if a == "--exit-code-from":
                    assert cmd[i + 1] in doc["services"]
        if cmd[:1] == ["kubectl"]:
            seen_kubectl += 1
            for a in cmd:
                if re.fullmatch(r"(deployment|svc|job|pod)/[a-z0-9-]+", a):
                    assert a in names, f"{a} is not defined in k8s/"
                if a.startswith("k8s/") and a.endswith(".yaml"):
                    assert (ROOT / a).exists(), a
    assert seen_compose >= 3 and seen_kubectl >= 5
    table = set(re.findall(r"\| `([A-Z_]+)`", (ROOT / "README.md").read_text()))
    for var in {v for v in table if v.startswith(("GOODPUT_", "SIM_"))}:
        assert var in compose_vars, f"README's table lists {var}, which docker-compose.yml does not use"


@pytest.mark.parametrize("workers", [1, 3, 14])
def test_the_worker_count_is_one_setting(workers: int) -> None:
    """Compose: GOODPUT_WORKERS alone sets how many start and how many a headless master awaits.
    Kubernetes: the worker Deployment's replicas (the interactive master awaits nobody); the Job's
    parallelism, completions and job.conf's expect-workers are kept equal."""
    doc = compose({"GOODPUT_WORKERS": str(workers), "GOODPUT_HEADLESS": "1"})
    m = doc["services"]["master"]
    assert locust_parse(argv(m["command"]), m["environment"]).expect_workers == workers
    assert doc["services"]["worker"]["deploy"]["replicas"] == str(workers)
    defaults = {m.group(2) for m in VAR.finditer(COMPOSE.read_text()) if m.group(1) == "GOODPUT_WORKERS"}
    assert len(defaults) == 1, f"GOODPUT_WORKERS has different defaults: {defaults}"
    docs = manifests()
    conf = docs[("ConfigMap", "goodput-options")]["data"]
    assert "expect-workers" not in conf["locust.conf"]
    assert "kubectl scale deployment/goodput-worker" in (ROOT / "README.md").read_text()
    job = docs[("Job", "goodput-run-workers")]["spec"]
    expect = int(re.search(r"^expect-workers\s*=\s*(\d+)", conf["job.conf"], re.M).group(1))
    assert job["parallelism"] == job["completions"] == expect
