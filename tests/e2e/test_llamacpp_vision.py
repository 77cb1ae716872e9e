"""Vision requests against llama.cpp's own server with an image projector: the tiny GGUF model and a
tiny random-weight LLaVA-style projector (`scripts/build_tiny_mmproj.py`, `make llamacpp-mmproj`),
served with `--mmproj`.

llama.cpp resizes every picture to its encoder's 224×224 (aspect kept, grey padding), so each costs
(224 / 14)² = 256 prompt tokens, whatever its size. What must hold, from the server's statements:
every request carried its picture and was answered; on chat each row's prompt is the server's own
count of the text alone (its `/v1/chat/completions/input_tokens`, the pictures left out) plus 256
per picture; the rows' prompts add up to its processed and cached prompt-token counters; and the
pictures, each new, were never found in its cache (every prompt's cached part is at most its text).
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.test_llamacpp_engine import REQUIRE_ENV, goodput_run, save
from tests.support.llamacpp_engine import llamacpp_dir, start_llamacpp, unavailable_reason
from tests.support.real_engine import Engine, skip_unless_available
from workloads import open_workload
from workloads.conversation import request_messages
from workloads.images import without_images

pytestmark = [pytest.mark.e2e, pytest.mark.llamacpp, pytest.mark.alone]

PER_IMAGE = (224 // 14) ** 2  # the projector's encoder: 224×224 in patches of 14
# pictures of their own per run (`image_seed=`): llama.cpp finds a picture it has seen by its content
SPECS = {"chat": "chat:images=1", "messages": "chat:images=1,image_seed=1"}


@pytest.fixture(scope="module")
def vision() -> Iterator[Engine]:
    skip_unless_available(unavailable_reason(), REQUIRE_ENV)
    built = subprocess.run(["bash", str(ROOT / "scripts" / "llamacpp.sh"), "mmproj"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, (built.stdout + built.stderr)[-2000:]
    eng = start_llamacpp(
        timeout_s=120, flags=("--mmproj", str(llamacpp_dir() / "mmproj" / "tiny-mmproj.gguf"))
    )
    try:
        save("vision_engine", {"startup_s": round(eng.startup_s, 2)})
        yield eng
    finally:
        eng.stop()


def text_count(url: str, messages: list[dict]) -> int:
    """The server's count of the messages' text alone, its chat template included."""
    req = urllib.request.Request(
        url + "/v1/chat/completions/input_tokens", json.dumps({"messages": without_images(messages)}).encode(),
        {"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(json.loads(r.read())["input_tokens"])


@pytest.mark.parametrize("route", ["chat", "messages"])
def test_each_route_sends_the_pictures_llamacpp_counts(vision: Engine, route: str, tmp_path: Path) -> None:
    w = goodput_run(vision, tmp_path / "res", route, "--api", route, "--dataset", SPECS[route],
                    "--max-tokens", "16", "--shape", "none", "-u", "2", "-r", "2", run_s=8, drain_s=20)  # fmt: skip
    ok = w.ok
    # Anthropic's route has no ignore-EOS field: a random-weight model may end an answer at its first
    # token, which carries no text (`empty_output`: 1 in ~70 here); nothing else fails
    empty = [r for r in w.rows if r["error"] == "empty_output"]
    assert len(ok) + len(empty) == len(w.rows) and len(empty) <= (0 if route == "chat" else len(w.rows) // 10)
    assert len(ok) >= 6 and {r["images"] for r in ok} == {"1"}
    counted = [r for r in ok if r["prompt_tokens"]]  # messages: a stream without message_start has none
    assert len(counted) >= len(ok) - max(2, len(ok) // 10)
    assert all(int(r["prompt_tokens"]) > PER_IMAGE for r in counted)
    # before the run, the context check asked the server what a picture costs (counted with and without)
    (fit,) = json.loads((w.run_dir / "run.json").read_text())["context_fit"]["datasets"]
    assert (fit["pictures"], fit["tokens_per_picture"]) == (300, PER_IMAGE)
    if route == "chat":
        assert w.ours("prompt_tokens") == w.d.prompt_tokens + w.d.prompt_tokens_cached
        convs = {c.id: c for c in open_workload(SPECS[route], seed=0).workload.conversations}
        for r in ok[:5]:
            messages = request_messages(convs[r["session"]], int(r["turn"]))
            text = text_count(vision.url, messages)
            assert int(r["prompt_tokens"]) == text + PER_IMAGE, r
            assert int(r["cached_tokens"] or 0) <= text  # a new picture is never a cache hit
    mean = sum(int(r["prompt_tokens"]) for r in counted) / len(counted)
    save(f"vision_{route}", {"ok": len(ok), "counted": len(counted), "prompt_tokens_mean": round(mean, 1)})
