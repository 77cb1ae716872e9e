"""Vision requests against the real vLLM (CPU) serving a tiny random-weight Qwen2-VL
(`scripts/build_tiny_vlm.py`, `make real-engine-vlm`), through each route that takes images.

What must hold, from the engine's own statements: before the run, the context check learned from its
`/tokenize` that a picture is 326 tokens; every request carried its picture (`images` 1) and was answered; the rows' prompt tokens are the engine's counter's (Σ rows = Δ
`vllm:prompt_tokens_total`); on chat each is the engine's own count of the text alone (its
`/tokenize`, the images left out) plus Qwen2-VL's 326 tokens for a 512×512 picture; the engine's
multimodal cache looked up exactly the pictures the rows sent and found none of them (each is new),
and the report says so (`image_cache_hit_rate` 0).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from analysis import api
from core.slo import parse_slo
from tests.conftest import ROOT
from tests.e2e.test_real_engine import REQUIRE_ENV, measured_run, record_figures
from tests.support.real_engine import (
    SCRIPT,
    Engine,
    engine_dir,
    free_port,
    launch,
    skip_unless_available,
    unavailable_reason,
)
from workloads import open_workload
from workloads.conversation import request_messages
from workloads.images import without_images

pytestmark = [pytest.mark.e2e, pytest.mark.real_engine, pytest.mark.alone]

# 300 prompts, one 512×512 JPEG each; pictures of their own per route (`image_seed=`), or the engine's
# cache would hold the previous run's: the same set sends the same pictures in every run
SPECS = {
    "chat": "chat:images=1",
    "messages": "chat:images=1,image_seed=1",
    "responses": "chat:images=1,image_seed=2",
}
PER_IMAGE = 18 * 18 + 2  # Qwen2-VL: 504×504 after its resize, one token per 28×28, start and end markers


@pytest.fixture(scope="module")
def vlm() -> Iterator[Engine]:
    skip_unless_available(unavailable_reason(), REQUIRE_ENV)
    # `make real-engine-vlm`: the model into .real-engine/vlm (built once, again when its builder changes)
    built = subprocess.run(["bash", str(ROOT / "scripts" / "real_engine.sh"), "vlm"],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert built.returncode == 0, (built.stdout + built.stderr)[-2000:]
    port = free_port()
    log = engine_dir() / f"test-server-vlm-{port}.log"
    eng = launch(["bash", str(SCRIPT), "serve-vlm", str(port)], port, "tiny-vlm", log, 300, "vLLM")
    try:
        record_figures("vlm_engine", {"startup_s": round(eng.startup_s, 1)})
        yield eng
    finally:
        eng.stop()


def text_count(url: str, messages: list[dict]) -> int:
    """The engine's own count of the messages' text alone (their image parts left out), chat template
    included: vLLM's `/tokenize`."""
    body = json.dumps({"model": "tiny-vlm", "messages": without_images(messages)}).encode()
    req = urllib.request.Request(url + "/tokenize", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(json.loads(r.read())["count"])


@pytest.mark.parametrize("route", ["chat", "messages", "responses"])
def test_each_route_sends_the_pictures_the_engine_counts(vlm: Engine, route: str, tmp_path: Path) -> None:
    w = measured_run(vlm, tmp_path / "res", route, "--api", route, "--dataset", SPECS[route], "--max-tokens", "16",
                     "--users", "2", run_s=6, drain_s=20)  # fmt: skip
    ok = w.ok
    # Anthropic's route has no ignore-EOS field: the random-weight model may end an answer at its first
    # token, which carries no text (`empty_output`, a few in a run: the engine finished them all the same)
    done = [r for r in w.rows if r["ok"] == "true" or r["error"] == "empty_output"]
    assert len(done) == len(w.rows) and len(ok) >= 6, [(r["error"], r["error_detail"]) for r in w.rows]
    assert len(done) - len(ok) <= (0 if route != "messages" else len(done) // 5)
    assert {r["images"] for r in done} == {"1"}
    assert (
        sum(int(r["prompt_tokens"]) for r in done) == w.d.prompt_tokens
    )  # the engine counted what the rows say
    assert w.d.mm_cache_queries == len(done) and w.d.mm_cache_hits == 0  # each picture new to it
    # before the run, the context check asked the engine what a picture costs: its /tokenize with and without
    (fit,) = w.meta["context_fit"]["datasets"]
    assert (fit["pictures"], fit["tokens_per_picture"]) == (300, PER_IMAGE)
    if route == "chat":
        convs = {c.id: c for c in open_workload(SPECS[route], seed=0).workload.conversations}
        for r in ok[:5]:
            messages = request_messages(convs[r["session"]], int(r["turn"]))
            assert int(r["prompt_tokens"]) == text_count(vlm.url, messages) + PER_IMAGE, r
    s = api.analyze(api.load_run(w.path), parse_slo("chat")).summary
    assert s.images is not None and s.images["with_images"] == s.images["requests"]
    assert s.server is not None and s.server["image_cache_hit_rate"] == 0.0
    record_figures(f"vlm_{route}", {"requests": len(ok), "ttft_p50_s": s.ttft.p50,
                                    "prompt_tokens_mean": s.images["prompt_tokens_with"]})  # fmt: skip
