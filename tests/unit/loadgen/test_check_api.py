"""`--api` checks that do not need a server (loadgen/run/checks.py check_api): a route that cannot keep
generating past the end of sequence says so once when the run asks it to, and only then."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from core.slo import parse_slo
from loadgen.run.checks import check_api


def opts(api: str, ignore_eos: bool = False, shape: str = "steps") -> SimpleNamespace:
    return SimpleNamespace(
        api=api, endpoint="", api_path="", client="raw", ignore_eos=ignore_eos, shape=shape
    )


@pytest.mark.parametrize(("api", "server"), [("tgi", "TGI"), ("ollama", "Ollama"), ("messages", "Anthropic")])
def test_ignore_eos_on_a_route_without_it_is_said(
    caplog: pytest.LogCaptureFixture, api: str, server: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="goodput"):
        check_api(opts(api, ignore_eos=True), parse_slo("chat"))
        check_api(opts(api, shape="trace"), parse_slo("chat"))
    first, second = (r.getMessage() for r in caplog.records)
    assert first.startswith(f"goodput: --ignore-eos cannot be kept on --api {api}: {server}'s route")
    assert second.startswith(f"goodput: a trace's output lengths cannot be kept on --api {api}")


@pytest.mark.parametrize("api", ["chat", "completions", "responses", "sglang", "llamacpp"])
def test_routes_with_the_field_or_runs_without_the_ask_say_nothing(
    caplog: pytest.LogCaptureFixture, api: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="goodput"):
        check_api(opts(api, ignore_eos=True), parse_slo("chat"))
        check_api(opts(api, shape="trace"), parse_slo("chat"))
        check_api(opts("ollama"), parse_slo("chat"))
    assert not caplog.records
