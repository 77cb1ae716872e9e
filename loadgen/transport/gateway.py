"""What a gateway in front of the server says about a request it routed: which model answered, and how
many upstream attempts it made before the one that streamed.

A gateway that retries or falls back does it inside the request: the client's TTFT then holds every
failed attempt, and a fallback's tokens are another model's. Neither shows in the timing, so the row
records what the gateway states (`served_model`, `gateway_attempts`) and the analysis says when a run's
answers came from more than one model or through retries (analysis/gateway.py):
- LiteLLM's proxy sends `x-litellm-attempted-retries` and `x-litellm-attempted-fallbacks` (docs:
  proxy/response_headers): its streamed chunks name the requested model group even after a fallback
  (BerriAI/litellm issue #31722), so the header is the only sign;
- ngrok's AI gateway sends `Ngrok-AIG-Attempts` (upstream attempts, the answering one included) and
  `Ngrok-AIG-Model` (the upstream model that produced the answer: it wins over the body's `model`).
Elsewhere the answer's own `model` field names the model (OpenAI's chunks, OpenRouter's — the actual
model behind a router alias —, Anthropic's `message_start`, the Responses API's response, Ollama's
lines): the API parsers note the first one (loadgen/transport/apis/base.py `event_object`).
"""

from __future__ import annotations

from collections.abc import Callable

from core.result import StreamResult

RETRY_HEADERS = ("x-litellm-attempted-retries", "x-litellm-attempted-fallbacks")  # extra attempts each
ATTEMPTS_HEADER = "ngrok-aig-attempts"  # all attempts, the answering one included
MODEL_HEADER = "ngrok-aig-model"


def _text(value: object) -> str:
    """A header's value; a header sent twice (a list from geventhttpclient) counts by its last."""
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value or "").strip()


def _count(value: object) -> int | None:
    try:
        n = int(_text(value))
    except ValueError:
        return None
    return n if n >= 0 else None


def routed(res: StreamResult, header: Callable[[str], object]) -> None:
    """Note what the response's headers (`header(name)`, case-insensitive) say of the gateway's routing."""
    extra = None
    for name in RETRY_HEADERS:
        if (n := _count(header(name))) is not None:
            extra = (extra or 0) + n
    if (n := _count(header(ATTEMPTS_HEADER))) is not None and n >= 1:
        extra = (extra or 0) + n - 1
    res.gateway_attempts = extra
    if model := _text(header(MODEL_HEADER)):
        res.served_model = model
