"""The contract's rules, each defined once in core/: percentiles, durations, the token rule.

The token rule is used by two parties that never import each other — workloads/ (sizing prompts,
describing datasets) and simserver/ (counting what it serves) — so a test pins them together on
every shipped dataset: the engine's prompt tokens are the workload's count plus its template.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.durations import fmt_duration, parse_duration_s
from core.errors import OptionError, SloError
from core.quantiles import linear, nearest_rank
from core.slo import parse_slo
from core.tokens import count_tokens


def test_percentile_rules_are_named_and_distinct() -> None:
    xs = [float(i) for i in range(1, 11)]
    assert nearest_rank(xs, 0.5) == 5.0  # the classic definition: a value that occurred
    assert linear(xs, 0.5) == 5.5  # numpy's default interpolation
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert linear(xs, q) == pytest.approx(float(np.percentile(xs, q * 100)))
    assert nearest_rank(xs, 0.0) == 1.0 and nearest_rank(xs, 1.0) == 10.0
    assert nearest_rank([float(i) for i in range(1, 101)], 0.29) == 29.0  # no binary-rounding surprise
    assert math.isnan(linear([], 0.5)) and math.isnan(nearest_rank([], 0.5))


def test_one_duration_grammar_everywhere() -> None:
    assert parse_duration_s("2m", "--request-timeout") == 120.0
    assert parse_duration_s("500ms", "x") == 0.5
    assert parse_duration_s("800us", "x") == pytest.approx(0.0008)
    assert parse_duration_s("1.5h", "x") == 5400.0
    assert parse_duration_s("120", "x") == 120.0
    assert parse_duration_s(3, "x") == 3.0
    with pytest.raises(OptionError, match="--step-interval: 'soon' is not a duration"):
        parse_duration_s("soon", "--step-interval")
    # the SLO grammar is the same one (a unit is required there: `ttft=500` would be ambiguous)
    assert parse_slo("e2e=2m").e2e_s == 120.0
    assert parse_slo("ttft=1.5s,tpot=40ms").tpot_s == pytest.approx(0.04)
    with pytest.raises(SloError, match="needs a unit"):
        parse_slo("ttft=500")
    assert fmt_duration(0.5) == "500 ms" and fmt_duration(2) == "2 s"


def test_token_rule() -> None:
    assert count_tokens("Hello, world!") == 4
    assert count_tokens("") == 0
    assert count_tokens("don't stop—now") == 6


@pytest.mark.parametrize("dataset", ["chat", "agentic", "code", "random"])
def test_workload_and_engine_count_the_same_tokens(dataset: str) -> None:
    from simserver.tokenizer import MESSAGE_OVERHEAD, chat_tokens
    from workloads import open_workload
    from workloads.tokens import prompt_tokens

    wl = open_workload(dataset, seed=1)
    for _ in range(20):
        messages, _max_tokens, _conv, _turn = wl.next_request()
        engine = len(chat_tokens(list(messages)))
        overhead = MESSAGE_OVERHEAD * len(messages) + 3  # the template's per-message and final tokens
        calls = sum(
            count_tokens(f" {c['function'].get('name') or ''} {c['function'].get('arguments') or ''}")
            for m in messages
            for c in m.get("tool_calls") or ()
        )
        assert engine == prompt_tokens(messages) + overhead + calls
