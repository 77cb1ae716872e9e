"""Workloads loaders on small files made here: OpenAI batch JSONL, ShareGPT, session JSONL, column-mapped
json/csv/parquet (csv and parquet read through Hugging Face `datasets`), the hub, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workloads import WorkloadError, count_tokens, load_workload, open_workload
from workloads.sources import columns


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def batch_line(i: object, **body: object) -> dict:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": f"question {i}"},
    ]
    return {
        "custom_id": i,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": messages, **body},
    }


def one_line_error(spec: str) -> str:
    with pytest.raises(WorkloadError) as e:
        load_workload(spec)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# -- OpenAI batch JSONL ----------------------------------------------------------------------------------
def test_batch_jsonl(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "b.jsonl",
        [batch_line(0, max_tokens=128), batch_line("x", max_tokens=64, temperature=0.7, stream=True)],
    )
    w = load_workload(str(path))
    assert [c.id for c in w.conversations] == ["0", "x"] and not w.multi_turn
    c = w.conversations[1]
    assert c.prefix == ({"role": "system", "content": "You are a helpful assistant."},)
    assert c.turns[0].messages == ({"role": "user", "content": "question x"},) and c.turns[0].max_tokens == 64
    assert c.extra_body == {"temperature": 0.7}  # model and stream are the run's to decide
    assert w.conversations[0].group == c.group  # same system prompt, same prefix group
    messages, max_tokens, _, turn = open_workload(str(path), seed=0, order="sequential").next_request()
    assert [m["role"] for m in messages] == ["system", "user"] and max_tokens == 128 and turn == 0


def test_batch_malformed_line_names_file_line_and_shape(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [batch_line(0), '{"custom_id": 1, "body": {"messages": [}'])
    msg = one_line_error(str(path))
    assert msg.startswith(f"{path}:2: not valid JSON") and '"custom_id"' in msg and '"body"' in msg


@pytest.mark.parametrize(
    ("line", "needle"),
    [({"custom_id": 1, "body": {"max_tokens": 5}}, "body.messages must be a non-empty list"),
     ({"custom_id": 1, "body": {"messages": [{"content": "hi"}]}}, "body.messages[0] has no role"),
     ({"custom_id": 1, "body": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -3}}, "max_tokens must be a positive integer"),
     ({"custom_id": 1, "body": "POST"}, "no body object")],
)  # fmt: skip
def test_batch_bad_records(tmp_path: Path, line: dict, needle: str) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [batch_line(0), batch_line(1), line])
    msg = one_line_error(str(path))
    assert msg.startswith(f"{path}:3: ") and needle in msg and "expected {" in msg


# -- ShareGPT and chat logs -----------------------------------------------------------------------------------
SHAREGPT = [
    {"id": "s1", "conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi there"},
        {"from": "gpt", "value": "Hello! How can I help?"}, {"from": "human", "value": "Tell me a joke."},
        {"from": "gpt", "value": "Why did the chicken cross the road? To get to the other side."}]},
    {"id": "s2", "conversations": [{"from": "gpt", "value": "greeting first"}, {"from": "human", "value": "Only one turn"}]},
    {"id": "s3", "conversations": [{"from": "gpt", "value": "no user turn at all"}]},
]  # fmt: skip


def test_sharegpt_json_array(tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    path.write_text(json.dumps(SHAREGPT, indent=1))
    w = load_workload(str(path))
    assert [c.id for c in w.conversations] == ["s1", "s2"] and w.multi_turn  # s3 has no user turn
    s1 = w.conversations[0]
    assert s1.prefix == ({"role": "system", "content": "Be brief."},) and len(s1.turns) == 2
    assert s1.turns[0].reply == "Hello! How can I help?" and s1.turns[0].max_tokens == count_tokens(
        "Hello! How can I help?"
    )
    assert (
        w.conversations[1].turns[0].max_tokens is None
    )  # no recorded answer: the run's --max-tokens applies
    first = load_workload(f"{path}?turns=first")
    assert not first.multi_turn and len(first.conversations[0].turns) == 1


def test_sharegpt_jsonl_and_messages_column(tmp_path: Path) -> None:
    rows = [{"conversations": SHAREGPT[0]["conversations"]},
            {"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}]  # fmt: skip
    w = load_workload(str(write_jsonl(tmp_path / "sg.jsonl", rows)))
    assert [c.id for c in w.conversations] == ["sg-1", "sg-2"]
    assert w.conversations[1].turns[0].reply == "4"


def test_sharegpt_bad_speaker(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sg.jsonl", [{"conversations": [{"from": "narrator", "value": "x"}]}])
    msg = one_line_error(str(path))
    assert msg.startswith(f"{path}:1: message 0 has speaker 'narrator'") and '"from"' in msg


def test_json_array_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sg.json"
    path.write_text('[\n  {"conversations": []},\n  {"conversations": [}\n]\n')
    assert one_line_error(str(path)).startswith(f"{path}:3: not valid JSON")


# -- Goodput session JSONL ----------------------------------------------------------------------------------
def test_session_jsonl_prefix_reference_and_inline(tmp_path: Path) -> None:
    rows = [
        {"type": "goodput-workload", "version": 1, "name": "mine", "description": "two sessions"},
        {"type": "prefix", "id": "sys", "messages": [{"role": "system", "content": "tools..."}]},
        {"type": "session", "id": "a", "prefix": "sys", "turns": [
            {"messages": [{"role": "user", "content": "task"}], "max_tokens": 20, "reply": "calling a tool"},
            {"messages": [{"role": "user", "content": "<tool_result>ok</tool_result>"}], "max_tokens": 30, "think_time_s": 1.5}]},
        {"type": "session", "id": "b", "prefix": [{"role": "system", "content": "inline"}],
         "turns": [{"messages": [{"role": "user", "content": "hi"}]}], "extra_body": {"temperature": 0}},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "s.jsonl", rows)
    w = load_workload(str(path))
    a, b = w.conversations
    assert w.description == "two sessions" and w.multi_turn
    assert a.group == "sys" and a.prefix[0]["content"] == "tools..." and a.turns[1].think_time_s == 1.5
    assert b.extra_body == {"temperature": 0} and b.group == "default"
    assert load_workload(f"{path}?think=0").conversations[0].turns[1].think_time_s == 0.0


def test_session_jsonl_errors(tmp_path: Path) -> None:
    bad_ref = {
        "type": "session",
        "id": "a",
        "prefix": "nope",
        "turns": [{"messages": [{"role": "user", "content": "x"}]}],
    }
    path = write_jsonl(tmp_path / "s.jsonl", [bad_ref])
    assert one_line_error(str(path)).startswith(f"{path}:1: prefix 'nope' is not defined above")
    bad_turn = {
        "type": "session",
        "id": "a",
        "turns": [{"messages": [{"role": "user", "content": "x"}], "think_time_s": -1}],
    }
    path = write_jsonl(tmp_path / "t.jsonl", [{"type": "goodput-workload"}, bad_turn])
    assert one_line_error(str(path)).startswith(f"{path}:2: turns[0].think_time_s must be ≥ 0")


# -- column-mapped tables ----------------------------------------------------------------------------------------
def test_jsonl_with_column_mapping(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"q": "What is TCP?", "a": "A transport protocol."}, {"q": "And UDP?", "a": "Also one."}],
    )
    w = load_workload(f"{path}?prompt=q&reply=a&max_tokens=64")
    assert [c.turns[0].messages[0]["content"] for c in w.conversations] == ["What is TCP?", "And UDP?"]
    assert {c.turns[0].max_tokens for c in w.conversations} == {64}
    msg = one_line_error(str(path))
    assert "no column mapping" in msg and "?prompt=COLUMN" in msg and "columns: q, a" in msg


def test_csv_through_hf_datasets(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("question,answer,sys\nWhat is 2+2?,4,Be exact.\nName a primary colour,Red,Be exact.\n")
    w = load_workload(f"{path}?prompt=question&reply=answer&system=sys")
    c = w.conversations[0]
    assert (
        c.prefix == ({"role": "system", "content": "Be exact."},)
        and c.turns[0].reply == "4"
        and c.turns[0].max_tokens == 1
    )
    assert w.conversations[1].group == c.group
    assert "reply=nope: no such column (columns: question, answer, sys)" in one_line_error(
        f"{path}?prompt=question&reply=nope"
    )
    assert "no column mapping" in one_line_error(str(path))


def test_parquet_through_hf_datasets(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(
        pa.table({"prompt": ["a b c", "d e", ""], "cap": [10, 20, 30], "id": ["r1", "r2", "r3"]}), path
    )
    msg = one_line_error(f"{path}?max_tokens=cap&id=id")  # the `prompt` column is picked up without a mapping
    assert msg == f"{path}: row 3: column 'prompt' is empty; expected the prompt text"
    w = load_workload(f"{path}?max_tokens=cap&id=id&limit=2")
    assert [(c.id, c.turns[0].max_tokens) for c in w.conversations] == [("r1", 10), ("r2", 20)]


def test_table_messages_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "chat.parquet"
    msgs = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]]
    pq.write_table(pa.table({"messages": msgs}), path)
    c = load_workload(str(path)).conversations[0]
    assert c.turns[0].reply == "hello there"


# -- errors that are not about one line ---------------------------------------------------------------------------
def test_empty_and_unsupported_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    assert one_line_error(str(tmp_path / "empty.jsonl")).endswith("no requests (empty dataset)")
    (tmp_path / "empty.csv").write_text("prompt\n")
    assert "no requests (empty dataset)" in one_line_error(str(tmp_path / "empty.csv"))
    (tmp_path / "notes.txt").write_text("hello")
    assert "unsupported file type '.txt'" in one_line_error(str(tmp_path / "notes.txt"))
    assert "is a directory" in one_line_error(str(tmp_path))
    assert "format=xml is not one of" in one_line_error(f"{tmp_path / 'empty.jsonl'}?format=xml")


def test_hub_unreachable_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(columns, "hub_reachable", lambda timeout_s=3.0: False)
    msg = one_line_error("hf:someone/some-set?prompt=text")
    assert (
        msg.startswith("hf:someone/some-set: the Hugging Face hub is not reachable") and "local file" in msg
    )


def test_hub_probe_fails_fast_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert columns.hub_reachable(timeout_s=1.0) is False
