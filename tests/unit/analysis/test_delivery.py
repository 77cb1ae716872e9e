"""Tokens per chunk on synthetic runs whose truth is known: the report speaks when chunks carry
several tokens (ITL is then per chunk), and not for one per chunk or counts that are chunk counts."""

from __future__ import annotations

from pathlib import Path

from analysis import api
from analysis.delivery import tokens_per_chunk
from core.slo import PROFILES
from tests.support.synthetic import request, stage, write_run


def run_with(path: Path, chunks_per_request: int, source: str = "usage", n: int = 30) -> api.Summary:
    rows = []
    for i in range(n):
        rec = request(0, i * 0.5, 2.0, tokens=20)
        rec.n_chunks, rec.tokens_source = chunks_per_request, source
        rows.append(rec)
    rows.append(request(0, 1.25, 1.0, tokens=20, error="http_500"))  # a failure counts no chunk
    write_run(path, rows, [stage(0, 0.0, 20.0)], shape={"name": "none", "params": {}})
    return api.analyze(api.load_run(path), PROFILES["chat"]).summary


def test_four_tokens_a_chunk_is_said_with_its_counts(tmp_path: Path) -> None:
    s = run_with(tmp_path / "r", chunks_per_request=5)
    (line,) = [w for w in s.warnings if "tokens per chunk" in w]
    assert line.startswith("the server sent 4.0 tokens per chunk on average (600 tokens in 150 chunks)")
    assert "ITL is the gap between chunks" in line


def test_one_token_a_chunk_or_a_chunk_count_says_nothing(tmp_path: Path) -> None:
    assert not [w for w in run_with(tmp_path / "a", 20).warnings if "per chunk" in w]
    assert not [w for w in run_with(tmp_path / "b", 5, source="chunks").warnings if "per chunk" in w]
    s = run_with(tmp_path / "c", 14)  # 20/14 = 1.43: under the line
    assert not [w for w in s.warnings if "per chunk" in w]


def test_the_ratio_is_of_sums_over_completed_server_counted_rows(tmp_path: Path) -> None:
    run_with(tmp_path / "r", 8)
    df = api.load_run(tmp_path / "r").df
    assert tokens_per_chunk(df) == (2.5, 600, 240)


def bursty_run(path: Path, zero_every: int) -> api.Summary:
    """Requests of 20 chunks whose every `zero_every`-th gap is 0 (read with the chunk before)."""
    rows = []
    for i in range(30):
        rec = request(0, i * 0.5, 2.0, tokens=20)
        gap = rec.itl_s[0]
        rec.itl_s = [0.0 if (k + 1) % zero_every == 0 else gap for k in range(19)]
        rows.append(rec)
    write_run(path, rows, [stage(0, 0.0, 20.0)], shape={"name": "none", "params": {}})
    return api.analyze(api.load_run(path), PROFILES["chat"]).summary


def test_chunks_read_together_are_said_with_their_share(tmp_path: Path) -> None:
    s = bursty_run(tmp_path / "a", zero_every=2)  # 9 of every 19 gaps: 270 of 570
    (line,) = [w for w in s.warnings if "gaps between chunks are 0" in w]
    assert line.startswith("47 % of the gaps between chunks are 0 (270 of 570: read together)")
    assert not [w for w in bursty_run(tmp_path / "b", zero_every=20).warnings if "are 0" in w]  # none
    assert not [w for w in bursty_run(tmp_path / "c", zero_every=11).warnings if "are 0" in w]  # 30 of 570
