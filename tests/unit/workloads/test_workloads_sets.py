"""The built-in sets and generators, the shipped files, `python -m workloads stats|show|list`, import weight."""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from workloads import BUILTINS, DATA_DIR, count_tokens, load_workload, open_workload, request_messages
from workloads.__main__ import main
from workloads.shipped import SHIPPED, check_all, render_set
from workloads.stats import compute, request_lengths

ROOT = Path(__file__).resolve().parents[3]


def test_every_builtin_opens() -> None:
    for name in BUILTINS:
        s = open_workload(name, seed=0)
        assert s.size > 0 and s.name == name
        assert s.multi_turn == (name == "agentic")
        messages, _, conv, _ = s.next_request()
        assert messages and conv.id


def test_agentic_sessions_look_like_a_coding_agent() -> None:
    w = load_workload("agentic")
    assert all(4 <= len(c.turns) <= 10 for c in w.conversations)
    assert max(len(c.turns) for c in w.conversations) >= 6
    assert len({c.group for c in w.conversations}) == 3
    for c in w.conversations:
        system = c.prefix[0]["content"]
        assert (
            c.prefix[0]["role"] == "system"
            and count_tokens(system) > 1500
            and "- apply_patch(patch: string)" in system
        )
        assert c.turns[0].think_time_s == 0 and all(t.think_time_s >= 0 for t in c.turns)
        assert all(t.reply and t.max_tokens == count_tokens(t.reply) for t in c.turns)
        assert (
            "<tool_call>" in c.turns[0].reply and "<tool_call>" not in c.turns[-1].reply
        )  # ends with a summary
        assert any("<tool_result" in m["content"] for t in c.turns[1:] for m in t.messages)
    sizes = [len(request_messages(c, t)) for c in w.conversations[:1] for t in range(len(c.turns))]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0]  # context grows turn by turn
    by_group: dict[str, set[str]] = {}
    for c in w.conversations:
        by_group.setdefault(c.group, set()).add(c.prefix[0]["content"])
    assert all(len(v) == 1 for v in by_group.values())  # one shared system prompt per group


def test_agentic_fits_the_context_window() -> None:
    """prompt (estimate x 1.25 for BPE, + template) + expected output stays within `context`."""
    for context, spec in ((4096, "agentic"), (8192, "agentic:context=8192,sessions=8")):
        w = load_workload(spec)
        worst = max(
            1.25 * sum(count_tokens(m["content"]) + 5 for m in request_messages(c, t)) + 64 + turn.max_tokens
            for c in w.conversations
            for t, turn in enumerate(c.turns)
        )
        assert worst <= context
    big = load_workload("agentic:context=8192,sessions=8").conversations[0].prefix[0]["content"]
    assert count_tokens(big) > 3000 and '"name": "apply_patch"' in big  # full JSON tool schemas


def test_later_passes_are_tagged_not_verbatim() -> None:
    s = open_workload("chat:n=3", seed=0, order="sequential")
    first = [s.next_conversation() for _ in range(3)]
    again = s.next_conversation()
    assert (
        again.id == f"{first[0].id}~1" and again.prefix == first[0].prefix
    )  # the shared prefix stays shared
    assert again.turns[0].messages[0]["content"] == "[1.0] " + first[0].turns[0].messages[0]["content"]
    exact = open_workload("chat:n=3,repeat=exact", seed=0, order="sequential")
    assert [exact.next_conversation().id for _ in range(4)][-1] == first[0].id
    agent = open_workload("agentic:repeat=fresh", seed=0, order="sequential")
    for _ in range(agent.size + 1):
        conv = agent.next_conversation()
    messages = [agent.next_request() for _ in range(len(conv.turns) + 1)][-1][0]
    assert messages[1]["content"].startswith("[1.") and messages[0]["role"] == "system"


def test_shipped_files_equal_generator_output() -> None:
    """`random` (the file) and `random:n=100` (generated) are the same requests; the files are fresh."""
    assert load_workload("random").conversations == load_workload("random:n=100").conversations
    assert load_workload("chat").conversations == load_workload("chat:n=300").conversations
    manifest = json.loads((DATA_DIR / "MANIFEST.json").read_text())
    assert set(manifest["sets"]) == set(SHIPPED)
    if manifest["python"].split(".")[:2] != list(platform.python_version_tuple()[:2]):
        pytest.skip(f"shipped sets were written by Python {manifest['python']}; stdlib material may differ")
    assert check_all() == []


def test_regeneration_is_deterministic() -> None:
    assert render_set("chat", {"n": "40"}) == render_set("chat", {"n": "40"})
    assert render_set("agentic", {"sessions": "3", "seed": "4"}) == render_set(
        "agentic", {"sessions": "3", "seed": "4"}
    )
    assert render_set("agentic", {"sessions": "3", "seed": "4"}) != render_set(
        "agentic", {"sessions": "3", "seed": "5"}
    )
    assert (DATA_DIR / "__init__.py").exists() is False  # a `datasets` package would shadow Hugging Face's


def test_random_generator_lengths() -> None:
    w = load_workload("random:n=400,input=uniform(100,200),output=normal(80,10,50,110)")
    ins = [count_tokens(c.turns[0].messages[0]["content"]) for c in w.conversations]
    outs = [c.turns[0].max_tokens for c in w.conversations]
    assert min(ins) >= 100 and max(ins) <= 200 and statistics.fmean(ins) == pytest.approx(150, rel=0.04)
    assert min(outs) >= 50 and max(outs) <= 110 and statistics.fmean(outs) == pytest.approx(80, rel=0.03)
    assert compute(w)["prefix_share"] < 0.03  # only the role header and chance first words


def test_random_like_copies_another_sets_lengths() -> None:
    agentic = [n for n, _ in request_lengths(load_workload("agentic"))]
    like = [n for n, _ in request_lengths(load_workload("random:like=agentic,n=120"))]
    assert statistics.fmean(like) == pytest.approx(statistics.fmean(agentic), rel=0.1)


def test_shared_prefix_generator() -> None:
    w = load_workload("shared-prefix:groups=4,prefix=1000,suffix=100,output=uniform(10,20),n=40")
    assert len(w.conversations) == 40 and len({c.group for c in w.conversations}) == 4
    c = w.conversations[0]
    assert (
        count_tokens(c.prefix[0]["content"]) == 1000
        and count_tokens(c.turns[0].messages[0]["content"]) == 100
    )
    assert all(10 <= x.turns[0].max_tokens <= 20 for x in w.conversations)
    assert compute(w)["prefix_share"] == pytest.approx(1000 / 1100, abs=0.01)


def test_stats_of_shipped_sets() -> None:
    agentic = compute(load_workload("agentic"))
    assert agentic["sessions"] == 48 and agentic["requests"] == sum(
        len(c.turns) for c in load_workload("agentic").conversations
    )
    assert agentic["prefix_share"] > 0.9 and agentic["prefix_share_across_sessions"] > 0.4
    assert agentic["input_tokens"]["p50"] > 2000 and agentic["output_tokens"]["max"] < 2000
    code = compute(load_workload("code"))
    assert 0.1 < code["prefix_share"] < 0.9 and code["groups"] > 10
    assert set(agentic["input_tokens"]) == {"p50", "p90", "p99", "max", "mean", "min"}


def test_cli_stats_show_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "chat"]) == 0
    out = capsys.readouterr().out
    for needle in ("sessions", "requests", "input tokens", "output tokens", "p99", "prefix sharing"):
        assert needle in out
    assert main(["stats", "shared-prefix:groups=2,n=4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["requests"] == 4
    assert main(["show", "agentic", "-n", "1"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("── agentic-") and "turn 1: think" in shown and "[assistant (recorded)]" in shown
    assert main(["list"]) == 0
    assert "shared-prefix" in capsys.readouterr().out


def test_cli_errors_are_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": 1, "body": {"messages": [{"role": "user", "content": "hi"}]}}\nnot json\n')
    assert main(["stats", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"workloads: error: {bad}:2: not valid JSON") and err.count("\n") == 1
    assert main(["stats", "nope"]) == 2
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_cli_subprocess_and_import_weight(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    r = subprocess.run(
        [sys.executable, "-m", "workloads", "stats", f"{bad}?prompt=question"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        r.stderr.strip()
        == f"workloads: error: {bad}?prompt=question: prompt=question: no such column (columns: none)".replace(
            f"{bad}?prompt=question:", f"{bad}:"
        )
    )
    code = "import sys, workloads; workloads.open_workload('agentic', seed=0).next_conversation(); print(sorted(m for m in ('pandas', 'datasets', 'matplotlib', 'pyarrow') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_cli_stats_context_counts_what_would_not_fit(capsys: pytest.CaptureFixture[str]) -> None:
    """`stats --context N --max-tokens M`: the requests whose estimated prompt and output cap exceed N."""
    from workloads.conversation import output_cap

    spec = "random:n=30,input=uniform(100,3000),output=uniform(8,400),seed=5"
    truth = [
        n
        for c in load_workload(spec).conversations
        if (n := count_tokens(c.turns[0].messages[0]["content"])) + output_cap(c.turns[0].max_tokens, 128)
        > 2048
    ]
    assert 0 < len(truth) < 30
    assert main(["stats", spec, "--context", "2048", "--max-tokens", "128", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)["context"]
    assert fit == {"tokens": 2048, "max_tokens": 128, "over": len(truth), "longest_prompt": max(truth)}
    assert main(["stats", spec, "--context", "2048", "--max-tokens", "128"]) == 0
    assert f"{len(truth)} of 30 requests exceed 2,048 tokens" in capsys.readouterr().out
    assert main(["stats", spec, "--context", "0"]) == 2
    assert "expected positive numbers of tokens" in capsys.readouterr().err
