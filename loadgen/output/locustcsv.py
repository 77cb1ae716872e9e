"""Locust's own CSV outputs (`locust_stats.csv`, `_stats_history.csv`, `_failures.csv`) in the run folder.

Locust opens its CSV files before any listener runs, so when `--csv` is not given we start
Locust's own writer ourselves with the run folder as prefix.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gevent
from locust import stats


class LocustCsv:
    def __init__(self, environment: Any, prefix: Path) -> None:
        self.writer = stats.StatsCSVFileWriter(environment, stats.PERCENTILES_TO_REPORT, str(prefix), True)
        self.greenlet = gevent.spawn(self.writer.stats_writer)

    def finish(self) -> None:
        """One last write of the final figures, then close."""
        self.greenlet.kill(block=True)
        w = self.writer
        try:
            w.requests_csv_filehandle.seek(0)
            w.requests_csv_writer.writerow(w.requests_csv_columns)
            w._requests_data_rows(w.requests_csv_writer)
            w.requests_csv_filehandle.truncate()
            w._stats_history_data_rows(w.stats_history_csv_writer, time.time())
            w.failures_csv_filehandle.seek(0)
            w.failures_csv_writer.writerow(w.failures_columns)
            w._failures_data_rows(w.failures_csv_writer)
            w.failures_csv_filehandle.truncate()
        except (AttributeError, ValueError):
            pass  # a Locust version with other internals: the periodic write stands
        w.close_files()


def start_locust_csv(environment: Any, prefix: Path) -> LocustCsv:
    return LocustCsv(environment, prefix)
