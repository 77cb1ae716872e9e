"""Benchmark matrices over servers × configurations × datasets × SLOs, and the leaderboard (`python -m arena`)."""
