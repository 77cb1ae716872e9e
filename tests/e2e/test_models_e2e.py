"""Several models in one run end to end: real Locust against the simulated engine serving two LoRA
adapters beside its base model (`--lora-modules a,b`). Each row names the model its body asked for —
the engine's trace says which adapter served the request — a session keeps one, a mix class names its
own, and a model the server does not list is one line before anything runs."""

from __future__ import annotations

import csv
import json
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT
from tests.support.traces import traced

pytestmark = pytest.mark.e2e
BASE = "sim-llm"


def run(host: str, results: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(results), "--max-tokens", "16", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def rows_and_served(results: Path, trace: Path) -> tuple[list[dict], dict[str, str]]:
    """The run's rows, and the model that served each request id according to the engine's trace
    (once it holds every completed row's request: the engine writes its trace every half second)."""
    (folder,) = [p for p in results.iterdir() if p.is_dir()]
    with open(folder / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    wanted = {r["request_id"] for r in rows if r["ok"] == "true"}
    served = {t["request_id"]: t.get("lora") or BASE for t in traced(trace, wanted, timeout_s=10)}
    assert wanted <= served.keys(), "the engine's trace lacks completed requests"
    return rows, served


def test_each_conversation_names_one_model_and_the_engine_served_it(sim_server, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server(
        "--profile", "latency", "--lora-modules", "a,b", "--max-loras", "1", "--trace", str(trace)
    )
    out = run(sim.url, tmp_path / "r", "--dataset", "agentic", "-u", "4", "-r", "4", "-t", "6s",
              "--models", f"a:40%,b:40%,{BASE}:20%", "--think-time", "0s")  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    rows, served = rows_and_served(tmp_path / "r", trace)
    done = [r for r in rows if r["ok"] == "true"]
    assert len(done) >= 12
    assert all(served[r["request_id"]] == r["model"] for r in done)  # the row names what served it
    assert all(r["served_model"] == r["model"] for r in done)  # and so does the answer's own `model`
    sessions: dict[str, set[str]] = {}
    for r in rows:
        sessions.setdefault(r["session"], set()).add(r["model"])
    assert all(len(m) == 1 for m in sessions.values()), sessions  # every turn of a session: one model
    assert max(Counter(r["session"] for r in rows).values()) > 1  # (sessions of several turns ran)
    assert {r["model"] for r in rows} <= {"a", "b", BASE}
    meta = json.loads(next((tmp_path / "r").iterdir()).joinpath("run.json").read_text())
    assert meta["models"] == {"spec": f"a:40%,b:40%,{BASE}:20%", "models": {"a": 40.0, "b": 40.0, BASE: 20.0}}


def test_a_mix_class_names_its_adapter_open_loop(sim_server, tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--profile", "latency", "--lora-modules", "a,b", "--trace", str(trace))
    out = run(sim.url, tmp_path / "r", "--rate", "8", "-t", "4s",
              "--mix", "chat:50%:model=b:name=tuned,chat:50%:name=plain")  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    rows, served = rows_and_served(tmp_path / "r", trace)
    by_class = {t: {(r["model"], served.get(r["request_id"])) for r in rows if r["ok"] == "true" and r["tenant"] == t}
                for t in ("tuned", "plain")}  # fmt: skip
    assert by_class == {"tuned": {("b", "b")}, "plain": {(BASE, BASE)}}


def test_a_model_the_server_does_not_list_is_one_line(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--profile", "latency", "--lora-modules", "a,b")
    out = run(sim.url, tmp_path / "r", "-u", "1", "-t", "2s", "--models", "a,zzz")
    assert out.returncode == 2
    lines = [x for x in out.stderr.splitlines() if "zzz" in x]
    assert lines == [
        f"goodput: error: --models: model 'zzz' is not served by {sim.url} (it serves: {BASE}, a, b)"
    ]
    assert "Traceback" not in out.stderr and not any((tmp_path / "r").iterdir())  # no run folder


@pytest.mark.parametrize(("api", "field"), [("sglang", "lora_path"), ("tgi", "parameters.adapter_id")])
def test_native_routes_name_the_adapter_in_their_own_field(
    sim_server, tmp_path: Path, api: str, field: str
) -> None:
    """SGLang's /generate takes the adapter as `lora_path`, TGI's /generate_stream as
    `parameters.adapter_id`: the engine's trace says each request ran on the adapter its row names,
    and a base-model request on none."""
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--profile", "latency", "--lora-modules", "a,b", "--trace", str(trace))
    out = run(sim.url, tmp_path / "r", "--api", api, "--rate", "6", "-t", "3s", "--models", f"a,{BASE}")
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    rows, served = rows_and_served(tmp_path / "r", trace)
    done = [r for r in rows if r["ok"] == "true"]
    assert {r["model"] for r in done} == {"a", BASE}, field
    assert all(served[r["request_id"]] == r["model"] for r in done)
