"""The report on a workload too long for the server's context (analysis/load.py `_fit_warnings`):
the pre-run check's counts from run.json, with the rows refused and the answers cut at the context,
on synthetic runs whose truth is known."""

from __future__ import annotations

from pathlib import Path

from analysis import api
from core.slo import PROFILES
from tests.support.synthetic import request, stage, write_run


def warnings_of(path: Path, over: int, context: int = 120) -> list[str]:
    """12 requests of 100 prompt tokens: 8 of 10 output tokens (110: fit), 2 of 20 that stopped at the
    context (120 ≥ 120), 2 refused; and one of 30 tokens stopped by its own cap, not the context
    (finish_reason stop, 130)."""
    rows = [request(0, i * 0.5, 1.0, tokens=10) for i in range(8)]
    rows += [request(0, 4 + i * 0.5, 1.0, tokens=20) for i in range(2)]
    rows += [request(0, 5 + i * 0.5, 0.01, tokens=20, error="http_400") for i in range(2)]
    stopped = request(0, 6.5, 1.0, tokens=30)
    stopped.finish_reason = "stop"
    for r in rows:
        if r.error:
            r.ok, r.output_tokens, r.prompt_tokens, r.finish_reason = False, None, None, ""
    fit = {"context_tokens": context, "source": "max_model_len in /v1/models",
           "datasets": [{"dataset": "random", "requests": 40, "over": over}]}  # fmt: skip
    write_run(
        path, [*rows, stopped], [stage(0, 0.0, 10.0)], shape={"name": "none", "params": {}}, context_fit=fit
    )
    return [w for w in api.analyze(api.load_run(path), PROFILES["chat"]).summary.warnings if "context" in w]


def test_the_check_said_some_would_not_fit_and_the_rows_show_how(tmp_path: Path) -> None:
    (line,) = warnings_of(tmp_path / "r", over=6)
    assert line.startswith("6 of 40 requests of random were too long for the server's context of 120 tokens")
    assert (
        "(2 rows failed with http_400)" in line
        and "(2 answers stopped where prompt and output filled" in line
    )


def test_answers_cut_at_the_context_are_said_even_when_the_check_saw_none(tmp_path: Path) -> None:
    """Multi-turn history grows with the live replies: the check cannot see every request's length."""
    (line,) = warnings_of(tmp_path / "r", over=0)
    assert line.startswith(
        "2 answers stopped where prompt and output filled the server's context of 120 tokens"
    )


def test_nothing_said_when_all_fit_and_nothing_was_cut(tmp_path: Path) -> None:
    assert warnings_of(tmp_path / "r", over=0, context=4096) == []
