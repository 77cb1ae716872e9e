"""Images in workloads: the `images=N,image_size=WxH,image_format=` options of any set (workloads/gen/pictures.py),
where the pictures go, that they are unique, deterministic and of the exact size asked, that a batch file's own
image parts load as they are, and what `stats` and `show` say about them. Small pictures keep it fast."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT
from workloads import WorkloadError, load_workload, registry
from workloads.__main__ import abbreviate_url, main
from workloads.conversation import Conversation, Turn, Workload, request_messages, retagged
from workloads.gen.pictures import image_stats, picture, with_images
from workloads.images import count_images, image_urls, split_data_url
from workloads.tokens import content_text

SMALL = "image_size=48x32"


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load generates anew: the determinism tests compare two generations, not one cached set."""
    monkeypatch.setattr(registry, "_CACHE", {})


def all_urls(w: Workload) -> list[str]:
    return [
        u for c in w.conversations for t in c.turns for m in t.messages for u in image_urls(m.get("content"))
    ]


def decoded(url: str) -> Image.Image:
    parsed = split_data_url(url)
    assert parsed is not None
    return Image.open(io.BytesIO(base64.b64decode(parsed[1])))


def one_line_error(spec: str) -> str:
    with pytest.raises(WorkloadError) as e:
        load_workload(spec)
    assert "\n" not in str(e.value)
    return str(e.value)


# -- options -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("chat:n=2,images=17", "images=17 must be between 0 and 16"),
        ("chat:n=2,images=two", "images=two is not a whole number"),
        ("chat:n=2,images=1,image_size=8x8", "image_size=8x8: expected WxH with each side 16..4096"),
        ("chat:n=2,images=1,image_size=512", "image_size=512: expected WxH"),
        ("chat:n=2,images=1,image_size=5000x512", "each side 16..4096"),
        ("chat:n=2,images=1,image_format=gif", "image_format=gif is not one of jpeg, png"),
        ("chat:n=2,image_size=64x64", "image_size=64x64 needs images=N"),
        ("chat:n=2,images=0,image_format=png", "image_format=png needs images=N"),
    ],
)
def test_bad_image_options_are_one_line(spec: str, says: str) -> None:
    assert says in one_line_error(spec)


def test_options_work_on_every_kind_of_set_and_change_the_fingerprint(tmp_path: Path) -> None:
    plain = load_workload("chat:n=3")
    prints = {
        plain.fingerprint,
        *(
            load_workload(f"chat:n=3,{o}").fingerprint
            for o in ("images=1,image_size=32x32", "images=2,image_size=32x32", "images=1,image_size=32x16")
        ),
        load_workload("chat:n=3,images=1,image_size=32x32,image_format=png").fingerprint,
    }
    assert len(prints) == 5
    assert load_workload("chat:n=3,images=0").fingerprint == plain.fingerprint
    shipped = load_workload(f"chat:images=1,{SMALL}")  # the shipped file, images added in memory
    assert shipped.requests == 300 and shipped.source.endswith("chat.jsonl")
    path = tmp_path / "b.jsonl"
    path.write_text(
        json.dumps({"custom_id": "a", "body": {"messages": [{"role": "user", "content": "hi"}]}}) + "\n"
    )
    assert len(all_urls(load_workload(f"{path}?images=2&{SMALL}"))) == 2


# -- the pictures ------------------------------------------------------------------------------------------
def test_default_is_one_512x512_jpeg_per_request() -> None:
    w = load_workload("chat:n=2,images=1")
    urls = all_urls(w)
    assert len(urls) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    img = decoded(urls[0])
    assert img.format == "JPEG" and img.size == (512, 512)
    assert (
        10_000 < len(base64.b64decode(split_data_url(urls[0])[1])) < 150_000
    )  # a photo's bytes, not noise's


@pytest.mark.parametrize(("fmt", "pil"), [("jpeg", "JPEG"), ("png", "PNG")])
def test_exact_size_and_format(fmt: str, pil: str) -> None:
    urls = all_urls(load_workload(f"chat:n=2,images=1,image_size=100x37,image_format={fmt}"))
    assert all(u.startswith(f"data:image/{fmt};base64,") for u in urls)
    assert {(decoded(u).format, decoded(u).size) for u in urls} == {(pil, (100, 37))}


def test_several_sizes_are_drawn_evenly_per_picture() -> None:
    urls = all_urls(load_workload("chat:n=60,images=1,image_size=64x64|100x37|48x96"))
    sizes = [decoded(u).size for u in urls]
    assert {x: sizes.count(x) >= 10 for x in ((64, 64), (100, 37), (48, 96))} == dict.fromkeys(
        ((64, 64), (100, 37), (48, 96)), True
    )  # each of the three, about a third of 60
    assert "image_size=8x8: expected WxH" in one_line_error("chat:n=2,images=1,image_size=64x64|8x8")


def test_deterministic_and_unique() -> None:
    spec = f"chat:n=5,images=2,{SMALL}"
    first = all_urls(load_workload(spec))
    registry._CACHE.clear()
    assert all_urls(load_workload(spec)) == first  # the same spec, the same bytes
    assert len(set(first)) == 10  # no server-side image cache hit across requests
    assert not set(first) & set(all_urls(load_workload("chat:n=5,images=2,image_size=48x33")))
    assert picture(b"x", 20, 20) == picture(b"x", 20, 20) != picture(b"y", 20, 20)
    other = all_urls(load_workload(f"{spec},image_seed=3"))  # another seed: other pictures, the same text
    assert len(other) == 10 and not set(other) & set(first)


# -- where they go -----------------------------------------------------------------------------------------
def test_every_single_turn_request_carries_n_after_its_text() -> None:
    plain = load_workload("chat:n=5")
    w = load_workload(f"chat:n=5,images=2,{SMALL}")
    for c, p in zip(w.conversations, plain.conversations, strict=True):
        assert c.prefix == p.prefix and not count_images(c.prefix)
        assert count_images(request_messages(c, 0)) == 2
        content = c.turns[0].messages[0]["content"]
        assert content[0] == {"type": "text", "text": p.turns[0].messages[0]["content"]}
        assert [part["type"] for part in content[1:]] == ["image_url", "image_url"]
        assert content_text(content) == p.turns[0].messages[0]["content"]  # token estimates: text only
    assert isinstance(plain.conversations[0].turns[0].messages[0]["content"], str)  # nothing mutated


def test_agentic_sessions_get_theirs_with_the_task_not_with_tool_results() -> None:
    w = load_workload(f"agentic:sessions=2,images=1,{SMALL}")
    for c in w.conversations:
        assert not count_images(c.prefix)
        assert count_images(c.turns[0].messages) == 1
        assert all(count_images(t.messages) == 0 for t in c.turns[1:])  # <tool_result> blocks stay text
        assert [count_images(request_messages(c, t)) for t in range(len(c.turns))] == [1] * len(c.turns)


def test_turn_placement_on_a_hand_made_set() -> None:
    tool_turn = Turn(({"role": "tool", "tool_call_id": "1", "content": "ok"},), 8)
    listed = {"role": "user", "content": [{"type": "text", "text": "look"}]}
    mixed = Turn(
        (
            {"role": "tool", "content": "r"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
        ),
        8,
    )
    conv = Conversation("s", ({"role": "system", "content": "sys"},), (Turn((listed,), 8), tool_turn, mixed))
    w = with_images(Workload("t", "t", "mem", (conv,), fingerprint="f"), 1, ((16, 16),))
    turns = w.conversations[0].turns
    assert [part["type"] for part in turns[0].messages[0]["content"]] == ["text", "image_url"]
    assert turns[1] is tool_turn
    assert [count_images((m,)) for m in turns[2].messages] == [0, 1, 0]
    assert listed["content"] == [{"type": "text", "text": "look"}]  # the shared dict is untouched
    assert w.fingerprint != "f"
    again = retagged(w.conversations[0], 1, 0)  # a later pass keeps the images, tagged before them
    assert (
        count_images(again.turns[0].messages) == 1
        and again.turns[0].messages[0]["content"][0]["text"] == "[1.0]"
    )


def test_batch_file_image_parts_load_as_they_are(tmp_path: Path) -> None:
    parts = [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    line = {"custom_id": "v1", "body": {"messages": [{"role": "user", "content": parts}], "max_tokens": 32}}
    path = tmp_path / "vision.jsonl"
    path.write_text(json.dumps(line) + "\n")
    w = load_workload(str(path))
    assert w.conversations[0].turns[0].messages[0]["content"] == parts
    assert count_images(request_messages(w.conversations[0], 0)) == 2
    more = load_workload(f"{path}?images=1&{SMALL}")  # generated ones are appended after the file's own
    content = more.conversations[0].turns[0].messages[0]["content"]
    assert content[:3] == parts and len(content) == 4
    st = image_stats(w)
    assert st["distinct"] == 2 and st["remote"] == 1 and st["media_types"] == {"image/png": 1}


# -- stats and show ----------------------------------------------------------------------------------------
def test_stats_reports_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", f"chat:n=3,images=2,{SMALL}"]) == 0
    out = capsys.readouterr().out
    assert "2 per request" in out and "48x32 (6)" in out and "image/jpeg" in out and "text only" in out
    assert main(["stats", f"chat:n=3,images=2,{SMALL}", "--json"]) == 0
    im = json.loads(capsys.readouterr().out)["images"]
    assert im["per_request"] == {"min": 2, "p50": 2, "max": 2, "mean": 2}
    assert im["sizes"] == {"48x32": 6} and im["distinct"] == 6 and im["mean_bytes"] > 0
    assert main(["stats", "chat:n=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] is None


def test_show_abbreviates_data_urls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "chat:n=1,images=1,image_size=256x256", "--full"]) == 0
    out = capsys.readouterr().out
    assert "[image data:image/jpeg;base64,<" in out and " KB>]" in out and len(out) < 2000
    assert abbreviate_url("data:image/png;base64,AAAA") == "data:image/png;base64,<3 B>"
    assert abbreviate_url("https://example.com/a.png") == "https://example.com/a.png"


def test_the_load_path_does_not_import_pillow() -> None:
    code = "import sys, workloads, workloads.images, workloads.registry; print('PIL' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
