"""Rows made in this load process and not yet handed on (workers ship them with each report)."""

from __future__ import annotations


class RowBuffer:
    """Rows made in this process and not yet handed on; `take()` empties it atomically."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.started = 0  # requests begun in this process (rows owed, for loss accounting)

    def add(self, row: list[str]) -> None:
        self.rows.append(row)

    def take(self) -> list[list[str]]:
        rows, self.rows = self.rows, []
        return rows
