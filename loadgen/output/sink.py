"""Where rows end: one CSV writer on the master (or local runner), `<run>/requests.csv`.

Workers ship their buffered rows with each Locust worker report (and the final one on quit),
so one file holds every worker's rows and a dead worker loses at most one report interval.
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import gevent

from core.record import COLUMNS

OK_INDEX = COLUMNS.index("ok")


class CsvSink:
    """Appends rows to `<run>/requests.csv`, flushing at least every `flush_s` seconds."""

    def __init__(self, path: Path, run_id: str, flush_s: float = 1.0) -> None:
        self.path = path
        self.run_id = run_id
        self.rows_written = 0
        self.ok_written = 0  # completed requests among them (the span receiver waits for as many spans)
        self._lock = threading.Lock()
        self._fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - lives as long as the run
        self._w = csv.writer(self._fh)
        self._w.writerow(COLUMNS)
        self._fh.flush()
        self._pending: list[list[str]] = []
        self._flusher = gevent.spawn(self._flush_loop, flush_s)

    def add_rows(self, rows: list[list[str]]) -> None:
        self._pending.extend(rows)

    def _flush_loop(self, flush_s: float) -> None:
        while True:
            gevent.sleep(flush_s)
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._fh.closed or not self._pending:
                return
            rows, self._pending = self._pending, []
            for r in rows:
                r[0] = self.run_id
            self._w.writerows(rows)
            self._fh.flush()
            self.rows_written += len(rows)
            self.ok_written += sum(r[OK_INDEX] == "true" for r in rows)

    def close(self) -> None:
        self.flush()
        self._flusher.kill(block=False)
        with self._lock:
            self._fh.close()
