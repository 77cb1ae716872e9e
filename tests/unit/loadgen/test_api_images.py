"""Images in a request: each route gets them in its own documented form (chat's `image_url` parts as
they are, Responses' `input_image`, Anthropic's `image` blocks, Ollama's `images`), the row counts
them, and a workload with images is refused at start where the route would send its text alone."""

from __future__ import annotations

import pytest

from core.errors import OptionError
from core.record import COLUMNS, RequestRecord
from loadgen.run.checks import check_images
from loadgen.transport.apis import APIS, Prompt
from workloads.conversation import Conversation, Turn, Workload
from workloads.images import count_images, image_kinds

DATA = "data:image/jpeg;base64,/9j/AAAA"
REMOTE = "https://example.test/cat.png"


def image(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def messages(*urls: str) -> list[dict]:
    return [
        {"role": "system", "content": "You describe pictures."},
        {"role": "user", "content": [{"type": "text", "text": "What is in these?"}, *map(image, urls)]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "And its colour?"},
    ]


def body(api: str, *urls: str) -> dict:
    return APIS[api].build(Prompt("m", messages(*urls), 64))


def test_chat_sends_the_parts_as_they_are() -> None:
    sent = body("chat", DATA, REMOTE)["messages"][1]["content"]
    assert sent == [{"type": "text", "text": "What is in these?"}, image(DATA), image(REMOTE)]


def test_responses_sends_its_own_part_types() -> None:
    sent = body("responses", DATA, REMOTE)["input"]
    assert sent[1]["content"] == [
        {"type": "input_text", "text": "What is in these?"},
        {"type": "input_image", "image_url": DATA, "detail": "auto"},
        {"type": "input_image", "image_url": REMOTE, "detail": "auto"},
    ]
    assert sent[0] == {"role": "system", "content": "You describe pictures."}  # strings pass as they are
    plain = [m for m in messages() if m["content"].__class__ is str]
    assert APIS["responses"].build(Prompt("m", plain, 8))["input"] is plain  # no part lists: sent as they are


def test_messages_sends_anthropic_image_blocks() -> None:
    b = body("messages", DATA, REMOTE)
    assert b["system"] == "You describe pictures."
    assert b["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/AAAA"}},
        {"type": "image", "source": {"type": "url", "url": REMOTE}},
    ]
    only = [{"role": "user", "content": [{"type": "text", "text": ""}, image(DATA)]}]
    blocks = APIS["messages"].build(Prompt("m", only, 8))["messages"][0]["content"]
    assert [b["type"] for b in blocks] == ["image"]  # Anthropic refuses an empty text block


def test_ollama_sends_base64_in_images() -> None:
    sent = body("ollama", DATA, DATA)["messages"][1]
    assert sent["content"] == "What is in these?"
    assert sent["images"] == ["/9j/AAAA", "/9j/AAAA"]
    assert "images" not in body("ollama")["messages"][1]


def test_the_row_counts_every_image_sent() -> None:
    history = [*messages(DATA, DATA), {"role": "user", "content": [image(DATA)]}]
    assert count_images(history) == 3 and count_images(messages()) == 0
    rec = RequestRecord(images=3)
    assert COLUMNS[-1] == "images" and rec.row()[-1] == "3" and RequestRecord().row()[-1] == "0"


def workload(*urls: str) -> Workload:
    turn = Turn(tuple(messages(*urls)[1:2]), 16)
    return Workload("w", "w", "generated", (Conversation("c0", (), (turn,)),))


@pytest.mark.parametrize("api", ["completions", "sglang", "tgi", "llamacpp"])
def test_a_text_route_refuses_a_workload_with_images(api: str) -> None:
    with pytest.raises(OptionError) as e:
        check_images("chat:images=1", workload(DATA), APIS[api])
    assert str(e.value) == (
        f"--dataset chat:images=1: the workload has images and --api {api} ({APIS[api].server}'s route) "
        "takes text only; use --api chat, responses, messages or ollama"
    )


def test_ollama_refuses_remote_images_and_takes_inline_ones() -> None:
    check_images("w", workload(DATA), APIS["ollama"])
    with pytest.raises(OptionError, match="1 images are remote URLs and Ollama's route takes inline"):
        check_images("w", workload(DATA, REMOTE), APIS["ollama"])
    for api in ("chat", "responses", "messages"):
        check_images("w", workload(DATA, REMOTE), APIS[api])
    check_images("w", workload(), APIS["tgi"])  # no images: any route
    assert image_kinds(workload(DATA, REMOTE, REMOTE).conversations) == {"data": 1, "http": 2}
