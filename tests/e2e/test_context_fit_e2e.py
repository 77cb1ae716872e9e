"""A workload too long for the server's context, found before the run (loadgen/run/fit.py): the
simulated engine lists its `max_model_len` in /v1/models and counts prompts at /tokenize as vLLM
does, and refuses a request whose prompt and max_tokens exceed its context (HTTP 400, vLLM's
message); the truth is its own count of each request (simserver/tokenizer.py, chat template
included)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from analysis.load import load_run
from core.tokens import count_tokens
from simserver.tokenizer import chat_tokens
from tests.conftest import PYTHON, ROOT
from tests.support.json_server import Handler, http_server
from workloads import load_workload
from workloads.conversation import output_cap, request_messages

pytestmark = pytest.mark.e2e
CONTEXT = 1024
DATASET = "random:n=40,input=uniform(200,1400),output=uniform(8,16),seed=3"


def locust(host: str, results: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(results), "--shape", "none", "--dataset", DATASET, *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ))


@pytest.fixture
def short_engine(sim_server, tmp_path: Path):
    cfg = tmp_path / "short.yaml"
    cfg.write_text(f"base: latency\nengine: {{max_model_len: {CONTEXT}}}\n")
    return sim_server("--config", str(cfg))


def engine_sizes(cap: int) -> dict[str, int]:
    """Each request's prompt as the engine counts it, plus its output cap, by session (one turn each)."""
    wl = load_workload(DATASET)
    return {c.id: len(chat_tokens(request_messages(c, 0))) + output_cap(c.turns[0].max_tokens, cap)
            for c in wl.conversations}  # fmt: skip


def test_requests_too_long_for_the_context_are_said_before_and_in_the_report(
    short_engine, tmp_path: Path
) -> None:
    size = engine_sizes(64)
    over = sum(1 for n in size.values() if n > CONTEXT)
    assert 5 <= over <= 35  # the dataset has both kinds
    out = locust(
        short_engine.url, tmp_path / "results", "-u", "4", "-r", "4", "-t", "4s", "--max-tokens", "64"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = f"{over} of 40 requests of --dataset {DATASET} ({100 * over / 40:.0f} %) will not fit the server's context"
    assert line in out.stderr, out.stderr[-3000:]
    (run,) = list((tmp_path / "results").iterdir())
    meta = json.loads((run / "run.json").read_text())
    assert meta["context_fit"]["context_tokens"] == CONTEXT
    assert meta["context_fit"]["datasets"][0]["over"] == over
    with open(run / "requests.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    refused = [r for r in rows if r["error"] == "http_400"]
    first = [r for r in rows if "~" not in r["session"]]  # a later pass tags its prompts (a few tokens more)
    assert any(size[r["session"]] > CONTEXT for r in first)  # some were sent
    for r in first:  # refused exactly when the engine's count says so
        assert (r["error"] == "http_400") == (size[r["session"]] > CONTEXT), r
        if r["error"] == "http_400":
            assert "maximum context length" in r["error_detail"], r
    assert meta["context_fit"]["datasets"][0]["prompts_counted_by_server"] >= 16
    warnings = load_run(run).warnings
    assert any(
        f"{over} of 40 requests" in w and f"{len(refused)} rows failed with http_400" in w for w in warnings
    )


def test_an_output_cap_larger_than_the_context_stops_before_the_run(short_engine, tmp_path: Path) -> None:
    """Requests without their own max_tokens are sent with --max-tokens: above the context, none can fit."""
    data = tmp_path / "short.jsonl"
    data.write_text("".join(json.dumps({"custom_id": str(i), "body": {"messages": [{"role": "user", "content": "Hi"}]}})
                            + "\n" for i in range(3)))  # fmt: skip
    out = locust(short_engine.url, tmp_path / "results", "-u", "1", "-t", "3s", "--max-tokens", str(CONTEXT + 1),
                 "--dataset", str(data))  # fmt: skip
    assert out.returncode == 2, out.stderr[-3000:]
    assert "--max-tokens 1,025: the server's context is 1,024 tokens" in out.stderr
    assert "Traceback" not in out.stderr
    assert not list((tmp_path / "results").glob("*/requests.csv"))


def server_says(url: str) -> tuple[Any, Any]:
    """What the check before a run reads from the server at `url`: its context, and its prompt counter."""
    from loadgen.run import serverfacts
    from loadgen.run.target import check

    served = check(url, "", "OPENAI_API_KEY")
    ask = serverfacts.Asker(url, "OPENAI_API_KEY", "raw", None)
    return serverfacts.context_length(served.card, ask), serverfacts.token_counter(ask, served.model)


class TgiInfo(Handler):
    """TGI's routes as its router answers them (router/src/lib.rs `Info`; server.rs): /v1/models
    without a context length, /info with max_total_tokens, and no prompt-counting route Goodput
    knows (its /tokenize takes `inputs`, so a chat body is refused)."""

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            self.answer(
                200, json.dumps({"object": "list", "data": [{"id": "tgi", "object": "model"}]}).encode()
            )
        elif self.path == "/info":
            info = {"model_id": "tgi", "max_input_tokens": 3000, "max_total_tokens": 4096, "version": "3.3.6"}
            self.answer(200, json.dumps(info).encode())
        else:
            self.answer(404, b"{}")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer(422 if self.path == "/tokenize" else 404, b'{"error": "missing field `inputs`"}')


def test_tgi_gives_its_context_in_info_and_the_estimate_counts() -> None:
    from loadgen.run.fit import check_fit

    with http_server(TgiInfo) as url:
        context, count = server_says(url)
        assert context == (4096, "max_total_tokens in TGI's /info", True)
        wl = load_workload("random:n=20,input=uniform(2000,6000),output=16,seed=1")
        fit = check_fit("random", wl, 64, context, count)
    assert fit.scale is None and fit.sampled == 0  # no count from the server: Goodput's estimate
    truth = sum(1 for c in wl.conversations if count_tokens(c.turns[0].messages[0]["content"]) + 16 > 4096)
    assert 0 < fit.over == truth < 20
    assert "(max_total_tokens in TGI's /info)" in fit.warning() and "(Goodput's estimate)" in fit.warning()


class Broken(Handler):
    """A server that answers /props with a body cut short of its Content-Length and /info with HTML."""

    def do_GET(self) -> None:
        if self.path == "/props":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"default_gen')
            self.close_connection = True
        else:
            self.answer(500, b"<html>Internal Server Error</html>", Content_Type="text/html")


def test_a_server_that_answers_badly_gives_no_context_and_no_error() -> None:
    from loadgen.run import serverfacts

    with http_server(Broken) as url:
        ask = serverfacts.Asker(url, "OPENAI_API_KEY", "raw", None, timeout_s=2)
        assert serverfacts.context_length({"id": "m"}, ask) is None
        assert serverfacts.token_counter(ask, "m")([{"role": "user", "content": "hi"}]) is None


class SlowCounter(Handler):
    """vLLM's /tokenize, 0.2 s an answer (a remote server, long prompts)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        time.sleep(0.2)
        self.answer(
            200, json.dumps({"count": len(chat_tokens(body["messages"])), "max_model_len": 4096}).encode()
        )


def test_counting_stops_at_its_budget() -> None:
    from loadgen.run import serverfacts

    with http_server(SlowCounter) as url:
        count = serverfacts.token_counter(
            serverfacts.Asker(url, "OPENAI_API_KEY", "raw", None), "m", budget_s=0.5
        )
        t0 = time.monotonic()
        answers = [count([{"role": "user", "content": "a b c"}]) for _ in range(10)]
    assert 1 <= sum(n is not None for n in answers) <= 3 and all(n is None for n in answers[3:])
    assert time.monotonic() - t0 < 1.8  # not 10 × 0.2 s: the last answer begun by 0.5 s


class OllamaLike(Handler):
    """Ollama as it answers by default (ollama/ollama#17889, #17944): /v1/models without a context
    length, the loaded models' contexts in /api/ps, and /api/chat that shortens a prompt longer than
    the context and answers 200 — unless the request says `truncate: false`, then a 400. Its
    "tokenizer" is Goodput's estimate over the messages' text (no chat template)."""

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            card = {"id": "qwen3:0.6b", "object": "model", "created": 1765000000, "owned_by": "library"}
            self.answer(200, json.dumps({"object": "list", "data": [card]}).encode())
        elif self.path == "/api/ps":
            models = [{"name": "llama3.2:latest", "model": "llama3.2:latest", "context_length": 32768},
                      {"name": "qwen3:0.6b", "model": "qwen3:0.6b", "context_length": CONTEXT}]  # fmt: skip
            self.answer(200, json.dumps({"models": models}).encode())
        else:
            self.answer(404, b'{"error": "404 page not found"}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.path != "/api/chat":
            self.answer(404, b'{"error": "404 page not found"}')
            return
        n = ollama_prompt(body["messages"])
        if n > CONTEXT and body.get("truncate") is False:
            message = f"the input length ({n} tokens) exceeds the context length ({CONTEXT} tokens)"
            self.answer(400, json.dumps({"error": message}).encode())
            return
        line = {"model": "qwen3:0.6b", "created_at": "2026-12-06T00:00:00Z", "done": False}
        out = [json.dumps({**line, "message": {"role": "assistant", "content": w}}) for w in ("Hi", " there")]
        done = {**line, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                "prompt_eval_count": min(n, CONTEXT), "eval_count": 2}  # fmt: skip
        self.answer(
            200, ("\n".join([*out, json.dumps(done)]) + "\n").encode(), Content_Type="application/x-ndjson"
        )


def ollama_prompt(messages: list[dict]) -> int:
    return sum(count_tokens(m["content"]) for m in messages)


def test_ollama_gives_the_loaded_context_and_a_long_prompt_is_refused_not_shortened(tmp_path: Path) -> None:
    wl = load_workload(DATASET)
    prompts = {c.id: ollama_prompt(request_messages(c, 0)) for c in wl.conversations}
    assert 5 <= sum(n > CONTEXT for n in prompts.values()) <= 35
    with http_server(OllamaLike) as url:
        out = locust(url, tmp_path / "results", "-u", "2", "-r", "2", "-t", "3s", "--api", "ollama",
                     "--server-metrics", "off", "--max-tokens", "16")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"will not fit the server's context of {CONTEXT:,} tokens (context_length of the loaded model in Ollama's /api/ps)" in out.stderr  # fmt: skip
    (run,) = list((tmp_path / "results").iterdir())
    meta = json.loads((run / "run.json").read_text())
    assert meta["context_fit"]["context_tokens"] == CONTEXT and "Ollama" in meta["context_fit"]["source"]
    with open(run / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if "~" not in r["session"] and r["error"] != "cancelled"]
    assert len(rows) >= 10 and {r["api"] for r in rows} == {"ollama"}
    for r in rows:  # sent with truncate: false, an over-long prompt is refused, never timed shortened
        assert (r["error"] == "http_400") == (prompts[r["session"]] > CONTEXT), r
        if r["ok"] == "true":
            assert int(r["prompt_tokens"]) == prompts[r["session"]] and r["tokens_source"] == "eval_count"
        else:
            assert "exceeds the context length" in r["error_detail"]


class SGLangTokenize(Handler):
    """SGLang's routes as its server answers them: `max_model_len` on the model card, and a /tokenize
    whose TokenizeRequest takes text (`prompt`; serving_tokenize.py) — a chat body is refused (400, its
    validation error) — counted without a chat template by a tokenizer with a small vocabulary (a
    token per 2 bytes: not the rule of Goodput's estimate, so the two can be told apart)."""

    def do_GET(self) -> None:
        card = {"id": "sgl", "object": "model", "owned_by": "sglang", "max_model_len": 4096}
        self.answer(200, json.dumps({"object": "list", "data": [card]}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.path != "/tokenize":
            self.answer(404, b'{"detail": "Not Found"}')
        elif not isinstance(body.get("prompt"), str):
            error = {"object": "error", "message": "1 validation error for TokenizeRequest\nprompt\n  Field required",
                     "type": "BadRequestError", "param": None, "code": 400}  # fmt: skip
            self.answer(400, json.dumps(error).encode())
        else:
            n = small_vocabulary(body["prompt"])
            self.answer(
                200, json.dumps({"tokens": list(range(n)), "count": n, "max_model_len": 4096}).encode()
            )


def small_vocabulary(text: str) -> int:
    return -(-len(text.encode()) // 2)


def test_sglang_counts_the_text_at_its_tokenize() -> None:
    """SGLang refuses a chat body at /tokenize and counts the text: Goodput asks with the conversation as
    the text routes send it, and the fit is the server's count, not Goodput's estimate."""
    from loadgen.run.fit import check_fit
    from loadgen.transport.apis.base import prompt_text

    wl = load_workload("random:n=30,input=uniform(600,2000),output=16,seed=4")
    with http_server(SGLangTokenize) as url:
        context, count = server_says(url)
        assert context == (4096, "max_model_len in /v1/models", True)
        first = request_messages(wl.conversations[0], 0)
        assert count(first) == small_vocabulary(prompt_text(first))
        fit = check_fit("random", wl, 16, context, count)
    theirs = [small_vocabulary(prompt_text(request_messages(c, 0))) for c in wl.conversations]
    ours = [count_tokens(c.turns[0].messages[0]["content"]) for c in wl.conversations]
    truth, estimate = sum(n + 16 > 4096 for n in theirs), sum(n + 16 > 4096 for n in ours)
    assert fit.scale is not None and fit.scale > 2 and fit.sampled >= 4
    assert 0 < fit.over == truth < 30 and estimate == 0, (fit, truth, estimate)
