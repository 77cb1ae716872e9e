"""The master's CSV sink: the fast formatter writes exactly what `csv.writer` writes, a flush lets
the event loop run between chunks, and stopping it mid-flush loses and repeats no row."""

from __future__ import annotations

import csv
import io
import random
import socket
import time
from pathlib import Path

import gevent
import gevent.socket

from core.record import COLUMNS
from loadgen.output.sink import CHUNK_ROWS, CsvSink, csv_lines

TRICKY = [
    "",
    " ",
    "a,b",
    'say "hi"',
    "line\nbreak",
    "cr\rhere",
    "both\r\n",
    '",',
    "ü — ✓",
    "0.012345;0.020000",
]


def _writer_bytes(rows: list[list[str]]) -> str:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def test_csv_lines_is_byte_for_byte_csv_writer() -> None:
    rng = random.Random(7)
    alphabet = 'ab,"\r\n ;.0é'
    rows = [[rng.choice(TRICKY) for _ in range(len(COLUMNS))] for _ in range(200)]
    rows += [
        ["".join(rng.choice(alphabet) for _ in range(rng.randrange(12))) for _ in range(5)]
        for _ in range(500)
    ]
    rows += [[f"{i}", "w-1", "0.5", ";".join(f"{rng.random():.6f}" for _ in range(200))] for i in range(50)]
    assert csv_lines(rows) == _writer_bytes(rows)
    assert list(csv.reader(io.StringIO(csv_lines(rows), newline=""))) == rows


def _rows(n: int, start: int = 0) -> list[list[str]]:
    out = []
    for i in range(start, start + n):
        r = [""] * len(COLUMNS)
        r[COLUMNS.index("request_id")] = f"req-{i}"
        r[COLUMNS.index("ok")] = "true" if i % 3 else "false"
        r[COLUMNS.index("error_detail")] = 'quote " and, comma' if i % 7 == 0 else ""
        out.append(r)
    return out


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_flush_writes_every_row_once_with_the_run_id(tmp_path: Path) -> None:
    sink = CsvSink(tmp_path / "requests.csv", "run-1", flush_s=60)
    sink.add_rows(_rows(2 * CHUNK_ROWS + 17))
    sink.flush()
    sink.close()
    got = _read(tmp_path / "requests.csv")
    assert [r["request_id"] for r in got] == [f"req-{i}" for i in range(2 * CHUNK_ROWS + 17)]
    assert {r["run_id"] for r in got} == {"run-1"}
    assert got[7]["error_detail"] == 'quote " and, comma'
    assert sink.rows_written == len(got)
    assert sink.ok_written == sum(r["ok"] == "true" for r in got)


def test_a_large_flush_lets_the_loop_serve_sockets_between_chunks(tmp_path: Path) -> None:
    """A worker's report (here: bytes on a socket) is read while 5 chunks are written, not after."""
    sink = CsvSink(tmp_path / "requests.csv", "run-1", flush_s=60)
    sink.add_rows(_rows(5 * CHUNK_ROWS))
    a, b = socket.socketpair()
    ga, gb = gevent.socket.socket(fileno=a.detach()), gevent.socket.socket(fileno=b.detach())
    seen: list[int] = []
    reader = gevent.spawn(lambda: (gb.recv(16), seen.append(sink.rows_written)))
    gevent.sleep(0.01)  # the reader waits on its socket
    ga.send(b"report")
    sink.flush()
    reader.join(timeout=5)
    sink.close()
    ga.close()
    gb.close()
    assert seen and 0 < seen[0] < 5 * CHUNK_ROWS, seen
    assert len(_read(tmp_path / "requests.csv")) == 5 * CHUNK_ROWS


def test_closing_during_the_flushers_flush_loses_and_repeats_nothing(tmp_path: Path) -> None:
    sink = CsvSink(tmp_path / "requests.csv", "run-1", flush_s=0.01)
    n = 10 * CHUNK_ROWS
    sink.add_rows(_rows(n))  # the flusher takes them in 10 chunks, pausing between them
    deadline = time.monotonic() + 10
    while not 0 < sink.rows_written < n and time.monotonic() < deadline:  # the flusher between two chunks
        gevent.sleep(0.0005)
    assert 0 < sink.rows_written < n, "the flusher should be mid-flush"
    sink.add_rows(_rows(5, start=n))  # a last report arrives meanwhile
    sink.close()
    ids = [r["request_id"] for r in _read(tmp_path / "requests.csv")]
    assert ids == [f"req-{i}" for i in range(n + 5)]
    assert sink.rows_written == n + 5
