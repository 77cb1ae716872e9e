"""A cheap deterministic tokenizer and text generator.

Tokens are regex words (`\\w+`) and single punctuation characters; whitespace separates tokens
and is not one. Real BPE tokenizers give ~1.3 tokens per English word; this one gives ~1.1, which
is close enough for load and far cheaper (no vocabulary files, ~50 µs for an 800-token prompt).

Chat messages go through a ChatML-like template whose special tokens are real tokens, so two
requests sharing a system prompt share a token prefix and therefore prefix-cache blocks:
    per message:  <|im_start|> ROLE \\n CONTENT… <|im_end|> \\n      (5 tokens of overhead)
    at the end:   <|im_start|> assistant \\n                          (3 tokens)
An image part in a message's content is its own run of tokens at its place (simserver/images.py).

Generated text is drawn from a fixed vocabulary whose entries re-tokenize to themselves, so an
answer fed back as the next turn's context becomes exactly the tokens that were generated — the
property that lets multi-turn sessions hit the prefix cache as they do on a real engine.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from core.tokens import TOKEN_RE, count_tokens, tokenize  # noqa: F401  (the rule, shared)
from simserver.images import IMAGE_PART, ImageItem, image_of_part

IM_START, IM_END, NL = "<|im_start|>", "<|im_end|>", "\n"
MESSAGE_OVERHEAD = 5
GENERATION_PROMPT = (IM_START, "assistant", NL)

_WORDS = [
    w
    for line in Path(__file__).with_name("vocab.txt").read_text().splitlines()
    if line[:1] != "#"
    for w in line.split()
]
_PUNCT = [","] * 8 + ["."] * 8
VOCAB: tuple[str, ...] = tuple(dict.fromkeys(_WORDS))[: 256 - len(_PUNCT)] + tuple(_PUNCT)
# The text each token contributes to the answer: a leading space before words, none before punctuation.
VOCAB_TEXT: tuple[str, ...] = tuple(w if w in ",." else " " + w for w in VOCAB)
# Its JSON string literal, prebuilt so emitting a chunk never calls a JSON encoder.
VOCAB_JSON: tuple[bytes, ...] = tuple(orjson.dumps(t) for t in VOCAB_TEXT)
V = len(VOCAB)

# Byte length of each token's JSON literal: a chunk's length header without measuring the chunk.
VOCAB_JSON_LEN: tuple[int, ...] = tuple(len(j) for j in VOCAB_JSON)


def content_tokens(content: Any, images: list[ImageItem] | None = None) -> list[str]:
    """Tokens of a message's content: a string, or OpenAI content parts — text parts, and image parts
    (`image_url`: simserver/images.py) as their tokens in place; each image is appended to `images`."""
    if content is None:
        return []
    if isinstance(content, str):
        return TOKEN_RE.findall(content)
    if not isinstance(content, list):
        raise ValueError("message content must be a string or a list of parts")
    out: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            raise ValueError("content parts must be objects")
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise ValueError("a text content part needs a 'text' string")
            out.extend(TOKEN_RE.findall(text))  # whitespace splits tokens: parts tokenize as if joined
        elif kind == IMAGE_PART:
            item = image_of_part(part)
            if images is not None:
                images.append(item)
            out.extend(item.tokens())
    return out


def chat_tokens(messages: Any, images: list[ImageItem] | None = None) -> list[str]:
    """Prompt tokens of a chat request under the ChatML-like template above; its images are appended
    to `images` in prompt order."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    out: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise ValueError(f"messages[{i}] must be an object")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{i}].role must be a non-empty string")
        try:
            tokens = content_tokens(m.get("content"), images)
        except ValueError as e:
            raise ValueError(f"messages[{i}]: {e}") from None
        for call in m.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                tokens.extend(TOKEN_RE.findall(f" {fn.get('name') or ''} {fn.get('arguments') or ''}"))
        out.append(IM_START)
        out.append(role)
        out.append(NL)
        out.extend(tokens)
        out.append(IM_END)
        out.append(NL)
    out.extend(GENERATION_PROMPT)
    return out


def prompt_tokens(prompt: Any) -> list[str]:
    """Tokens of a /v1/completions prompt: a string, a one-element list of strings, or token ids."""
    if isinstance(prompt, str):
        return TOKEN_RE.findall(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return [f"<{t}>" for t in prompt]  # token ids: each id is one token
        if len(prompt) == 1 and isinstance(prompt[0], str):
            return TOKEN_RE.findall(prompt[0])
        if len(prompt) == 1 and isinstance(prompt[0], list):
            return prompt_tokens(prompt[0])
        raise ValueError("batched prompts are not supported: send one prompt per request")
    raise ValueError("'prompt' must be a non-empty string or list of token ids")


class TextTable:
    """The engine's "model": a seeded table of vocabulary indices, read as a ring.

    A request starts at a seeded random offset and reads on; a token then costs one add, one mask
    and one index (~40 ns), where even a tiny inline PRNG cost several times that at 40k tokens/s.
    """

    SIZE = 1 << 16

    def __init__(self, seed: int) -> None:
        rng = random.Random(f"text-{seed}")
        self.table: list[int] = [rng.randrange(V) for _ in range(self.SIZE)]
        self.mask = self.SIZE - 1
