"""The parsed form of a generation request, whatever route it came by, and the checks routes share.

Each route's module (wire_openai, wire_responses, wire_native) reads its own request shape into a
GenRequest; the engine hand-off in api.py sees only this. Mistakes raise ApiError, which the route
turns into its server's own error body (OpenAI-style, SGLang, TGI or llama.cpp).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from simserver.answer import ToolSpec
from simserver.images import ImageItem


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

    @property
    def kind(self) -> str:
        return {400: "BadRequestError", 404: "NotFoundError", 405: "MethodNotAllowedError"}.get(
            self.status, "Error"
        )


def openai_error(status: int, kind: str, message: str, param: str | None = None) -> bytes:
    """vLLM's and OpenAI's error body: {"error": {message, type, param, code}}."""
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": status}})


@dataclass(slots=True)
class GenRequest:
    """A validated generation request."""

    prompt: list[str]
    max_tokens: int
    min_tokens: int = 0
    ignore_eos: bool = False
    stream: bool = False
    include_usage: bool = False
    seed: int | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: Any = None
    think: bool = True  # the request lets a reasoning model reason (chat_template_kwargs may say no)
    lora: str | None = None  # the LoRA adapter the request names (None: the base model)
    opts: dict[str, Any] = field(default_factory=dict)  # route-specific: what only its wire format uses
    images: tuple[ImageItem, ...] = ()  # the prompt's images, in order (their tokens are in `prompt`)


def as_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ApiError(400, f"invalid JSON in request body: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def get_int(body: dict[str, Any], key: str, default: int | None, param: str | None = None) -> int | None:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(400, f"'{param or key}' must be an integer, got {v!r}", param or key)
    return v


def get_bool(body: dict[str, Any], key: str, param: str | None = None) -> bool:
    v = body.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ApiError(400, f"'{param or key}' must be a boolean, got {v!r}", param or key)
    return v


def get_dict(body: dict[str, Any], key: str) -> dict[str, Any]:
    v = body.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ApiError(400, f"'{key}' must be an object", key)
    return v


def check_model(body: dict[str, Any], model: str) -> None:
    name = body.get("model", model)
    if name != model:
        raise ApiError(404, f"The model `{name}` does not exist.", "model")


def check_lengths(
    prompt: list[str], max_tokens: int, min_tokens: int, max_model_len: int, key: str, prompt_key: str
) -> None:
    """vLLM's checks: an empty prompt, one that fills the context, max_tokens < 1, min > max, too long."""
    if not prompt:
        raise ApiError(400, "The decoder prompt cannot be empty", prompt_key)
    if len(prompt) >= max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt has "
            f"{len(prompt)} tokens. Please reduce the length of the messages.",
            prompt_key,
        )
    if max_tokens < 1:
        raise ApiError(400, f"{key} must be at least 1, got {max_tokens}.", key)
    if not 0 <= min_tokens <= max_tokens:
        raise ApiError(
            400, f"min_tokens must be between 0 and max_tokens={max_tokens}, got {min_tokens}.", "min_tokens"
        )
    if len(prompt) + max_tokens > max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{len(prompt) + max_tokens} tokens ({len(prompt)} in the messages, {max_tokens} in the completion). "
            "Please reduce the length of the messages or completion.",
            key,
        )
