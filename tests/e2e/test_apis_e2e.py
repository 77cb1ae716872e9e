"""End to end, every `--api` against the simulated engine, each row held to the engine's trace (joined
by X-Request-Id): TTFT at the engine's first emit, TTFO at its first answer emit, tool-call timing at
its first tool-call emit (each within 2 ms p99), reasoning and output tokens equal to what it generated.

The engine is the `reasoning` profile with short thoughts and answers (a config on top of it), so a
run of a few seconds holds enough requests; its trace says, per request, when the first token, the
first answer token and the first tool-call delta left and how many reasoning tokens there were.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, ROOT
from tests.support.traces import traced

pytestmark = pytest.mark.e2e
TOLERANCE_S = 0.002
EARLY_S = 0.001  # a client stamp may precede the engine's by clock granularity, never by more
SHORT = """base: reasoning
reasoning: {tokens_median: 24, tokens_sigma: 0.4, skip_probability: 0.2}
output: {median_tokens: 24, sigma: 0.4}
tool_calls: {call_probability: 0.5, string_words_max: 3}
"""
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def engine(sim_server, tmp_path: Path) -> tuple[object, Path]:
    config, trace = tmp_path / "short.yaml", tmp_path / "trace.jsonl"
    config.write_text(SHORT)
    return sim_server("--config", str(config), "--trace", str(trace)), trace


def tool_dataset(tmp_path: Path, n: int = 40) -> Path:
    """OpenAI batch lines carrying `tools` (sent as extra request fields)."""
    path = tmp_path / "tools.jsonl"
    lines = []
    for i in range(n):
        body = {
            "messages": [{"role": "user", "content": f"Weather in city {i}? Answer briefly."}],
            "max_tokens": 200,
        }
        lines.append(json.dumps({"custom_id": f"q{i}", "body": {**body, "tools": [TOOL]}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def locust(host: str, results: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(results), "--shape", "none", "--server-metrics", "off", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=150)


def rows_and_trace(results: Path, trace: Path) -> tuple[Path, list[tuple[dict, dict]]]:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run / "requests.csv", newline="") as fh:
        rows = {r["request_id"]: r for r in csv.DictReader(fh) if r["ok"] == "true"}
    truth = traced(trace, set(rows))
    joined = [(rows[t["request_id"]], t) for t in truth if t["request_id"] in rows and t["status"] == "ok"]
    return run, joined


def offsets(pairs: list[tuple[dict, dict]], column: str, field: str) -> list[float]:
    """Client time of `column` (t_start_unix + it) minus the engine's `field`, for rows that have both."""
    out = []
    for r, t in pairs:
        if r[column] and t.get(field):
            out.append(float(r["t_start_unix"]) + float(r[column]) - t[field])
    return sorted(out)


def assert_on_time(diffs: list[float], what: str, at_least: int) -> None:
    assert len(diffs) >= at_least, f"{what}: only {len(diffs)} samples"
    p99 = diffs[int(0.99 * (len(diffs) - 1))]
    assert diffs[0] >= -EARLY_S, (
        f"{what}: the client saw it {-diffs[0] * 1e3:.2f} ms before the engine sent it"
    )
    assert p99 <= TOLERANCE_S, f"{what}: {p99 * 1e3:.2f} ms p99 after the engine's emit"


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_reasoning_and_tool_calls_match_the_engine_trace(sim_server, tmp_path: Path, api: str) -> None:
    """The OpenAI route and Anthropic's (thinking blocks, tool_use blocks), held to the same trace."""
    sim, trace = engine(sim_server, tmp_path)
    out = locust(sim.url, tmp_path / "results", "-u", "8", "-r", "8", "-t", "14s", "--run-name", "reasoning",
                 "--dataset", str(tool_dataset(tmp_path)), "--max-tokens", "200", "--api", api)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run, pairs = rows_and_trace(tmp_path / "results", trace)
    assert len(pairs) >= 40
    for r, t in pairs:
        assert r["api"] == api and r["tokens_source"] == "usage"
        assert int(r["prompt_tokens"]) == t["prompt_tokens"]
        assert int(r["output_tokens"]) == t["output_tokens"]
        assert int(r["reasoning_tokens"]) == t["reasoning_tokens"]  # = usage's completion_tokens_details
        assert bool(r["ttfo_s"]) == (t["t_first_answer_emit_unix"] is not None)
        if t["tool_name"]:
            assert (
                int(r["tool_call_tokens"]) == t["tool_argument_tokens"] and r["finish_reason"] == "tool_calls"
            )
        else:
            assert r["tool_ttft_s"] == "" and r["tool_call_tokens"] == ""
    assert sum(t["reasoning_tokens"] > 0 for _, t in pairs) >= 20
    assert sum(bool(t["tool_name"]) for _, t in pairs) >= 5
    assert_on_time(offsets(pairs, "ttft_s", "t_first_emit_unix"), "TTFT", 40)
    assert_on_time(offsets(pairs, "ttfo_s", "t_first_answer_emit_unix"), "TTFO", 30)
    assert_on_time(offsets(pairs, "tool_ttft_s", "t_first_tool_call_emit_unix"), "tool-call TTFT", 5)
    if api != "chat":
        return
    # the analysis: a Reasoning section, TTFO in summary.json, the TTFO SLO judged
    done = subprocess.run([PYTHON, "-m", "analysis", str(run), "--no-plots", "--quiet", "--slo", "reasoning,ttfo=5s", "--include-startup"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["reasoning"]["requests"] == sum(t["reasoning_tokens"] > 0 for _, t in pairs)
    assert summary["tool_calls"]["requests"] == sum(bool(t["tool_name"]) for _, t in pairs)
    assert summary["slo"]["ttfo_s"] == 5.0
    html = (run / "report.html").read_text()
    assert "<h2>Reasoning</h2>" in html and "<h2>Tool calls</h2>" in html
    assert "## Reasoning" in (run / "summary.md").read_text()


@pytest.mark.parametrize(
    ("api", "client", "source", "ttfo"),
    [
        ("responses", "raw", "usage", True),
        ("sglang", "raw", "meta_info", True),
        ("tgi", "raw", "details", False),
        ("llamacpp", "raw", "timings", False),
        ("ollama", "raw", "eval_count", True),
        ("messages", "raw", "usage", True),
        ("responses", "openai", "usage", True),
    ],
)
def test_each_api_end_to_end(
    sim_server, tmp_path: Path, api: str, client: str, source: str, ttfo: bool
) -> None:
    sim, trace = engine(sim_server, tmp_path)
    out = locust(sim.url, tmp_path / "results", "-u", "6", "-r", "6", "-t", "8s", "--run-name", api,
                 "--api", api, "--client", client, "--dataset", "chat", "--max-tokens", "128")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    run, pairs = rows_and_trace(tmp_path / "results", trace)
    (meta,) = [json.loads((run / "run.json").read_text())]
    assert meta["api"] == api
    with open(run / "requests.csv", newline="") as fh:
        every_row = list(csv.DictReader(fh))
    rows = [r for r in every_row if r["error"] != "cancelled"]
    assert rows and all(r["ok"] == "true" for r in rows), {r["error_detail"] for r in rows}
    assert {r["api"] for r in rows} == {api}
    ids = {r["request_id"] for r in rows}
    completed = {t["request_id"] for t in traced(trace, ids) if t["status"] == "ok"}
    assert ids <= completed  # every row is a request the engine completed
    # and every request it completed has a row: a successful one, or `cancelled` where the run's stop
    # cut its last chunks after the engine had written them to a socket the client had not closed yet
    cut = {r["request_id"] for r in every_row if r["error"] == "cancelled"}
    assert completed - ids <= cut, completed - ids - cut
    assert len(pairs) >= 15
    for r, t in pairs:
        assert (int(r["output_tokens"]), r["tokens_source"]) == (t["output_tokens"], source)
        if ttfo:
            assert int(r["reasoning_tokens"]) == t["reasoning_tokens"]
            assert bool(r["ttfo_s"]) == (t["t_first_answer_emit_unix"] is not None)
        else:  # reasoning arrives as plain text on this route: nothing tells it from the answer
            assert r["ttfo_s"] == "" and r["reasoning_tokens"] == ""
    if client == "raw":  # the SDK's stamps are taken when httpx hands a chunk over (README: Performance)
        assert_on_time(offsets(pairs, "ttft_s", "t_first_emit_unix"), f"{api} TTFT", 15)
        if ttfo:
            assert_on_time(offsets(pairs, "ttfo_s", "t_first_answer_emit_unix"), f"{api} TTFO", 10)


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_agent_sends_tool_calls_back_as_tool_messages(sim_server, tmp_path: Path, api: str) -> None:
    """A session goes on after a tool call: its history (the call, the tool's result) in the API's own
    form — OpenAI's `tool_calls` and `tool` messages, or Anthropic's `tool_use` and `tool_result` blocks."""
    sim, trace = engine(sim_server, tmp_path)
    out = locust(sim.url, tmp_path / "results", "-u", "4", "-r", "4", "-t", "10s", "--run-name", "agent",
                 "--dataset", "agentic:tools=native,think=0", "--api", api)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    _, pairs = rows_and_trace(tmp_path / "results", trace)
    with open(next((tmp_path / "results").iterdir()) / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["error"] != "cancelled"]
    assert all(r["ok"] == "true" for r in rows), {
        r["error_detail"] for r in rows
    }  # the server took every turn
    called = {r["session"] for r, t in pairs if t["tool_name"]}
    later = [r for r in rows if r["session"] in called and int(r["turn"]) > 0]
    assert called and later, "some session went on after a tool call"


@pytest.mark.parametrize("api", ["messages", "sglang", "tgi", "llamacpp", "ollama"])
def test_the_sdk_cannot_send_a_native_route(sim_server, tmp_path: Path, api: str) -> None:
    out = locust("http://127.0.0.1:9", tmp_path / "results", "-t", "2s", "--client", "openai", "--api", api)
    errors = [line for line in out.stderr.splitlines() if "goodput: error:" in line]
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(errors) == 1 and f"--api {api}" in errors[0] and "--client raw" in errors[0], out.stderr[
        -2000:
    ]
