"""What a server says about its context before a run: its length, and how many tokens a prompt is
to its own tokenizer and chat template (loadgen/run/fit.py weighs the workload with them).

Each server says it its own way, all read here:
- context length: `max_model_len` on the model's card in `/v1/models` (vLLM, SGLang),
  `context_length` (OpenRouter), llama-server's `GET /props` (`default_generation_settings.n_ctx`:
  one slot's context, what a request gets), TGI's `GET /info` (`max_total_tokens`: prompt and
  new tokens together), or Ollama's `GET /api/ps` (`context_length` of the loaded model: what
  `num_ctx` and OLLAMA_CONTEXT_LENGTH made it, often far below the model's own; said only once the
  model is loaded). Ollama does not refuse a longer prompt by default: it shortens it and answers
  200 (its `prompt_eval_count` is the only trace), which is why the check matters most there;
- prompt tokens: `POST /tokenize` with `{"model", "messages"}` → `{"count"}` (vLLM: its tokenizer
  and chat template), llama-server's `POST /v1/chat/completions/input_tokens` → `{"input_tokens"}`,
  or SGLang's `POST /tokenize` with `{"model", "prompt"}` → `{"count"}` (its TokenizeRequest takes
  text only, serving_tokenize.py: the conversation as the text routes send it, base.prompt_text —
  exact for `--api sglang` and `completions`; a chat's template tokens, a few per message, left out).
Asked the way the target check asks (the load's route to the server, its headers); any failure
means "not said": the check falls back to Goodput's estimate, never stops on it.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.request
from collections.abc import Callable
from typing import Any, NamedTuple

from loadgen.transport.apis.base import prompt_text
from loadgen.transport.headers import static_headers
from loadgen.transport.urls import opener_like

# (card key, where it was read, whether the server refuses a max_tokens above it)
CARD_KEYS = (
    ("max_model_len", "max_model_len in /v1/models", True),
    ("context_length", "context_length in /v1/models", False),
)
# (route, the answer's key, what the body carries: the chat's `messages`, or its text as `prompt`)
COUNT_ROUTES = (
    ("/tokenize", "count", "messages"),
    ("/v1/chat/completions/input_tokens", "input_tokens", "messages"),
    ("/tokenize", "count", "prompt"),
)
COUNT_BUDGET_S = 15.0  # all the counting before a run, at most


class Context(NamedTuple):
    tokens: int
    source: str  # where it was read, for messages: "max_model_len in /v1/models"
    # the server refuses a max_tokens above the context (vLLM: "max_tokens=N cannot be greater than
    # max_model_len=M"; SGLang counts the prompt in too); llama-server accepts one and generates until
    # the context is full
    strict: bool = False


class Asker:
    """Goodput's own small requests to the target, as the target check makes them."""

    def __init__(
        self, host: str, api_key_env: str, client: str, headers: dict[str, str] | None, timeout_s: float = 5.0
    ) -> None:
        self.root = host.rstrip("/")
        self.client, self.timeout_s = client, timeout_s
        self.headers = static_headers(os.environ.get(api_key_env), headers or {})

    def json(self, path: str, body: dict | None = None) -> Any:
        """The answer's JSON (GET, or POST with `body`); None on any failure."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.root + path, data, {**self.headers, "Content-Type": "application/json"}
        )
        try:
            with opener_like(self.client).open(req, timeout=self.timeout_s) as r:
                return json.loads(r.read())
        except (
            OSError,
            ValueError,
            http.client.HTTPException,
        ):  # no route, a refusal, a timeout, a cut answer, not JSON
            return None


def context_length(card: dict | None, ask: Asker) -> Context | None:
    """The context a request gets: from the model's card, else llama-server's /props, else TGI's
    /info, else the loaded model's in Ollama's /api/ps."""
    for key, source, strict in CARD_KEYS:
        if _tokens((card or {}).get(key)):
            return Context(card[key], source, strict)  # type: ignore[index]
    props = ask.json("/props")
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    if _tokens(n_ctx):
        return Context(n_ctx, "n_ctx in llama-server's /props")
    info = ask.json("/info")  # TGI refuses `inputs` tokens + max_new_tokens above max_total_tokens (422)
    total = info.get("max_total_tokens") if isinstance(info, dict) else None
    if _tokens(total):
        return Context(total, "max_total_tokens in TGI's /info", True)
    return _ollama_loaded((card or {}).get("id"), ask.json("/api/ps"))


def _ollama_loaded(model: Any, ps: Any) -> Context | None:
    """The loaded model's context in Ollama's /api/ps (`{"models": [{"name", "model", …,
    "context_length"}]}`; api/types.go ProcessModelResponse, since ollama/ollama#11331, July 2025)."""
    models = ps.get("models") if isinstance(ps, dict) else None
    for m in models if isinstance(models, list) else ():
        if (
            isinstance(m, dict)
            and model in (m.get("name"), m.get("model"))
            and _tokens(m.get("context_length"))
        ):
            return Context(m["context_length"], "context_length of the loaded model in Ollama's /api/ps")
    return None


def token_counter(
    ask: Asker, model: str, budget_s: float = COUNT_BUDGET_S
) -> Callable[[list[dict]], int | None]:
    """A function counting a conversation's prompt tokens as the server does, on the first of
    COUNT_ROUTES that answers; None where none does (then never asked again), and once `budget_s`
    seconds have gone to counting (a slow server must not hold the run's start: the check then
    keeps what it has, or Goodput's estimate)."""
    routes = list(COUNT_ROUTES)
    deadline = time.monotonic() + budget_s

    def count(messages: list[dict]) -> int | None:
        while routes and time.monotonic() < deadline:
            path, key, form = routes[0]
            said = messages if form == "messages" else prompt_text(messages)
            answer = ask.json(path, {"model": model, form: said})
            n = answer.get(key) if isinstance(answer, dict) else None
            if type(n) is int and n >= 0:
                del routes[1:]  # this server's route: keep only it
                return n
            routes.pop(0)
        return None

    return count


def _tokens(value: Any) -> bool:
    return type(value) is int and value > 0
