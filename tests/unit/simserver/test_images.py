"""Images in the simulated engine's prompts (simserver/images.py): Qwen2-VL's token rule, images in
place in the prompt's tokens, the multimodal cache's LRU; and each route's image form as a client
sends it (the bodies here; tests/e2e/test_simserver_images.py sends them to a running engine)."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

from PIL import Image

from simserver.images import ImageItem, Vision, image_from_bytes, qwen2vl_image_tokens
from simserver.kvcache import block_hashes
from simserver.tokenizer import chat_tokens

MODEL = "sim-llm"  # the default profile's


def jpeg(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG")
    return out.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def data_url(raw: bytes) -> str:
    return "data:image/jpeg;base64," + b64(raw)


# -- each route's form: (path, body with the given image parts or none, the prompt's token count) ----


def chat(url: str | None, as_string: bool = False) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": "What is in this picture?"}]
    if url is not None:
        parts.append({"type": "image_url", "image_url": url if as_string else {"url": url}})
    return {"model": MODEL, "messages": [{"role": "user", "content": parts}], "max_tokens": 2}


def messages(url: str | None) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "What is in this picture?"}]
    if url is not None:
        media, _, data = url[5:].partition(";base64,")
        blocks.insert(0, {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
    return {"model": MODEL, "max_tokens": 2, "messages": [{"role": "user", "content": blocks}]}


def responses(url: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"type": "input_text", "text": "What is in this picture?"}]
    if url is not None:
        parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
    return {"model": MODEL, "max_output_tokens": 2, "input": [{"role": "user", "content": parts}]}


def ollama(url: str | None) -> dict[str, Any]:
    m: dict[str, Any] = {"role": "user", "content": "What is in this picture?"}
    if url is not None:
        m["images"] = [url.partition(",")[2]]
    return {"model": MODEL, "messages": [m], "stream": False, "options": {"num_predict": 2}}


ROUTES: dict[str, tuple[str, Callable[[str | None], dict[str, Any]], Callable[[Any], int]]] = {
    "chat": ("/v1/chat/completions", chat, lambda b: b["usage"]["prompt_tokens"]),
    "messages": (  # Anthropic's input_tokens is the uncached part
        "/v1/messages",
        messages,
        lambda b: b["usage"]["input_tokens"] + b["usage"]["cache_read_input_tokens"],
    ),
    "responses": ("/v1/responses", responses, lambda b: b["usage"]["input_tokens"]),
    "ollama": ("/api/chat", ollama, lambda b: b["prompt_eval_count"]),
}


# -- the rule --------------------------------------------------------------------------------------


def test_the_rule_counts_qwen2_vl_tokens_from_the_header_size() -> None:
    square, wide = image_from_bytes(jpeg(512, 512)), image_from_bytes(jpeg(1000, 300))
    assert (square.width, square.height, square.num_tokens) == (512, 512, 18 * 18 + 2) == (512, 512, 326)
    assert (wide.width, wide.height, wide.num_tokens) == (1000, 300, 36 * 11 + 2)  # 35.7 → 36, 10.7 → 11
    assert qwen2vl_image_tokens(10, 10) == 3  # at least one placeholder, and the two markers
    assert len(square.tokens()) == 326


def test_images_sit_in_place_and_two_images_never_share_a_prefix() -> None:
    a, b = jpeg(512, 512, (250, 0, 0)), jpeg(512, 512, (0, 0, 250))
    images: list[ImageItem] = []
    ta = chat_tokens(chat(data_url(a))["messages"], images)
    tb = chat_tokens(chat(data_url(b))["messages"])
    assert len(ta) == len(chat_tokens(chat(None)["messages"])) + 326 and len(images) == 1
    assert ta == chat_tokens(chat(data_url(a))["messages"])  # deterministic: the same bytes, the same tokens
    first = ta.index("<|vision_start|>")
    assert ta[:first + 1] == tb[:first + 1] and ta[first + 1] != tb[first + 1]  # fmt: skip
    ha, hb = block_hashes(ta, 16), block_hashes(tb, 16)
    split = (first + 1) // 16  # the block holding the first placeholder and every one after differ
    assert ha[:split] == hb[:split] and all(x != y for x, y in zip(ha[split:], hb[split:], strict=True))


# -- vLLM's multimodal cache ---------------------------------------------------------------------


def test_mm_cache_is_an_lru_of_the_configured_size() -> None:
    from simserver.metrics import EngineStats

    vision, stats = Vision(items=2), EngineStats()
    a, b, c = (ImageItem(d, 28, 28) for d in "abc")
    for item in (a, b, a, c, b):  # c evicts b (a was used later), so b misses again
        vision.seen((item,), stats)
    assert (stats.mm_cache_queries, stats.mm_cache_hits) == (5, 1)
