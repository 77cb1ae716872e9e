"""End to end: a vision workload (`images=`) through the routes that take images, against the simulated
engine serving a Qwen2-VL-like model. The truth is the engine's: it received each request's images in
its route's own form (its trace counts them), and each prompt is the text's tokens plus Qwen2-VL's
326 for a 512×512 image — computed here from the workload's own messages with the images left out.
A history that re-sends its image is found in the engine's multimodal cache, which the report reads;
a text route and a text-only model refuse, each in one line, and the run does not hammer the model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from analysis import api
from analysis.compare import shown
from analysis.render.markdown import console_text
from core.slo import parse_slo
from simserver.images import qwen2vl_image_tokens
from simserver.tokenizer import chat_tokens
from tests.e2e.test_apis_e2e import rows_and_trace
from tests.e2e.test_spans_e2e import locust, only_run
from workloads import open_workload
from workloads.conversation import request_messages
from workloads.images import without_images

pytestmark = [pytest.mark.e2e]
PER_IMAGE = qwen2vl_image_tokens(512, 512)


@pytest.mark.parametrize(
    ("api", "client"),
    [("chat", "raw"), ("chat", "openai"), ("responses", "openai"), ("messages", "raw"), ("ollama", "raw")],
)
def test_each_route_carries_the_images_the_engine_counts(
    api: str, client: str, sim_server, tmp_path: Path
) -> None:
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    spec = "chat:n=60,images=1"
    out = locust(sim.url, tmp_path / "res", "--api", api, "--client", client, "--dataset", spec, "--users", "3", "-t", "4s",
                 "--max-tokens", "16", "--stop-timeout", "5", "--server-metrics", "auto")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run, pairs = rows_and_trace(tmp_path / "res", trace)
    assert len(pairs) >= 6
    convs = {c.id: c for c in open_workload(spec, seed=0).workload.conversations}
    for row, t in pairs:
        assert int(row["images"]) == t["images"] == 1, (row, t)  # sent, and received in the route's form
        assert int(row["prompt_tokens"]) == t["prompt_tokens"]
        if api == "chat":  # the engine's template over the text alone, plus the image's tokens
            messages = request_messages(convs[row["session"]], int(row["turn"]))
            assert t["prompt_tokens"] == len(chat_tokens(without_images(messages))) + PER_IMAGE
        else:
            assert t["prompt_tokens"] > PER_IMAGE
    summary = json.loads(api_summary(run))
    assert summary["images"]["with_images"] == summary["images"]["requests"] >= 6
    assert summary["server"]["image_cache_hit_rate"] == 0.0  # every picture is new to the engine


def api_summary(run: Path) -> str:
    return api.analyze(api.load_run(run), parse_slo("chat")).summary.to_json()


def test_a_history_resends_its_image_and_the_engine_cache_finds_it(sim_server, tmp_path: Path) -> None:
    """Agent sessions with one picture in their task: every later turn re-sends it as history, so the
    engine's prefix cache holds its tokens and its multimodal cache finds it (one miss per session)."""
    trace = tmp_path / "trace.jsonl"
    sim = sim_server("--trace", str(trace))
    out = locust(sim.url, tmp_path / "res", "--dataset", "agentic:sessions=6,think=0,images=1", "--users", "2",
                 "-t", "5s", "--max-tokens", "8", "--stop-timeout", "5", "--server-metrics", "auto")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run, pairs = rows_and_trace(tmp_path / "res", trace)
    later = [(r, t) for r, t in pairs if int(r["turn"]) > 0]
    assert len(later) >= 3
    assert {int(r["images"]) for r, _ in pairs} == {1}
    assert all(int(r["cached_tokens"]) >= PER_IMAGE for r, _ in later)  # the picture's tokens were cached
    server = json.loads(api_summary(run))["server"]
    assert 0.5 < server["image_cache_hit_rate"] < 1.0  # a session's first turn misses, its later ones hit
    summary = api.analyze(api.load_run(run), parse_slo("chat")).summary
    said = console_text(summary)  # what `python -m analysis RUN` prints
    assert (
        f"images: {summary.images['with_images']} of {summary.images['requests']} requests (1.0 each" in said
    )
    assert "image cache hit " in said
    row = api.compare([summary], parse_slo("chat")).rows[0]
    assert row.value("image_cache_hit_rate") == server["image_cache_hit_rate"]
    assert "image_cache_hit_rate" in shown([row])  # the comparison shows the column


def test_a_text_route_is_refused_before_the_run(tmp_path: Path) -> None:
    out = locust(
        "http://127.0.0.1:9", tmp_path / "res", "--api", "tgi", "--dataset", "chat:images=1", "-t", "2s"
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert (
        "--dataset chat:images=1: the workload has images and --api tgi (TGI's route) takes text only; "
        "use --api chat, responses, messages or ollama"
    ) in out.stderr


def test_a_text_only_model_refuses_and_the_run_stops(sim_server, tmp_path: Path) -> None:
    sim = sim_server("--text-only")
    out = locust(sim.url, tmp_path / "res", "--dataset", "chat:images=1", "--users", "2", "-t", "20s",
                 "--stop-timeout", "5")  # fmt: skip
    assert "Traceback" not in out.stderr
    with open(only_run(tmp_path / "res") / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and {(r["ok"], r["http_status"]) for r in rows} == {("false", "400")}
    assert all("is not a multimodal model" in r["error_detail"] for r in rows)
    assert len(rows) < 60  # stopped on its failures, not sent for 20 s
