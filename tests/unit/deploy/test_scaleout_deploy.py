"""Deployment files without a Docker engine or a cluster: the compose file against the Compose
specification's JSON schema (vendored: tests/fixtures/compose-spec.json), the Dockerfile's
essentials, and the Kubernetes manifests' internal consistency (selectors, ports, names). The
command lines and config files they hand to Locust are parsed by Locust's own parser, with
Goodput's options registered, so a typo in an option fails here rather than in a cluster."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec.json"
K8S = ROOT / "k8s"
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR:-default}` substitution (what `docker compose config` does first)."""
    if isinstance(node, str):
        return VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), node)
    if isinstance(node, list):
        return [interpolate(x, env) for x in node]
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    return node


def compose(env: dict[str, str] | None = None) -> dict:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env or {})


def argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def locust_parse(args: list[str], env: dict[str, str] | None = None) -> Any:
    """Parse like `locust -f locustfile.py ARGS` does, Goodput's options included."""
    from locust.argument_parser import get_parser

    import loadgen.run.options  # noqa: F401  (registers Goodput's options)
    import shapes.options  # noqa: F401  (registers the shape options)

    parser = get_parser(default_config_files=[])
    return parser.parse_args(["-f", "locustfile.py", *args], env_vars=env or {})


def check_goodput_options(opts: Any) -> None:
    from core.slo import parse_slo
    from shapes import build_schedule

    parse_slo(opts.slo)
    build_schedule(opts)


# -- docker compose ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [{}, {"GOODPUT_HEADLESS": "1", "GOODPUT_WORKERS": "4", "GOODPUT_ARGS": "-t 5m --dataset random"}],
)
def test_compose_file_matches_the_compose_spec(env: dict[str, str]) -> None:
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    for doc in (yaml.safe_load(COMPOSE.read_text()), compose(env)):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]


def test_compose_schema_rejects_a_broken_file() -> None:
    """The vendored schema really constrains: a misspelt key and a wrong type are caught."""
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    doc = compose()
    doc["services"]["worker"]["comand"] = ["--worker"]
    doc["services"]["master"]["ports"] = "8089:8089"
    assert len(list(validator.iter_errors(doc))) >= 2


def test_compose_services_profiles_and_wiring() -> None:
    doc = compose()
    s = doc["services"]
    assert set(s) == {"target", "master", "worker", "vllm", "sglang", "tgi"}
    for name in ("target", "master", "worker"):
        assert "profiles" not in s[name], f"{name} runs by default"
    for name, image in (
        ("vllm", "vllm/vllm-openai:"),
        ("sglang", "lmsysorg/sglang:"),
        ("tgi", "ghcr.io/huggingface/text-generation-inference:"),
    ):
        assert s[name]["profiles"] == [name]
        assert s[name]["image"].startswith(image)
        devices = s[name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["capabilities"] == ["gpu"] and devices[0]["driver"] == "nvidia"
        assert "8000" in argv(s[name]["command"]), f"{name} listens on 8000 inside the network"
        assert s["master"]["depends_on"][name] == {"condition": "service_healthy", "required": False}
    # the simulated engine is the default target
    target = s["target"]
    assert target["entrypoint"] == ["python", "-m", "simserver"]
    assert argv(target["command"])[:4] == ["--host", "0.0.0.0", "--port", "8000"]
    assert "healthcheck" in target and s["master"]["depends_on"]["target"]["condition"] == "service_healthy"
    # master ↔ workers
    master, worker = argv(s["master"]["command"]), argv(s["worker"]["command"])
    assert "--master" in master and master[master.index("--master-bind-port") + 1] == "5557"
    assert worker[worker.index("--master-host") + 1] == "master"
    assert worker[worker.index("--master-port") + 1] == "5557"
    assert master[master.index("--host") + 1] == "http://target:8000"
    assert "8089:8089" in s["master"]["ports"]
    assert s["worker"]["deploy"]["replicas"] == "2"
    # results land on the host
    assert "./results:/app/results" in s["master"]["volumes"]
    assert master[master.index("--results-dir") + 1] == "/app/results"
    # keys pass through from the caller's environment, never a value in the file
    for svc in s.values():
        env = svc.get("environment") or {}
        for key in ("OPENAI_API_KEY", "HF_TOKEN"):
            assert env.get(key) is None, f"{key} must be a pass-through"


def test_compose_env_switches_reach_locust() -> None:
    """GOODPUT_HEADLESS / GOODPUT_WORKERS / GOODPUT_ARGS / GOODPUT_MODEL change what is run."""
    web = compose()["services"]["master"]
    opts = locust_parse(argv(web["command"]), web["environment"])
    assert not opts.headless and opts.master and opts.expect_workers == 2
    check_goodput_options(opts)

    env = {
        "GOODPUT_HEADLESS": "1",
        "GOODPUT_WORKERS": "4",
        "GOODPUT_TARGET": "http://vllm:8000",
        "GOODPUT_ARGS": "-t 5m --dataset random --slo datagen --step-interval 5s",
        "GOODPUT_MODEL": "my/model",
        "VLLM_ARGS": "--max-num-seqs 64",
    }
    doc = compose(env)
    m = doc["services"]["master"]
    opts = locust_parse(argv(m["command"]), m["environment"])
    assert opts.headless and opts.expect_workers == 4 and opts.run_time == 300
    assert opts.host == "http://vllm:8000" and opts.dataset == "random" and opts.slo == "datagen"
    check_goodput_options(opts)
    assert doc["services"]["worker"]["deploy"]["replicas"] == "4"
    vllm = argv(doc["services"]["vllm"]["command"])
    assert vllm[vllm.index("--model") + 1] == "my/model" and vllm[-2:] == ["--max-num-seqs", "64"]
    sglang = argv(doc["services"]["sglang"]["command"])
    assert sglang[sglang.index("--model-path") + 1] == "my/model"


def test_dockerfile_essentials() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert any(
        "pip install" in ln and "-r requirements.txt" in ln and "-c constraints.txt" in ln for ln in lines
    )
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0")
    assert json.loads(lines[-1].removeprefix("ENTRYPOINT ")) == ["locust", "-f", "locustfile.py"]
    copied = [ln.split()[1:-1] for ln in lines if ln.startswith("COPY ") and "--chown" not in ln]
    for files in copied:
        for f in files:
            assert (ROOT / f).exists(), f"Dockerfile copies {f}, which does not exist"
    ignored = (ROOT / ".dockerignore").read_text().split()
    for must in (".git", ".venv", "results", ".env"):
        assert must in ignored


# -- Kubernetes ----------------------------------------------------------------------------------


def manifests() -> dict[tuple[str, str], dict]:
    docs: dict[tuple[str, str], dict] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in docs, f"{key} defined twice"
                docs[key] = doc
    return docs


def pod_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


def pod_labels(doc: dict) -> dict:
    return (
        doc["metadata"]["labels"] if doc["kind"] == "Pod" else doc["spec"]["template"]["metadata"]["labels"]
    )


def container_args(doc: dict) -> list[str]:
    c = pod_spec(doc)["containers"][0]
    return [*c.get("command", []), *c.get("args", [])]


def test_k8s_manifests_are_consistent() -> None:
    docs = manifests()
    kinds = {k for k, _ in docs}
    assert {"Deployment", "Service", "ConfigMap", "Job", "PersistentVolumeClaim", "Pod"} <= kinds
    workloads = {k: d for k, d in docs.items() if k[0] in ("Deployment", "Job", "Pod")}
    for (kind, name), d in workloads.items():
        if kind != "Pod":
            sel = d["spec"]["selector"]["matchLabels"] if kind == "Deployment" else pod_labels(d)
            assert sel.items() <= pod_labels(d).items(), f"{name}: selector does not match its pods"
        spec = pod_spec(d)
        assert spec["securityContext"]["runAsNonRoot"] is True, f"{name} runs as root"
        for vol in spec.get("volumes", []):
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in docs
            if "persistentVolumeClaim" in vol:
                assert ("PersistentVolumeClaim", vol["persistentVolumeClaim"]["claimName"]) in docs
    # every Service selects pods that exist and exposes ports those pods declare
    for (kind, name), svc in docs.items():
        if kind != "Service":
            continue
        sel = svc["spec"]["selector"]
        backends = [d for d in workloads.values() if sel.items() <= pod_labels(d).items()]
        assert backends, f"Service {name} selects no pods"
        for d in backends:
            ports = {p["name"]: p["containerPort"] for p in pod_spec(d)["containers"][0].get("ports", [])}
            for p in svc["spec"]["ports"]:
                tp = p["targetPort"]
                assert tp in ports or tp in ports.values(), f"Service {name}: no container port {tp}"


def test_k8s_master_and_workers_meet() -> None:
    docs = manifests()
    master_svc = docs[("Service", "goodput-master")]
    assert {p["port"] for p in master_svc["spec"]["ports"]} == {5557, 8089}
    master_args = container_args(docs[("Deployment", "goodput-master")])
    assert "--master" in master_args and master_args[master_args.index("--master-bind-port") + 1] == "5557"
    for deploy, svc in (
        (("Deployment", "goodput-worker"), "goodput-master"),
        (("Job", "goodput-run-workers"), "goodput-run"),
    ):
        args = container_args(docs[deploy])
        assert "--worker" in args
        assert args[args.index("--master-host") + 1] == svc and ("Service", svc) in docs
        assert args[args.index("--master-port") + 1] == "5557"
        assert 5557 in {p["port"] for p in docs[("Service", svc)]["spec"]["ports"]}
    assert docs[("Deployment", "goodput-worker")]["spec"]["replicas"] >= 1
    # the Job's worker count is what its master waits for
    job_conf = docs[("ConfigMap", "goodput-options")]["data"]["job.conf"]
    expect = int(re.search(r"^expect-workers\s*=\s*(\d+)", job_conf, re.M).group(1))
    assert docs[("Job", "goodput-run-workers")]["spec"]["parallelism"] == expect
    # keys only from a Secret
    for d in docs.values():
        if d["kind"] in ("Deployment", "Job"):
            for e in pod_spec(d)["containers"][0].get("env", []):
                assert "value" not in e or e["name"] not in ("OPENAI_API_KEY", "HF_TOKEN")


def test_k8s_config_files_parse_and_point_at_the_target(tmp_path: Path) -> None:
    docs = manifests()
    target_svc = docs[("Service", "goodput-target")]
    target_url = f"http://goodput-target:{target_svc['spec']['ports'][0]['port']}"
    data = docs[("ConfigMap", "goodput-options")]["data"]
    for name, headless in (("locust.conf", False), ("job.conf", True)):
        conf = tmp_path / name
        conf.write_text(data[name])
        opts = locust_parse(["--config", str(conf), "--master"])
        assert opts.host == target_url and opts.results_dir == "/app/results"
        assert bool(opts.headless) is headless
        check_goodput_options(opts)
    # the containers read the files where the ConfigMap is mounted
    for key in (("Deployment", "goodput-master"), ("Job", "goodput-run")):
        mounts = {m["name"]: m["mountPath"] for m in pod_spec(docs[key])["containers"][0]["volumeMounts"]}
        args = " ".join(container_args(docs[key]))
        assert f"--config {mounts['options']}/" in args
        assert mounts["results"] == "/app/results"
    assert (K8S / "kustomization.yaml").exists()
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for res in kust["resources"]:
        assert (K8S / res).exists()
