"""Images in a workload's messages: what an image part is, and how many a request carries.

A workload holds images as OpenAI chat content parts — `{"type": "image_url", "image_url": {"url":
URL}}` in a user message's `content` list, the URL a `data:` URL (base64) or an `http(s)` one — the
one form every source produces (a batch file as it is, the `images=` option by generating them).
Each API module reshapes the part into its own route's form (loadgen/transport/apis/). This module
is light — no image library — because the load path reads it for every request.
"""

from __future__ import annotations

from collections.abc import Iterable

IMAGE_PART = "image_url"  # OpenAI chat's content-part type for an image


def image_url(part: object) -> str | None:
    """The URL of an image content part (`data:...` or `http(s)://...`), else None (text, anything else)."""
    if part.__class__ is not dict or part.get("type") != IMAGE_PART:  # type: ignore[union-attr]
        return None
    ref = part.get("image_url")  # type: ignore[union-attr]
    url = ref.get("url") if isinstance(ref, dict) else ref  # OpenAI's is an object; some send the string
    return url if isinstance(url, str) and url else None


def split_data_url(url: str) -> tuple[str, str] | None:
    """`data:MEDIA;base64,DATA` → (MEDIA, DATA); None for any other URL (a remote one, or not base64)."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url.partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[5 : -len(";base64")] or "application/octet-stream", data


def image_urls(content: object) -> list[str]:
    """The image URLs of one message's `content`, in order (a string content has none)."""
    if content.__class__ is not list:
        return []
    return [u for p in content if (u := image_url(p)) is not None]  # type: ignore[union-attr]


def count_images(messages: Iterable[dict]) -> int:
    """The images a request carries: every image part of every message sent (history included — the
    server receives, and may cache, them all)."""
    n = 0
    for m in messages:
        content = m.get("content")
        if content.__class__ is list:
            n += sum(1 for p in content if image_url(p) is not None)
    return n


def url_kind(url: str) -> str:
    """`data` for an inline (base64) image, `http` for one the server must fetch."""
    return "data" if url.startswith("data:") else "http"


def image_kinds(conversations: Iterable) -> dict[str, int]:
    """The images a set holds by URL kind (`data`, `http`), each counted once where it is written (a
    prefix's or a turn's message): what a route must take for the set to be sent as it is."""
    kinds: dict[str, int] = {}
    for conv in conversations:
        for m in (*conv.prefix, *(m for t in conv.turns for m in t.messages)):
            for u in image_urls(m.get("content")):
                k = url_kind(u)
                kinds[k] = kinds.get(k, 0) + 1
    return kinds


def without_images(messages: Iterable[dict]) -> list[dict]:
    """The messages with their image parts left out (a content list keeps its other parts): the text a
    request carries, to count apart from its pictures."""
    out = []
    for m in messages:
        content = m.get("content")
        if content.__class__ is list and any(image_url(p) is not None for p in content):
            m = {**m, "content": [p for p in content if image_url(p) is None]}
        out.append(m)
    return out
