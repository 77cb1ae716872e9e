"""The models a run's requests name (`--models`, a mix class's `model=`), checked before anything runs:
one line for a bad spec, a model the server does not list, or a route that names no model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.errors import OptionError
from core.slo import PROFILES
from loadgen.run.checks import check_models, check_served
from loadgen.run.target import Served
from loadgen.transport.apis import APIS
from workloads.mix import parse_mix

CHAT = PROFILES["chat"]


def test_the_named_models_are_checked_against_the_servers_list() -> None:
    mix = parse_mix("chat:50%:model=c,chat:50%:name=other", CHAT)
    named = check_models(SimpleNamespace(models="a,b"), mix, APIS["chat"])
    assert named == {"a": "--models", "b": "--models", "c": "--mix: class 'chat'"}
    vllm = Served("base", None, ("base", "a", "b"))  # vLLM lists each adapter beside its base model
    with pytest.raises(
        OptionError,
        match=r"^--mix: class 'chat': model 'c' is not served by http://h:1 \(it serves: base, a, b\)$",
    ):
        check_served(named, vllm, "http://h:1", APIS["chat"])
    check_served({"a": "--models"}, vllm, "http://h:1", APIS["chat"])
    check_served({"base:sql": "--models"}, vllm, "http://h:1", APIS["chat"])  # SGLang's BASE:ADAPTER
    with pytest.raises(OptionError, match=r"model 'base:sql' is not served"):  # an Ollama tag is a model
        check_served({"base:sql": "--models"}, vllm, "http://h:1", APIS["ollama"])
    check_served(named, vllm, "http://h:1", APIS["tgi"])  # TGI lists no adapters: the server answers
    check_served(named, Served("m", None), "http://h:1", APIS["chat"])  # a server that lists none
    with pytest.raises(OptionError, match=r"^--models: llama-server's /completion names no model"):
        check_models(SimpleNamespace(models="a,b"), None, APIS["llamacpp"])
    with pytest.raises(OptionError, match=r"^--models: shares sum to"):
        check_models(SimpleNamespace(models="a:10%,b:10%"), None, APIS["chat"])
    assert check_models(SimpleNamespace(models=""), None, APIS["llamacpp"]) == {}
