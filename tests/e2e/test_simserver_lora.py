"""`python -m simserver --lora-modules a,b --max-loras 1`: multi-LoRA serving as a client, a scraper and
the trace see it over HTTP.

With one adapter slot, b's requests wait while a's run (the base model's do not), /metrics says so
meanwhile (vLLM's `lora_requests_info` and the `deferred` waiting reason), the answers name their
adapter, /v1/models lists the adapters under the base model, and the trace shows b admitted only
after a's last token.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PYTHON, ROOT, Proc
from tests.support.traces import by_id, traced

pytestmark = pytest.mark.e2e
# ~20 ms steps: a's 30 tokens take ~0.7 s, long enough to see b wait on /metrics
PROFILE = """
base: default
step_time: {base_s: 0.02, prefill_token_s: 0.00001, decode_seq_s: 0.0001, kv_token_s: 0.0}
"""
DEADLINE_S = 15.0


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def stream(url: str, rid: str, model: str, max_tokens: int, out: dict[str, list[dict[str, Any]]]) -> None:
    """One streamed chat request; its chunks land in out[rid]."""
    body = {"model": model, "messages": [{"role": "user", "content": f"Hello from {rid}."}],
            "max_tokens": max_tokens, "ignore_eos": True, "stream": True}  # fmt: skip
    req = urllib.request.Request(url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json", "X-Request-Id": rid})  # fmt: skip
    with urllib.request.urlopen(req, timeout=DEADLINE_S) as r:
        raw = r.read()
    out[rid] = [json.loads(e[6:]) for e in raw.split(b"\n\n") if e.startswith(b"data: {")]


def samples(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """/metrics as name → [(labels, value)]."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(get(url + "/metrics").decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def wait_for(fact: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Poll until `fact()` is truthy (bounded in time); return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := fact():
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def test_one_slot_defers_the_second_adapter_until_the_first_is_done(
    sim_server: Callable[..., Proc], tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(PROFILE)
    trace = tmp_path / "trace.jsonl"
    srv = sim_server("--config", str(tmp_path / "p.yaml"), "--lora-modules", "a,b", "--max-loras", "1",
                     "--lora-load-ms", "30", "--trace", str(trace))  # fmt: skip
    cards = json.loads(get(srv.url + "/v1/models"))["data"]
    assert [(c["id"], c["parent"]) for c in cards] == [("sim-llm", None), ("a", "sim-llm"), ("b", "sim-llm")]

    out: dict[str, list[dict[str, Any]]] = {}
    plan = [("a1", "a", 30), ("a2", "a", 30), ("b1", "b", 10), ("b2", "b", 10), ("base", "sim-llm", 5)]
    threads = {rid: threading.Thread(target=stream, args=(srv.url, rid, m, n, out)) for rid, m, n in plan}
    for rid in ("a1", "a2"):
        threads[rid].start()
    running = lambda: samples(srv.url)["vllm:num_requests_running"][0][1] >= 2  # noqa: E731
    wait_for(running, "a's two requests running")
    for rid in ("b1", "b2", "base"):
        threads[rid].start()

    def b_waits() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        m = samples(srv.url)
        deferred = [
            v for labels, v in m["vllm:num_requests_waiting_by_reason"] if labels["reason"] == "deferred"
        ]
        return m if deferred[0] > 0 else None

    page = wait_for(b_waits, "a deferred count > 0 while b waits")
    info = max(page["vllm:lora_requests_info"], key=lambda s: s[1])  # the latest series is the state now
    assert info[0] == {"max_lora": "1", "running_lora_adapters": "a", "waiting_lora_adapters": "b"}
    assert info[1] == pytest.approx(time.time(), abs=10)  # its value: the unix time of its last update
    for t in threads.values():
        t.join(DEADLINE_S)
    assert sorted(out) == sorted(threads)
    for rid, model, _ in plan:
        assert {c["model"] for c in out[rid]} == {model}  # the answer names the adapter it ran on

    rows = by_id(traced(trace, count=len(plan), timeout_s=DEADLINE_S))
    assert len(rows) >= len(plan), f"{len(rows)} of {len(plan)} traced"
    assert {rid: rows[rid]["lora"] for rid, _, _ in plan} == {"a1": "a", "a2": "a", "b1": "b", "b2": "b", "base": None}  # fmt: skip
    a_done = max(rows[r]["t_last_emit_unix"] for r in ("a1", "a2"))
    b_start = min(rows[r]["t_first_emit_unix"] for r in ("b1", "b2"))
    assert b_start > a_done  # b was admitted only after a's last token
    assert rows["base"]["t_last_emit_unix"] < a_done  # the base model never waited for a slot
    loads = samples(srv.url)["simserver:lora_adapter_loads_total"][0][1]
    assert loads == 2.0


def test_an_unknown_model_is_still_a_404(sim_server: Callable[..., Proc]) -> None:
    srv = sim_server("--lora-modules", "a=/adapters/a", "b=/adapters/b")
    body = {"model": "nosuch", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    req = urllib.request.Request(srv.url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    e = json.loads(err.value.read())["error"]
    assert err.value.code == 404 and e["type"] == "NotFoundError" and e["param"] == "model"
    assert e["message"].startswith("The model `nosuch` does not exist.")
    roots = {c["id"]: c["root"] for c in json.loads(get(srv.url + "/v1/models"))["data"]}
    assert roots == {"sim-llm": "sim-llm", "a": "/adapters/a", "b": "/adapters/b"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--lora-modules", "a,a"], "--lora-modules: adapter 'a' is named twice"),
        (["--lora-modules", "sim-llm"], "--lora-modules: 'sim-llm' is the base model's name"),
        (["--max-loras", "2"], "--max-loras needs --lora-modules"),
        (["--lora-modules", "a", "--max-loras", "0"], "--max-loras must be at least 1, got 0"),
        (["--lora-modules", "a", "--lora-load-ms", "x"], "argument --lora-load-ms: invalid float value"),
    ],
    ids=["twice", "base-name", "alone", "zero-slots", "not-a-number"],
)
def test_bad_lora_options_are_one_line_and_exit_2(args: list[str], says: str) -> None:
    r = subprocess.run(
        [PYTHON, "-m", "simserver", *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("simserver: error: " + says), r.stderr
