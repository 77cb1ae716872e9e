"""Where rows end: one CSV writer on the master (or local runner), `<run>/requests.csv`.

Workers ship their buffered rows with each Locust worker report (and the final one on quit),
so one file holds every worker's rows and a dead worker loses at most one report interval.

The writer runs on the master's event loop, which also takes every worker's reports and
heartbeats, so it must be cheap per row and never hold the loop long. `csv.writer` scans every
character for quoting: with 200-gap rows the master spent 27–33 µs per row and a flush of ~10,000
rows held its loop for 0.8–1.9 s (bench/master_ingest.py, bench/README.md § Master ingest). Rows
are now joined in C and scanned once for the four characters that need quoting (the same bytes
`csv.writer` writes; a row that needs quoting takes the careful path): 11–14 µs per row all told,
loop held ≤ ~0.1 s. A flush writes in chunks and pauses between them. A chunk is taken from the pending rows only when it is written, so stopping the flusher
mid-flush leaves the rest pending for the final flush: no row is ever dropped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import gevent
from gevent.lock import BoundedSemaphore

from core.record import COLUMNS

OK_INDEX = COLUMNS.index("ok")
CHUNK_ROWS = 1000  # rows formatted and written between two yields to the loop (~2 ms of work)


def _quoted(field: str) -> str:
    if '"' in field or "," in field or "\n" in field or "\r" in field:
        return '"' + field.replace('"', '""') + '"'
    return field


def csv_lines(rows: list[list[str]]) -> str:
    """`rows` as CSV text, byte for byte what `csv.writer` writes (QUOTE_MINIMAL, `\\r\\n` endings):
    a field is quoted iff it holds `"`, `,`, `\\r` or `\\n`, doubling its quotes."""
    out = []
    for r in rows:
        line = ",".join(r)
        if line.count(",") != len(r) - 1 or '"' in line or "\n" in line or "\r" in line:
            line = ",".join([_quoted(f) for f in r])
        out.append(line)
    out.append("")
    return "\r\n".join(out)


class CsvSink:
    """Appends rows to `<run>/requests.csv`, flushing at least every `flush_s` seconds."""

    def __init__(self, path: Path, run_id: str, flush_s: float = 1.0) -> None:
        self.path = path
        self.run_id = run_id
        self.rows_written = 0
        self.ok_written = 0  # completed requests among them (the span receiver waits for as many spans)
        self._lock = BoundedSemaphore(1)  # cooperative: a flush yields while it holds it
        self._fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        csv.writer(self._fh).writerow(COLUMNS)
        self._fh.flush()
        self._pending: list[list[str]] = []
        self._flusher = gevent.spawn(self._flush_loop, flush_s)

    def add_rows(self, rows: list[list[str]]) -> None:
        self._pending.extend(rows)

    def _flush_loop(self, flush_s: float) -> None:
        while True:
            gevent.sleep(flush_s)
            self.flush()

    def flush(self, yield_s: float | None = 0.001) -> None:
        """Write the rows pending now, `CHUNK_ROWS` at a time, sleeping `yield_s` between chunks
        (None: no pause, for the final flush). A sleep, not `sleep(0)`: a timer makes the loop poll
        its sockets (ZeroMQ's reports and heartbeats), a bare yield may only run ready callbacks."""
        with self._lock:
            todo = len(self._pending)
            while todo > 0 and not self._fh.closed:
                rows = self._pending[:CHUNK_ROWS]
                for r in rows:
                    r[0] = self.run_id
                self._fh.write(csv_lines(rows))
                del self._pending[: len(rows)]
                self.rows_written += len(rows)
                self.ok_written += sum(r[OK_INDEX] == "true" for r in rows)
                todo -= len(rows)
                if todo > 0 and yield_s is not None:
                    gevent.sleep(yield_s)  # reports and heartbeats in between
            if not self._fh.closed:
                self._fh.flush()

    def close(self) -> None:
        self._flusher.kill()  # waits until it is gone; whatever it had not written is still pending
        self.flush(yield_s=None)
        with self._lock:
            self._fh.close()
