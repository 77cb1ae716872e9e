"""The report's lines about a gateway (analysis/gateway.py), on rows whose truth is known: answers from
two models under one requested name, a snapshot or alias that is not flagged, failed and unmeasured
rows left out, and retried requests counted with their TTFT beside the others'."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.gateway import gateway_warnings, mixed_model_warnings, retry_warnings


def rows(served: list[str], asked: str = "gpt-4o", **cols: list) -> pd.DataFrame:
    n = len(served)
    base = {"model": [asked] * n, "served_model": served, "ok": [True] * n, "ttft_s": [0.1] * n,
            "gateway_attempts": [np.nan] * n}  # fmt: skip
    return pd.DataFrame({**base, **cols})


def test_answers_from_two_models_are_named_most_first() -> None:
    df = rows(["gpt-4o-2024-08-06"] * 7 + ["gpt-4o-mini-2024-07-18"] * 3)
    (line,) = mixed_model_warnings(df, np.ones(10, dtype=bool))
    assert line.endswith("the Models section gives each its own figures"), line
    assert line.startswith(
        "the 10 measured answers to 'gpt-4o' came from 2 models by their own `model`: gpt-4o-2024-08-06 (7), "
        "gpt-4o-mini-2024-07-18 (3) — a gateway's fallback"
    ), line


def test_one_other_name_is_a_snapshot_or_an_alias_not_a_mix() -> None:
    df = rows(["gpt-4o-2024-08-06"] * 5)
    assert mixed_model_warnings(df, np.ones(5, dtype=bool)) == []
    # llama-server names its model its own way: every answer alike is not flagged either
    assert mixed_model_warnings(rows(["gpt-3.5-turbo"] * 4, asked="qwen"), np.ones(4, dtype=bool)) == []


def test_failed_unmeasured_and_unnamed_answers_do_not_count() -> None:
    df = rows(["a", "a", "b", "b", ""], ok=[True, True, False, True, True])
    measured = np.array([True, True, True, False, True])  # the second b fell in the warm-up
    assert mixed_model_warnings(df, measured) == []  # b: failed once, unmeasured once
    measured[3] = True
    (line,) = mixed_model_warnings(df, measured)
    assert "the 3 measured answers" in line and "a (2), b (1)" in line


def test_each_requested_model_is_judged_alone() -> None:
    """Two adapters (--models a,b) each answered under its own name: no mix; one answered by two: one line."""
    df = pd.concat([rows(["a"] * 3, asked="a"), rows(["base"] * 2 + ["b"] * 2, asked="b")], ignore_index=True)
    (line,) = mixed_model_warnings(df, np.ones(len(df), dtype=bool))
    assert "answers to 'b' came from 2 models" in line and "b (2), base (2)" in line  # a tie: name order
    assert "Models section" not in line  # the requests named two models: the section is theirs


def test_more_models_than_shown_are_counted() -> None:
    df = rows(["m1"] * 4 + ["m2"] * 3 + ["m3"] * 2 + ["m4", "m5"])
    (line,) = mixed_model_warnings(df, np.ones(len(df), dtype=bool))
    assert "came from 5 models" in line and "m1 (4), m2 (3), m3 (2) and 2 more" in line


def test_retried_requests_are_counted_with_their_ttft() -> None:
    df = rows(["x"] * 6, ttft_s=[2.0, 3.0, 0.1, 0.2, 0.3, np.nan], gateway_attempts=[1, 2, 0, 0, np.nan, 0])
    (line,) = retry_warnings(df, np.ones(6, dtype=bool))
    assert line == (
        "2 of 6 measured requests (33%) were retried or sent to a fallback inside the gateway (up to 2 extra "
        "attempts, as its headers state): their TTFT holds the failed attempts (median TTFT 2,500 ms against "
        "200 ms for the others)"
    )
    measured = np.array([False, False, True, True, True, True])
    assert retry_warnings(df, measured) == []  # the retried ones fell outside the measurement
    assert gateway_warnings(rows(["x"] * 3), np.ones(3, dtype=bool)) == []  # no gateway said a thing


def test_older_runs_without_the_columns() -> None:
    df = rows(["x"] * 2).drop(columns=["served_model", "gateway_attempts"])
    assert gateway_warnings(df, np.ones(2, dtype=bool)) == []
