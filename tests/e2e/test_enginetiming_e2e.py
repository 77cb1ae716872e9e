"""End to end: the server's own timing carried in its stream, per row, against the engine's spans.

The simulated engine serves llama-server's `/completion` (its `timings`: prompt_ms, predicted_ms),
Ollama's `/api/chat` (its durations, the prompt clock started before the slot wait, as Ollama's
runner does), SGLang's `/generate` (its `--enable-metrics` wall-clock stamps), vLLM's chat route
with its `--enable-per-request-metrics` (`metrics` beside the usage) and TensorRT-LLM's with its
`return_perf_metrics` (an event after `[DONE]`, asked for per request with `X-TRTLLM-return-metrics: 1`
through `--header`), and exports a span per request as well. Each row's `engine_prefill_s` / `engine_decode_s` must be the span's figures (llama.cpp,
SGLang, vLLM, TensorRT-LLM: prefill; Ollama: queue + prefill), its `engine_queue_s` the span's queue
where the server states one (SGLang, vLLM, TensorRT-LLM), and the analysis of the same run without its span file must
decompose from the rows alone: a ramp past the engine's 8 batch slots puts the queue in `waiting`
for llama.cpp, inside `prefill` for Ollama and in `queue` for SGLang, vLLM and TensorRT-LLM, as each
server states it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis import api
from analysis.spans import per_request
from core.slo import parse_slo
from tests.conftest import free_port
from tests.e2e.test_spans_e2e import locust, only_run

pytestmark = [pytest.mark.e2e]
US2 = 2e-6  # llama.cpp's ms keep 3 decimals (1 µs); Ollama's ns round (1 ns); SGLang's stamps ~0.24 µs apart


# where each server puts a request's wait for a batch slot, and what the answer line then calls it
QUEUED_IN = {
    "llamacpp": "waiting",
    "ollama": "prefill",
    "sglang": "queue",
    "vllm": "queue",
    "trtllm": "queue",
}
# how each is asked: the engine's option and the run's (an OpenAI route where the server is not named by one)
ENGINE_OPTIONS = {"vllm": ("--enable-per-request-metrics",), "trtllm": ("--return-perf-metrics",)}
RUN_OPTIONS = {
    "vllm": ("--api", "chat"),
    "trtllm": ("--api", "chat", "--header", "X-TRTLLM-return-metrics: 1"),
}
SAID = {"waiting": "waiting (queue", "prefill": "prefill, its wait for a slot included", "queue": "queueing"}


@pytest.mark.parametrize("which", ["llamacpp", "ollama", "sglang", "vllm", "trtllm"])
def test_rows_carry_the_servers_timing_and_decompose_without_spans(
    which: str, sim_server, tmp_path: Path
) -> None:
    port = free_port()
    sim = sim_server(
        "--otlp-traces-endpoint", f"http://127.0.0.1:{port}/v1/traces", *ENGINE_OPTIONS.get(which, ())
    )
    # 8 then 16 closed-loop users against 8 batch slots: the second step queues (its requests drain at
    # the end, so both levels are complete and the run is a ramp with an answer)
    out = locust(sim.url, tmp_path / "res", *RUN_OPTIONS.get(which, ("--api", which)), "--step-users", "8", "--step-interval", "5s",
                 "-t", "10s", "--max-tokens", "24", "--stop-timeout", "5", "--otlp-listen", f"127.0.0.1:{port}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run = only_run(tmp_path / "res")

    r = api.load_run(run)
    f = per_request(r)
    j = f[f["joined"] & f["ok"]]
    assert len(j) > 40 and len(j) == int(f["ok"].sum())
    rows = r.df.loc[j.index]
    prefill = j["server_prefill_s"] + (j["server_queue_s"] if which == "ollama" else 0.0)
    assert (rows["engine_prefill_s"] - prefill).abs().max() <= US2
    assert (rows["engine_decode_s"] - j["server_decode_s"]).abs().max() <= US2
    assert (rows["engine_load_s"] == 0.0).all() if which == "ollama" else rows["engine_load_s"].isna().all()
    queued_in = QUEUED_IN[which]
    if queued_in == "queue":
        assert (rows["engine_queue_s"] - j["server_queue_s"]).abs().max() <= US2
    else:
        assert rows["engine_queue_s"].isna().all()

    # the same run without its spans: the rows alone
    bare = tmp_path / "bare"
    shutil.copytree(
        run, bare, ignore=shutil.ignore_patterns("server_spans.csv", "summary*", "report.html", "plots")
    )
    a = api.analyze(api.load_run(bare), parse_slo("chat"))
    api.write_run(a)
    t = a.summary.server_timing
    assert t is not None and t.source == "stream" and t.joined == t.ok and t.unjoined == 0
    first, last = t.steps
    assert (first.load, last.load) == (8, 16)
    q0, q1 = first.ttft.parts_s[queued_in], last.ttft.parts_s[queued_in]
    assert q1 > 2 * q0 and q1 > 0.5 * last.ttft.total_s, (q0, q1, last.ttft)
    assert t.components == {"ollama": ("waiting", "load", "prefill", "decode"), "llamacpp": ("waiting", "prefill", "decode")}.get(
        which, ("other", "queue", "prefill", "decode"))  # fmt: skip
    print(f"{which}: {len(j)} rows, |prefill − span| max {(rows['engine_prefill_s'] - prefill).abs().max() * 1e6:.3f} µs; "
          f"{queued_in} in TTFT {q0 * 1e3:.1f} → {q1 * 1e3:.1f} ms of {last.ttft.total_s * 1e3:.1f}")  # fmt: skip
    summary = json.loads((bare / "summary.json").read_text())
    s = summary["server_timing"]
    assert s["source"] == "stream" and s["joined"] == t.joined
    # the section's requests are the headline's (the start-up's first requests out as there)
    assert summary["excluded_startup_rows"] > 0 and t.ttft.n == summary["samples"]["ttft_s"]
    assert t.ttft.total_s == pytest.approx(summary["ttft_s"]["mean"], abs=1e-9)
    md = (bare / "summary.md").read_text()
    assert "## Where the time went (the server's own timing)" in md
    # the answer says what the misses were where the SLO broke: the queue, where this server puts it
    (answer,) = [x for x in md.splitlines() if x.startswith("**Answer: ")]
    assert "; breaks at 16 — there, " in answer and f"misses were {SAID[queued_in]}" in answer, answer
    print(answer)
    assert (bare / "plots" / "server_timing.png").stat().st_size > 10_000
