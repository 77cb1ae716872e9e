"""OpenAI-compatible routes: validation, fault choice, and handing requests to the engine.

Validation follows vLLM's answers (400 for a malformed or impossible request, 404 for an
unknown model or path) with OpenAI-style bodies: {"error": {message, type, param, code}}.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson

from simserver.engine import Seq, output_length
from simserver.faults import HEADER, HTTP_FAULTS, FaultPicker
from simserver.http import Connection, Request
from simserver.metrics import render
from simserver.profiles import Profile
from simserver.runner import EngineRunner
from simserver.sinks import FullSink, RequestCtx, Shape, StreamSink, Trickle
from simserver.spans import engine_request_id
from simserver.tokenizer import chat_tokens, prompt_tokens
from simserver.trace import TraceWriter

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
PROM = "text/plain; version=0.0.4; charset=utf-8"
VERSION = "0.1.0"


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

    def body(self) -> bytes:
        kind = {400: "BadRequestError", 404: "NotFoundError", 405: "MethodNotAllowedError"}.get(
            self.status, "Error"
        )
        return error_body(self.status, kind, self.message, self.param)


def error_body(status: int, kind: str, message: str, param: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": status}})


@dataclass(slots=True)
class GenRequest:
    """A validated generation request."""

    chat: bool
    prompt: list[str]
    max_tokens: int
    min_tokens: int
    ignore_eos: bool
    stream: bool
    include_usage: bool
    seed: int | None


def _int(body: dict[str, Any], key: str, default: int | None) -> int | None:
    v = body.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(400, f"'{key}' must be an integer, got {v!r}", key)
    return v


def _bool(body: dict[str, Any], key: str) -> bool:
    v = body.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ApiError(400, f"'{key}' must be a boolean, got {v!r}", key)
    return v


def parse_generation(body: Any, chat: bool, model: str, max_model_len: int) -> GenRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    name = body.get("model", model)
    if name != model:
        raise ApiError(404, f"The model `{name}` does not exist.", "model")
    try:
        prompt = chat_tokens(body.get("messages")) if chat else prompt_tokens(body.get("prompt"))
    except ValueError as e:
        raise ApiError(400, str(e), "messages" if chat else "prompt") from None
    if len(prompt) >= max_model_len:
        raise ApiError(
            400,
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt has "
            f"{len(prompt)} tokens. Please reduce the length of the messages.",
            "messages" if chat else "prompt",
        )
    if (_int(body, "n", 1) or 1) != 1:
        raise ApiError(400, "only n=1 is supported", "n")
    key = "max_completion_tokens" if chat and body.get("max_completion_tokens") is not None else "max_tokens"
    default = max_model_len - len(prompt) if chat else 16  # vLLM's defaults
    max_tokens = _int(body, key, default)
    assert max_tokens is not None
    if max_tokens < 1:
        raise ApiError(400, f"{key} must be at least 1, got {max_tokens}.", key)
    min_tokens = _int(body, "min_tokens", 0) or 0
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
    stream = _bool(body, "stream")
    opts = body.get("stream_options")
    if opts is not None and not isinstance(opts, dict):
        raise ApiError(400, "'stream_options' must be an object", "stream_options")
    if opts and not stream:
        raise ApiError(400, "Stream options can only be defined when `stream=True`.", "stream_options")
    include_usage = bool(opts and opts.get("include_usage"))
    return GenRequest(
        chat,
        prompt,
        max_tokens,
        min_tokens,
        _bool(body, "ignore_eos"),
        stream,
        include_usage,
        _int(body, "seed", None),
    )


class Api:
    """The request handler the HTTP server calls for every parsed request."""

    def __init__(
        self,
        profile: Profile,
        runner: EngineRunner,
        registry: Any,
        faults: FaultPicker,
        seed: int,
        trace: TraceWriter | None = None,
    ) -> None:
        self.profile, self.runner, self.registry, self.faults, self.trace = (
            profile,
            runner,
            registry,
            faults,
            trace,
        )
        self.model = profile.model
        self.rng = random.Random(seed)
        self.created = int(time.time())
        self._ids = itertools.count(1)
        self._tag = secrets.token_hex(3)
        self.routes = {
            "/v1/chat/completions": ("POST", lambda r, c: self.generate(r, c, chat=True)),
            "/v1/completions": ("POST", lambda r, c: self.generate(r, c, chat=False)),
            "/v1/models": ("GET", self.models),
            "/health": ("GET", lambda r, c: c.respond(200, b"", "text/plain")),
            "/metrics": (
                "GET",
                lambda r, c: self.runner.defer(lambda: c.respond(200, render(self.registry), PROM)),
            ),
            "/version": (
                "GET",
                lambda r, c: c.respond(200, orjson.dumps({"version": f"simserver-{VERSION}"})),
            ),
            "/reset_prefix_cache": ("POST", self.reset_prefix_cache),
        }

    def __call__(self, req: Request, conn: Connection) -> None:
        route = self.routes.get(req.path)
        if route is None:
            err = ApiError(404, f"Not Found: {req.path}")
            conn.respond(404, err.body())
        elif req.method != route[0]:
            conn.respond(405, ApiError(405, f"Method Not Allowed: use {route[0]} {req.path}").body())
        else:
            route[1](req, conn)

    def models(self, req: Request, conn: Connection) -> None:
        card = {
            "id": self.model,
            "object": "model",
            "created": self.created,
            "owned_by": "simserver",
            "root": self.model,
            "parent": None,
            "max_model_len": self.profile.engine.max_model_len,
        }
        conn.respond(200, orjson.dumps({"object": "list", "data": [card]}))

    def reset_prefix_cache(self, req: Request, conn: Connection) -> None:
        self.runner.core.kv.reset_prefix_cache()
        conn.respond(200, b"", "text/plain")

    # -- generation ---------------------------------------------------------------------------
    def generate(self, req: Request, conn: Connection, chat: bool) -> None:
        n = next(self._ids)
        request_id = req.headers.get("x-request-id") or f"sim-{self._tag}-{n:08d}"
        endpoint = "chat" if chat else "completions"
        ctx = RequestCtx(request_id, endpoint, req.t_arrival_unix, self.trace)
        echo = (("x-request-id", request_id),)
        try:
            try:
                body = orjson.loads(req.body)
            except orjson.JSONDecodeError as e:
                raise ApiError(400, f"invalid JSON in request body: {e}") from None
            g = parse_generation(body, chat, self.model, self.profile.engine.max_model_len)
            ctx.stream, ctx.prompt_tokens = g.stream, len(g.prompt)
            try:
                fault = self.faults.pick(req.headers.get(HEADER))
            except ValueError as e:
                raise ApiError(400, str(e)) from None
        except ApiError as e:
            ctx.http_status = e.status
            conn.respond(e.status, e.body(), headers=echo)
            ctx.finish("error")
            return
        ctx.fault = fault
        if fault in HTTP_FAULTS:
            status, kind, message = HTTP_FAULTS[fault]
            hdrs = echo
            if fault == "http_429":
                hdrs = (*echo, ("retry-after", str(self.profile.faults.retry_after_s)))
            ctx.http_status = status
            conn.respond(status, error_body(status, kind, message), headers=hdrs)
            ctx.finish("error")
            return
        self._start(g, conn, ctx, fault, n, echo)

    def _start(
        self, g: GenRequest, conn: Connection, ctx: RequestCtx, fault: str | None, n: int, echo: tuple
    ) -> None:
        rng = random.Random(g.seed) if g.seed is not None else self.rng
        target, finish = output_length(rng, self.profile.output, g.max_tokens, g.min_tokens, g.ignore_eos)
        if fault == "empty":
            target, finish = 1, "stop"
        prefix = "chatcmpl" if g.chat else "cmpl"
        shape = Shape(g.chat, f"{prefix}-{self._tag}{n:08x}", int(time.time()), self.model)
        e = self.profile.engine
        args = (conn, ctx, shape, fault, target, self.runner)
        sink: Any = StreamSink(*args, include_usage=g.include_usage) if g.stream else FullSink(*args)
        trickle = Trickle(sink, self.profile.faults.trickle_interval_s) if fault == "trickle" else None
        seq = Seq(
            engine_request_id(ctx.request_id, g.chat),  # the id vLLM's engine (and its span) carries
            g.prompt,
            g.max_tokens,
            target,
            finish,
            trickle or sink,
            rng.getrandbits(16),
            e.block_size,
            e.enable_prefix_caching,
        )
        timer: asyncio.TimerHandle | None = None

        def lost() -> None:
            """The client went away before the end: free the engine's work and trace it."""
            if timer is not None:
                timer.cancel()
            if trickle is not None:
                trickle.cancel()
            self.runner.abort(seq)
            ctx.finish("aborted", seq)

        conn.on_close = lost
        if g.stream:
            conn.start_stream(200, SSE, echo)
        if fault == "stall":
            timer = asyncio.get_running_loop().call_later(
                self.profile.faults.stall_s, self.runner.submit, seq
            )
        else:
            self.runner.submit(seq)
