"""Images in a prompt, taken as a vLLM serving a Qwen2-VL-like model takes them.

Why here, apart from the tokenizer: an image is not text. Its size — read from its header only
(Pillow opens lazily), never decoded — fixes how many prompt tokens it costs (`qwen2vl_image_tokens`),
and a hash of its bytes names it, so the prefix cache sees each image as one deterministic run of
tokens: a conversation that re-sends an image in its history hits the cache on it, and two different
images never share a prefix past the vision start marker (vLLM gets the same from the image's hash in
its block hashes). The engine fetches nothing (it serves loopback only): an image comes as a base64
`data:` URL, or the request is a 400.

Every route that takes images reshapes its own form into an OpenAI chat part, `{"type": "image_url",
"image_url": {"url": URL}}` (or the URL as a plain string), which the tokenizer reads in place:
chat's parts as they are, the Responses API's `input_image`, Anthropic's `image` blocks (a `base64` or
`url` source) and Ollama's `images` (base64 without a data URL's head).

`Vision` holds what the served model takes: `--text-only` refuses any image with vLLM's words, and an
LRU of image hashes counts vLLM's `vllm:mm_cache_queries` and `vllm:mm_cache_hits` as vLLM's processor
cache counts them (each image item of each request is a query; one already in the LRU is a hit).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from simserver.metrics import EngineStats

PATCH = 28  # Qwen2-VL: 14-pixel patches merged 2×2 into one token
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PART = "image_url"  # the chat part every route's image becomes
IMAGE_TYPES = ("image_url", "input_image", "image")  # chat, Responses, Anthropic
DEFAULT_MM_CACHE_ITEMS = 256


def qwen2vl_image_tokens(width: int, height: int) -> int:
    """Qwen2-VL's rule, the simulated engine's: the prompt tokens of a width × height image.

    Qwen2-VL resizes an image to multiples of 28 pixels and gives each 28×28 square one placeholder
    token (14-pixel patches, merged 2×2), then wraps them in vision start and end markers:
    max(1, round(w/28)) · max(1, round(h/28)) + 2. A 512×512 image is 18·18 + 2 = 326 tokens. The
    model's own pixel bounds (min_pixels / max_pixels) are not modelled: a huge image costs its size.
    """
    return max(1, round(width / PATCH)) * max(1, round(height / PATCH)) + 2


@dataclass(frozen=True, slots=True)
class ImageItem:
    """One image of a request: the hash of its bytes and its size."""

    digest: str
    width: int
    height: int

    @property
    def num_tokens(self) -> int:
        return qwen2vl_image_tokens(self.width, self.height)

    def tokens(self) -> list[str]:
        """The image as prompt tokens: the markers around placeholders that carry its hash."""
        pad = f"<|image_pad:{self.digest}|>"
        return [VISION_START, *[pad] * (self.num_tokens - 2), VISION_END]


def image_from_bytes(raw: bytes) -> ImageItem:
    """An image's size from its header (Pillow reads no pixels to answer) and the hash of its bytes."""
    try:
        with Image.open(io.BytesIO(raw)) as im:
            width, height = im.size
    except Image.UnidentifiedImageError:
        raise ValueError(
            "Failed to load image: the data is not an image (no JPEG, PNG, GIF, WebP… header)"
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"Failed to load image: {e}") from None
    return ImageItem(hashlib.blake2b(raw, digest_size=12).hexdigest(), width, height)


@functools.lru_cache(maxsize=64)
def image_from_base64(data: str) -> ImageItem:
    """Decoded, measured and hashed once while recent: a conversation re-sends its images every turn, and
    a 512×512 photo's ~50-300 kB of base64 costs 0.1-0.5 ms to decode and hash, the lookup a tenth."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"Failed to load image: the data is not valid base64 ({e})") from None
    return image_from_bytes(raw)


def image_from_url(url: Any) -> ImageItem:
    """A `data:MEDIA;base64,DATA` URL's image; any other URL is refused (the engine fetches nothing)."""
    if not isinstance(url, str) or not url:
        raise ValueError("an image part needs its URL (a data:image/...;base64,... URL)")
    if not url.startswith("data:"):
        raise ValueError(
            "the simulated engine takes images only as data URLs (data:image/...;base64,...): "
            f"it fetches nothing, so {url[:64]!r} cannot be read"
        )
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise ValueError("only base64 data URLs are supported (data:image/...;base64,...)")
    return image_from_base64(data)


def image_of_part(part: dict[str, Any]) -> ImageItem:
    """The image of a chat `image_url` part: `{"url": URL}`, or the URL as a plain string."""
    ref = part.get("image_url")
    return image_from_url(ref.get("url") if isinstance(ref, dict) else ref)


def url_part(url: Any) -> dict[str, Any]:
    """A chat image part for a URL (how the other routes hand their images to the tokenizer)."""
    return {"type": IMAGE_PART, "image_url": {"url": url}}


def base64_part(data: Any, media_type: Any = "image/*") -> dict[str, Any]:
    """A chat image part for bare base64 data (Anthropic's `base64` source, Ollama's `images`)."""
    if not isinstance(data, str) or not data:
        raise ValueError("an image's data must be a non-empty base64 string")
    return url_part(f"data:{media_type or 'image/*'};base64,{data}")


def anthropic_part(block: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic `image` block's source — `base64` (media_type, data) or `url` — as a chat part."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise ValueError("an image block needs a `source` object (base64 or url)")
    kind = source.get("type")
    if kind == "base64":
        return base64_part(source.get("data"), source.get("media_type"))
    if kind == "url":
        return url_part(source.get("url"))
    raise ValueError(f"an image block's source must be base64 or url, got {kind!r}")


def has_images(body: dict[str, Any]) -> bool:
    """Whether a request's messages (chat, Anthropic, Ollama) or `input` (Responses) hold an image."""
    for key in ("messages", "input"):
        items = body.get(key)
        if isinstance(items, list):
            for m in items:
                if isinstance(m, dict) and (m.get("images") or _holds_image(m.get("content"))):
                    return True
    return False


def _holds_image(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    for p in content:
        if isinstance(p, dict) and (p.get("type") in IMAGE_TYPES or _holds_image(p.get("content"))):
            return True  # an Anthropic tool_result's blocks may hold images too
    return False


class Vision:
    """What the served model takes: images or not (`--text-only`), and vLLM's multimodal cache count.

    The cache is an LRU of image hashes, `items` long (0: none, and the counters stay 0, as vLLM's
    with --mm-processor-cache-gb 0): a request's image already there is a hit and moves to the end.
    """

    def __init__(self, text_only: bool = False, items: int = DEFAULT_MM_CACHE_ITEMS) -> None:
        self.text_only, self.items = text_only, items
        self.lru: OrderedDict[str, None] = OrderedDict()

    def refusal(self, body: dict[str, Any], model: str) -> str | None:
        """A text-only model's refusal of a request with an image, before any is read, in vLLM's words
        (vllm/multimodal/registry.py, asked for the processor of a model that is not multimodal: 400)."""
        if self.text_only and has_images(body):
            return f"{model} is not a multimodal model"
        return None

    def seen(self, images: tuple[ImageItem, ...], stats: EngineStats) -> None:
        """Count a request's images against the cache: every item a query, one already cached a hit."""
        if not images or self.items <= 0:
            return
        lru = self.lru
        for item in images:
            stats.mm_cache_queries += 1
            if item.digest in lru:
                stats.mm_cache_hits += 1
                lru.move_to_end(item.digest)
            else:
                lru[item.digest] = None
                if len(lru) > self.items:
                    lru.popitem(last=False)
