"""`--header` parsing and resolution (loadgen/transport/headers.py)."""

from __future__ import annotations

import pytest

from core.errors import OptionError
from loadgen.transport.headers import check_set, overlay, parse, resolve, static_headers


def test_names_values_and_variables() -> None:
    got = parse(
        ["X-Api-Key: $GW", "X-Route:blue", "X-Tok: ${TOK}", "X-Lit: a $$b: c $", "Authorization: Bearer $TOK"]
    )
    assert got == [("X-Api-Key", "$GW"), ("X-Route", "blue"), ("X-Tok", "${TOK}"), ("X-Lit", "a $$b: c $"),
                   ("Authorization", "Bearer $TOK")]  # fmt: skip
    env = {"GW": "k1", "TOK": "t2"}
    assert resolve(got, env) == {
        "X-Api-Key": "k1", "X-Route": "blue", "X-Tok": "t2", "X-Lit": "a $b: c $", "Authorization": "Bearer t2",
    }  # fmt: skip
    # a variable unset in this process: its headers are left out, whole or with a scheme before it
    assert resolve(got, {"GW": "k1"}) == {"X-Api-Key": "k1", "X-Route": "blue", "X-Lit": "a $b: c $"}
    check_set(got, env)
    with pytest.raises(OptionError, match=r"X-Tok takes its value from \$TOK, which is not set"):
        check_set(got, {"GW": "k1"})
    with pytest.raises(
        OptionError, match=r"^--header: Authorization takes its value from \$TOK, which is not set"
    ):
        check_set(got[-1:], {})
    assert resolve(parse(["X-Two: ${A}-$B"]), {"A": "1", "B": "2"}) == {"X-Two": "1-2"}
    assert parse(None) == [] and parse([]) == []


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (["no colon"], "is not 'NAME: VALUE'"),
        (["Bad Name: 1"], "is not 'NAME: VALUE'"),
        ([": v"], "is not 'NAME: VALUE'"),
        (["host: h"], "set by the client itself"),
        (["Accept-Encoding: gzip"], "Accept-Encoding is set by the client itself"),
        (["X-A: 1", "x-a: 2"], "x-a is given twice"),
        (["X-Corr: 1"], "carries each request's id"),
    ],
)
def test_mistakes_name_the_header(values: list[str], says: str) -> None:
    with pytest.raises(OptionError, match=says):
        parse(values, id_header="X-Corr")


def test_an_authorization_header_replaces_the_bearer() -> None:
    assert static_headers("sk", {}) == {"Authorization": "Bearer sk"}
    assert static_headers("sk", {"authorization": "Basic x", "X-A": "1"}) == {
        "Authorization": "Basic x",
        "X-A": "1",
    }
    assert static_headers(None, {"X-A": "1"}) == {"X-A": "1"}


def test_another_option_is_named_in_its_mistakes_and_overlay_replaces_whatever_the_case() -> None:
    """`--server-metrics-header` is parsed here too: the same rules, its own name in the line."""
    with pytest.raises(OptionError, match=r"^--server-metrics-header: 'nocolon' is not 'NAME: VALUE'"):
        parse(["nocolon"], option="--server-metrics-header")
    with pytest.raises(OptionError, match=r"^--server-metrics-header: A takes its value from \$V, which"):
        check_set([("A", "$V")], {}, option="--server-metrics-header")
    base = {"Authorization": "Bearer sk", "X-Gw": "1"}
    assert overlay(base, {"authorization": "Bearer t"}) == {"X-Gw": "1", "authorization": "Bearer t"}
    assert overlay(base, {}) == base and overlay({}, {"X-M": "2"}) == {"X-M": "2"}
