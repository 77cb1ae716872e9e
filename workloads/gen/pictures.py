"""Synthetic images for vision models: the `images=N`, `image_size=WxH`, `image_format=` options of any set.

`with_images` adds N pictures to the first user message of every turn — never to the shared prefix,
nor to a turn of tool results only (the agentic set's sessions get theirs with the task) — as OpenAI
chat image parts (workloads/images.py). Each picture is unique — seeded by the workload's
fingerprint, the conversation and the turn — so a server's multimodal cache cannot serve one
request's image to another, and deterministic, so a run is repeatable to the byte. A picture is a
smooth random colour field (a few random pixels upsampled) with a film grain in JPEG: about as many
bytes as a photo of that size, for a few milliseconds of Pillow per 512x512 picture (README.md §
"Images (vision models)" has the measured figures).
PNG pictures skip the grain: a lossless grain would cost half a megabyte and twice the time.

Pillow is imported only when a picture is made or measured: the load path imports this module.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import io
import random
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from core.quantiles import linear
from workloads.conversation import Conversation, Turn, Workload
from workloads.errors import WorkloadError
from workloads.gen.agent_tools import result_body
from workloads.images import IMAGE_PART, count_images, image_urls, split_data_url
from workloads.spec import Options

if TYPE_CHECKING:
    from PIL.Image import Image as PilImage

MAX_IMAGES = 16
SIDE_MIN, SIDE_MAX = 16, 4096
DEFAULT_SIZE = "512x512"
FORMATS = {"jpeg": "image/jpeg", "png": "image/png"}  # image_format= → media type
JPEG_QUALITY = 85
GRAIN = 0.08  # share of uniform noise blended into a JPEG picture: ±6 levels of grain, a photo's bytes
OPTION_KEYS = ("images", "image_size", "image_format", "image_seed")


@dataclass(frozen=True, slots=True)
class ImageOptions:
    """What `images=N,image_size=WxH,image_format=F` asks for (N ≥ 1)."""

    count: int
    sizes: tuple[tuple[int, int], ...]  # (width, height) each picture draws one of, evenly
    fmt: str  # a key of FORMATS
    seed: int = 0  # another seed, other pictures (a server kept running has the last run's in its cache)


def take_options(options: dict[str, str], where: str) -> ImageOptions | None:
    """Pop the image options from a spec's options (every loader then sees only its own); None when
    the spec asks for no images. A bad value is one WorkloadError line naming the option."""
    given = {k: options.pop(k) for k in OPTION_KEYS if k in options}
    opts = Options(given, where)
    count = opts.integer("images", 0, lo=0, hi=MAX_IMAGES)
    if count == 0:
        extra = [f"{k}={given[k]}" for k in OPTION_KEYS[1:] if k in given]
        if extra:
            raise WorkloadError(f"{where}: {', '.join(extra)} needs images=N (1..{MAX_IMAGES})")
        return None
    size = opts.text("image_size", DEFAULT_SIZE) or DEFAULT_SIZE
    fmt = opts.choice("image_format", "jpeg", tuple(FORMATS))
    sizes = tuple(parse_size(one, where) for one in size.split("|"))
    return ImageOptions(count, sizes, fmt, opts.integer("image_seed", 0, lo=0))


def parse_size(text: str, where: str) -> tuple[int, int]:
    """`WxH` → (W, H), each side SIDE_MIN..SIDE_MAX pixels."""
    w, sep, h = text.lower().partition("x")
    expected = f"expected WxH with each side {SIDE_MIN}..{SIDE_MAX} pixels, e.g. {DEFAULT_SIZE}"
    if not sep or not w.strip().isdigit() or not h.strip().isdigit():
        raise WorkloadError(f"{where}: image_size={text}: {expected}")
    width, height = int(w), int(h)
    if not (SIDE_MIN <= width <= SIDE_MAX and SIDE_MIN <= height <= SIDE_MAX):
        raise WorkloadError(f"{where}: image_size={text}: {expected}")
    return width, height


@lru_cache(maxsize=2)
def _grain(width: int, height: int) -> PilImage:
    """One uniform-noise layer per size, the same under every picture: fresh noise per picture would
    cost more than the rest of the picture, and the colour field alone makes each picture unique."""
    from PIL import Image

    noise = random.Random("goodput-grain").randbytes(width * height * 3)
    return Image.frombytes("RGB", (width, height), noise)


def picture(seed: bytes, width: int, height: int, fmt: str = "jpeg") -> bytes:
    """The encoded picture (JPEG or PNG file bytes) of exactly width x height for a seed; the same
    seed gives the same bytes (one Pillow version), another seed another picture."""
    from PIL import Image

    rng = random.Random(int.from_bytes(hashlib.sha256(seed).digest()[:16], "big"))
    cells = 4 + rng.randrange(5)  # a 4x4 to 8x8 grid of random colours, smoothly interpolated
    field = Image.frombytes("RGB", (cells, cells), rng.randbytes(cells * cells * 3))
    img = field.resize((width, height), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    else:
        Image.blend(img, _grain(width, height), GRAIN).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def data_url(data: bytes, fmt: str) -> str:
    """`data:image/jpeg;base64,...` of an encoded picture."""
    return f"data:{FORMATS[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


def with_images(
    workload: Workload, n: int, sizes: tuple[tuple[int, int], ...], fmt: str = "jpeg", seed: int = 0
) -> Workload:
    """The workload with `n` pictures appended to each turn's first user message, each of one of
    `sizes` (width, height), drawn evenly by its own seed (a mix of thumbnails, photos, screenshots).

    Its fingerprint changes with the image options (another picture set is another workload), and
    the pictures are seeded from that new fingerprint. Messages are shared read-only dicts: every
    changed message, turn and conversation is a new object."""
    if n <= 0:
        return workload
    if fmt not in FORMATS:
        raise WorkloadError(f"{workload.spec}: image_format={fmt} is not one of {', '.join(FORMATS)}")
    shown = "|".join(f"{w}x{h}" for w, h in sizes)
    fingerprint = hashlib.sha256(
        f"{workload.fingerprint}:images={n},{shown},{fmt}{f',seed={seed}' if seed else ''}".encode()
    ).hexdigest()[:16]

    def one(s: bytes) -> dict:
        w, h = sizes[int.from_bytes(hashlib.sha256(s).digest()[:4], "big") % len(sizes)]
        return {"type": IMAGE_PART, "image_url": {"url": data_url(picture(s, w, h, fmt), fmt)}}

    def parts(i: int, conv: Conversation, t: int) -> list[dict]:
        return [one(f"{fingerprint}\0{i}\0{conv.id}\0{t}\0{k}".encode()) for k in range(n)]

    convs = []
    for i, conv in enumerate(workload.conversations):
        turns = []
        for t, turn in enumerate(conv.turns):
            j = first_user(turn)
            turns.append(turn if j is None else _append(turn, j, parts(i, conv, t)))
        convs.append(dataclasses.replace(conv, turns=tuple(turns)))
    return dataclasses.replace(workload, conversations=tuple(convs), fingerprint=fingerprint)


def first_user(turn: Turn) -> int | None:
    """The index of the turn's first message from a person (the one pictures are attached to); None
    for a turn of tool results only — `tool` messages, or the agentic set's `<tool_result>` blocks
    sent as user text, which the agent turns back into `tool` messages with `tools=native`."""
    for j, m in enumerate(turn.messages):
        content = m.get("content")
        if m.get("role") == "user" and not (isinstance(content, str) and result_body(content) is not None):
            return j
    return None


def _append(turn: Turn, j: int, parts: list[dict]) -> Turn:
    """The turn with `parts` appended to message `j`'s content: text becomes a text part before them."""
    m = turn.messages[j]
    content = m.get("content")
    if isinstance(content, list):
        new = [*content, *parts]
    elif content:
        new = [{"type": "text", "text": str(content)}, *parts]
    else:
        new = parts
    return dataclasses.replace(
        turn, messages=(*turn.messages[:j], {**m, "content": new}, *turn.messages[j + 1 :])
    )


def image_stats(workload: Workload) -> dict | None:
    """`python -m workloads stats`: images per request (history included, as sent), and the distinct
    images' sizes, media types and mean file bytes (base64 on the wire is 4/3 of that); None without
    images. An http(s) image is counted, not fetched (`remote`)."""
    per_request: list[int] = []
    urls: dict[str, None] = {}  # distinct, in order
    for c in workload.conversations:
        n = count_images(c.prefix)
        urls.update(dict.fromkeys(u for m in c.prefix for u in image_urls(m.get("content"))))
        for turn in c.turns:
            n += count_images(turn.messages)
            per_request.append(n)
            urls.update(dict.fromkeys(u for m in turn.messages for u in image_urls(m.get("content"))))
    if not any(per_request):
        return None
    sizes: Counter[str] = Counter()
    media: Counter[str] = Counter()
    nbytes: list[int] = []
    for url in urls:
        parsed = split_data_url(url)
        if parsed is None:
            continue
        raw = _decode(parsed[1])
        media[parsed[0]] += 1
        sizes[_size(raw) if raw is not None else "unreadable"] += 1
        if raw is not None:
            nbytes.append(len(raw))
    v = sorted(per_request)
    return {
        "per_request": {"min": v[0], "p50": linear(v, 0.5), "max": v[-1], "mean": round(sum(v) / len(v), 3)},
        "requests_with_images": sum(1 for x in v if x),
        "distinct": len(urls),
        "remote": len(urls) - sum(media.values()),
        "sizes": dict(sizes.most_common()),
        "media_types": dict(media.most_common()),
        "mean_bytes": round(sum(nbytes) / len(nbytes)) if nbytes else None,
        "note": "input token estimates count text only; the server counts image tokens by its model's rule",
    }


def _decode(data: str) -> bytes | None:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def _size(raw: bytes) -> str:
    """`WxH` of an encoded image (its header only), or `unreadable`."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as img:
            return f"{img.width}x{img.height}"
    except (UnidentifiedImageError, OSError, ValueError):
        return "unreadable"
