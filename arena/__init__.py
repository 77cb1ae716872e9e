"""Benchmark matrices over servers × configurations × datasets × SLOs, and the leaderboard (`python -m arena`).

`matrix.py` (+ `places.py`, `targets.py`) reads and checks a matrix; `runner.py` (+ `procs.py`)
runs its cells (server, Locust, `python -m analysis`) resumably; `tables.py` analyzes the runs
through `analysis.api` (the only part of analysis/ the arena uses) and composes the comparison;
`store.py` keeps the leaderboard's entries, `board.py` ranks and renders them.
"""
