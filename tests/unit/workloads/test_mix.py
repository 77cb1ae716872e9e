"""`--mix`: the grammar (inline and YAML), its one-line errors, and how users and arrivals are split."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from locust import User, constant
from locust.dispatch import UsersDispatcher
from locust.runners import WorkerNode

from core.slo import PROFILES
from workloads.mix import Mix, MixError, TenantClass, arrival_classes, class_at, parse_mix, user_order

CHAT = PROFILES["chat"]
EXAMPLE = "chat:70%:slo=chat,agentic:20%:slo=mlperf-interactive,random:10%:slo=datagen"


def mix_of(*shares: float) -> Mix:
    names = ["chat", "agentic", "random", "code", "other"]
    return Mix(tuple(TenantClass(names[i], names[i], s, CHAT) for i, s in enumerate(shares)), "test")


def test_inline_example() -> None:
    m = parse_mix(EXAMPLE, CHAT)
    assert [(c.name, c.dataset, c.share_pct, c.slo.name) for c in m.classes] == [
        ("chat", "chat", 70.0, "chat"),
        ("agentic", "agentic", 20.0, "mlperf-interactive"),
        ("random", "random", 10.0, "datagen"),
    ]
    assert m.label == "chat 70% + agentic 20% + random 10%"
    assert m.to_dict()["classes"][2]["slo"]["tpot_s"] == pytest.approx(0.035)


def test_inline_dataset_options_with_commas_default_slo_and_names() -> None:
    m = parse_mix(
        "random:input=uniform(64,128),output=uniform(8,16):25%:name=short,random:n=20:75%",
        PROFILES["datagen"],
    )
    assert [c.name for c in m.classes] == ["short", "random"]
    assert m.classes[0].dataset == "random:input=uniform(64,128),output=uniform(8,16)"
    assert m.classes[1].dataset == "random:n=20" and m.classes[1].slo.name == "datagen"  # the run's --slo


def test_yaml_form_takes_any_slo(tmp_path: Path) -> None:
    f = tmp_path / "mix.yaml"
    f.write_text(
        "classes:\n"
        "  - {dataset: chat, share: 60%, slo: chat}\n"
        "  - {name: agents, dataset: agentic, share: 30, slo: 'ttft=2s,tpot=100ms'}\n"
        "  - {dataset: random, share: 10%, slo: {tpot: 35ms, attain: 95%}}\n"
    )
    m = parse_mix(str(f), CHAT)
    assert m.names == ["chat", "agents", "random"] and m.classes[1].share_pct == 30.0
    assert (m.classes[1].slo.ttft_s, m.classes[1].slo.tpot_s) == (2.0, pytest.approx(0.1))
    assert m.classes[2].slo.tpot_s == pytest.approx(0.035) and m.classes[2].slo.attain_target == 0.95


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("chat:70%,agentic:20%", "shares sum to 90 % (70 + 20); they must sum to 100 %"),
        ("chat:70%,nosuch:30%", "class 'nosuch': unknown dataset 'nosuch'"),
        ("chat:70%:slo=nosuch,random:30%", "unknown profile 'nosuch'"),
        ("chat:70%,chat:30%", "two classes are named 'chat'; give one of them name=NAME"),
        ("chat:70%,random", "'random' has no share"),
        ("chat:70%:speed=9,random:30%", "'speed=9' — expected slo=SLO, name=NAME or model=MODEL"),
        ("chat:0%,random:100%", "share 0% must be more than 0 %"),
        ("chat:70%:name=a b,random:30%", "name 'a b'"),
        ("", "--mix: empty"),
    ],
)
def test_bad_mix_is_one_line(spec: str, message: str) -> None:
    with pytest.raises(MixError) as e:
        parse_mix(spec, CHAT)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_bad_yaml_mix(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text("classes:\n  - {dataset: chat, share: 100%, weight: 3}\n")
    with pytest.raises(MixError, match=r"classes\[0\]: unknown key\(s\) weight"):
        parse_mix(str(f), CHAT)
    with pytest.raises(MixError, match="not found"):
        parse_mix(str(tmp_path / "none.yaml"), CHAT)


def test_user_order_70_20_10() -> None:
    m = mix_of(70, 20, 10)
    first = list(itertools.islice(user_order(m), 10))
    assert first == ["chat", "chat", "agentic", "chat", "random", "chat", "chat", "agentic", "chat", "chat"]
    assert m.user_counts(10) == {"chat": 7, "agentic": 2, "random": 1}
    assert class_at(m, 4) == "random"


@pytest.mark.parametrize("shares", [(70, 20, 10), (50, 50), (33.3, 33.3, 33.4), (90, 10), (60, 25, 15)])
def test_every_user_count_is_within_one_user_of_the_shares(shares: tuple[float, ...]) -> None:
    m = mix_of(*shares)
    for n in range(1, 301):
        counts = m.user_counts(n)
        for c in m.classes:
            assert abs(counts[c.name] - c.share_pct / 100 * n) < 1.0, (n, counts)


def _tenant_user(name: str, weight: float) -> type:
    return type(
        f"{name} (ChatUser)", (User,), {"weight": weight, "wait_time": constant(0), "abstract": False}
    )


@pytest.mark.parametrize("shares", [(70, 20, 10), (50, 50), (33.3, 33.3, 33.4), (25, 25, 25, 25)])
def test_locusts_dispatcher_spawns_users_in_this_order(shares: tuple[float, ...]) -> None:
    """The closed-loop split is Locust's own (one weighted user class per tenant, named `<tenant> (Base)`):
    its dispatcher, given +1 user at a time as a ramp does, hands out users in `user_order`."""
    m = mix_of(*shares)
    classes = [_tenant_user(c.name, c.share_pct) for c in m.classes]
    worker = WorkerNode("w1")
    d = UsersDispatcher(worker_nodes=[worker], user_classes=classes)
    previous = dict.fromkeys(m.names, 0)
    order = user_order(m)
    for n in range(1, 41):
        d.new_dispatch(target_user_count=n, spawn_rate=1000.0)
        d._wait_between_dispatch = 0  # no pacing in a unit test
        counts = list(d)[-1]["w1"]
        now = {name.split(" ")[0]: k for name, k in counts.items()}
        added = [k for k in m.names if now[k] == previous[k] + 1]
        assert added == [next(order)], (n, now)
        previous = now


def test_arrival_classes_follow_the_shares_and_split_across_workers() -> None:
    m = mix_of(70, 20, 10)
    draws = list(itertools.islice(arrival_classes(m, "s:0"), 20000))
    for c in m.classes:
        assert draws.count(c.name) / len(draws) == pytest.approx(c.share_pct / 100, abs=0.01)
    assert list(itertools.islice(arrival_classes(m, "s:0"), 50)) == draws[:50]  # seeded
    assert list(itertools.islice(arrival_classes(m, "s:1"), 50)) != draws[:50]
    w0 = list(itertools.islice(arrival_classes(m, "s:0", 0, 3), 100))
    w2 = list(itertools.islice(arrival_classes(m, "s:0", 2, 3), 100))
    assert w0 == draws[0:300:3] and w2 == draws[2:302:3]  # worker slices of the one global stream


def test_one_class_alone_keeps_its_dataset_and_slo_at_100_percent() -> None:
    m = parse_mix(EXAMPLE, CHAT, alone="agentic")
    assert [(c.name, c.dataset, c.share_pct, c.slo.name) for c in m.classes] == [
        ("agentic", "agentic", 100.0, "mlperf-interactive")
    ]
    assert m.spec.endswith("(alone: agentic)") and m.user_counts(3) == {"agentic": 3}
    with pytest.raises(MixError, match="--mix-alone: 'nosuch' is not a class of the mix"):
        parse_mix(EXAMPLE, CHAT, alone="nosuch")
