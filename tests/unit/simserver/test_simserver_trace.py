"""Reading the engine's trace while it is written: only whole lines (simserver/trace.py read_lines).

A test run once read `{"request_id":"join-2` — an append seen half done — and failed on its JSON.
"""

from __future__ import annotations

from pathlib import Path

from simserver.trace import TraceWriter, read_lines


def test_a_half_written_last_line_waits_and_a_missing_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    assert read_lines(path) == []
    writer = TraceWriter(path)
    writer.write({"request_id": "a", "status": "ok"})  # no event loop: written at once
    with path.open("ab") as fh:
        fh.write(b'{"request_id":"join-2')  # what a reader saw mid-append
    assert [x["request_id"] for x in read_lines(path)] == ["a"]
    with path.open("ab") as fh:
        fh.write(b'","status":"ok"}\n')
    assert [x["request_id"] for x in read_lines(path)] == ["a", "join-2"]
    writer.close()
