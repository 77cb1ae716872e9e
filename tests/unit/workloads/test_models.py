"""`--models` and a mix class's `model=`: the grammar, its one-line errors, the per-conversation draw,
and where each API names the model (an adapter apart from the model on SGLang's and TGI's routes)."""

from __future__ import annotations

import collections
from dataclasses import replace
from pathlib import Path

import pytest

from core.slo import PROFILES
from loadgen.transport.apis import APIS, Prompt
from workloads.mix import MixError, parse_mix
from workloads.models import ModelsError, parse_models

CHAT = PROFILES["chat"]


def test_equal_shares_by_default_and_names_with_colons() -> None:
    m = parse_models("a, b ,llama3:8b")
    assert m is not None and m.names == ("a", "b", "llama3:8b")
    assert m.shares_pct == pytest.approx((100 / 3,) * 3)
    assert parse_models("  ") is None
    assert parse_models("a:70%,b:30%").to_dict() == {"spec": "a:70%,b:30%", "models": {"a": 70.0, "b": 30.0}}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a,a", "'a' is named twice"),
        ("a:50%,b", "give every model a share or none"),
        ("a:50%,b:40%", "shares sum to 90 % (50 + 40); they must sum to 100 %"),
        ("a:0%,b:100%", "every share must be more than 0 %"),
        ("a,,b", "'' is not a model name"),
        ("a b", "'a b' is not a model name"),
    ],
)
def test_bad_models_is_one_line(text: str, says: str) -> None:
    with pytest.raises(ModelsError) as e:
        parse_models(text)
    assert str(e.value).startswith("--models: ") and says in str(e.value) and "\n" not in str(e.value)


def test_the_draw_is_per_conversation_stable_and_follows_the_shares() -> None:
    m = parse_models("a:70%,b:20%,c:10%")
    assert m is not None
    draws = [m.pick("1", f"conv-{i}") for i in range(20_000)]
    # the same conversation names the same model, whatever else was drawn before it
    assert [m.pick("1", f"conv-{i}") for i in reversed(range(100))] == draws[:100][::-1]
    counts = collections.Counter(draws)
    for name, pct in zip(m.names, m.shares_pct, strict=True):  # binomial: 4 sigma is < 1.3 points here
        assert counts[name] / len(draws) == pytest.approx(pct / 100, abs=0.013)
    other_seed = [m.pick("2", f"conv-{i}") for i in range(200)]
    assert other_seed != draws[:200]  # the seed changes the draw: a run's --seed picks another split


def test_a_mix_class_names_its_model_inline_and_in_yaml(tmp_path: Path) -> None:
    m = parse_mix("chat:50%:model=sql-lora,chat:50%:name=base", CHAT)
    assert [(c.name, c.model) for c in m.classes] == [("chat", "sql-lora"), ("base", "")]
    assert m.to_dict()["classes"][0]["model"] == "sql-lora" and "model" not in m.to_dict()["classes"][1]
    f = tmp_path / "mix.yaml"
    f.write_text("classes:\n  - {dataset: chat, share: 60%, model: a}\n  - {dataset: random, share: 40%}\n")
    assert [c.model for c in parse_mix(str(f), CHAT).classes] == ["a", ""]
    with pytest.raises(MixError, match=r"expected slo=SLO, name=NAME or model=MODEL after the share"):
        parse_mix("chat:100%:adapter=a", CHAT)
    with pytest.raises(MixError, match=r"model '' — expected one model name"):
        parse_mix("chat:100%:model=", CHAT)


MESSAGES = [{"role": "user", "content": "Hi"}]


def test_each_api_names_the_model_where_it_takes_one() -> None:
    base = Prompt("base", MESSAGES, 8)
    lora = replace(base, adapter="sql-lora")
    for name in ("chat", "completions", "responses", "messages", "ollama"):
        assert APIS[name].build(base)["model"] == "base"
        assert APIS[name].build(lora)["model"] == "sql-lora", name
    assert (
        "lora_path" not in APIS["sglang"].build(base)
        and APIS["sglang"].build(lora)["lora_path"] == "sql-lora"
    )
    assert "adapter_id" not in APIS["tgi"].build(base)["parameters"]
    assert APIS["tgi"].build(lora)["parameters"]["adapter_id"] == "sql-lora"
