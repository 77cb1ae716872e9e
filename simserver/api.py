"""Routes: validation, fault choice, and handing requests to the engine — one engine, every API.

The OpenAI routes answer as vLLM does; /generate (SGLang), /generate_stream (TGI), /completion
(llama.cpp), /api/chat (Ollama, NDJSON), /v1/messages (Anthropic) and /v1/responses answer in their servers' own formats
(simserver/wire_*.py), each with its server's error body. Whatever the route, a request becomes one engine sequence, so /metrics
and the trace count every route the same way. Validation follows vLLM's answers (400 for a
malformed or impossible request, 404 for an unknown model or path). With `--lora-modules` each
adapter is a model of its own name (/v1/models lists it with the base model as its parent): a request
naming it runs on it (simserver/lora.py), and the answer names it as its model.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from simserver.answer import Answer, draw_reasoning, output_length, pick_call, plan
from simserver.engine import Seq
from simserver.faults import HEADER, HTTP_FAULTS, FaultPicker
from simserver.http import Connection, Request
from simserver.images import Vision
from simserver.lora import LoraConfig
from simserver.metrics import render
from simserver.profiles import Profile
from simserver.reqparse import ApiError, GenRequest, as_object, check_model, get_dict, openai_error
from simserver.runner import EngineRunner
from simserver.sinks import FullSink, RequestCtx, StreamSink, TracedStreamSink, Trickle
from simserver.spans import engine_request_id
from simserver.tokenizer import chat_tokens, prompt_tokens
from simserver.trace import TraceWriter
from simserver.wire import Reply, Wire
from simserver.wire_messages import MessagesWire, messages_error, parse_messages
from simserver.wire_native import (
    LlamaCppWire,
    SGLangWire,
    TGIWire,
    llamacpp_error,
    parse_llamacpp,
    parse_sglang,
    parse_tgi,
    sglang_error,
    tgi_error,
)
from simserver.wire_ollama import NDJSON, OllamaWire, ollama_error, parse_ollama
from simserver.wire_openai import ChatWire, CompletionsWire, parse_openai
from simserver.wire_responses import ResponsesWire, parse_responses

TRTLLM_ASK = "x-trtllm-return-metrics"  # the request header that asks trtllm-serve for its timing

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
PROM = "text/plain; version=0.0.4; charset=utf-8"
VERSION = "0.1.0"


def error_body(status: int, kind: str, message: str, param: str | None = None) -> bytes:
    return openai_error(status, kind, message, param)


def _openai_error(status: int, kind: str, message: str, param: str | None = None) -> tuple[int, bytes]:
    return status, openai_error(status, kind, message, param)


@dataclass(frozen=True, slots=True)
class GenRoute:
    """A generation route: its trace name, request parser, wire format, error body and stream type;
    `adapter` reads a LoRA adapter's name from a field of its own (None: the `model` field names it)."""

    endpoint: str
    parse: Callable[[dict[str, Any], str, int], GenRequest]
    wire: Callable[[Api, GenRequest, Answer, str, int], Wire]
    error: Callable[[int, str, str, str | None], tuple[int, bytes]] = _openai_error
    media: str = SSE
    adapter: Callable[[dict[str, Any]], Any] | None = None


def _reasoning_field(api: Api) -> str | None:
    r = api.profile.reasoning
    return r.delta_field if r.tokens_median > 0 else None


GEN_ROUTES = {
    "/v1/chat/completions": GenRoute(
        "chat",
        lambda b, m, n: parse_openai(b, True, m, n),
        lambda api, g, a, rid, n: ChatWire(
            api.reply("chatcmpl-", n, g), a, g.include_usage, _reasoning_field(api)
        ),
    ),
    "/v1/completions": GenRoute(
        "completions",
        lambda b, m, n: parse_openai(b, False, m, n),
        lambda api, g, a, rid, n: CompletionsWire(api.reply("cmpl-", n, g), a, g.include_usage),
    ),
    "/v1/responses": GenRoute(
        "responses",
        parse_responses,
        lambda api, g, a, rid, n: ResponsesWire(api.reply("resp_", n, g), a, g.opts),
    ),
    "/v1/messages": GenRoute(
        "messages",
        parse_messages,
        lambda api, g, a, rid, n: MessagesWire(f"chatcmpl-{api.tag}{n:08x}", g.lora or api.model, a),
        messages_error,
    ),
    "/generate": GenRoute(
        "generate",
        parse_sglang,
        lambda api, g, a, rid, n: SGLangWire(g.opts.get("rid") or rid, a),
        sglang_error,
        adapter=lambda b: b.get("lora_path"),  # SGLang's name of an adapter of its --lora-paths
    ),
    "/generate_stream": GenRoute(
        "generate_stream",
        parse_tgi,
        lambda api, g, a, rid, n: TGIWire(a, g.opts),
        tgi_error,
        adapter=lambda b: get_dict(b, "parameters").get("adapter_id"),  # TGI's LORA_ADAPTERS id
    ),
    "/completion": GenRoute(
        "completion",
        parse_llamacpp,
        lambda api, g, a, rid, n: LlamaCppWire(a, api.model, g.opts),
        llamacpp_error,
        adapter=lambda b: None,  # llama-server names no adapter (its `lora` list scales loaded ones)
    ),
    "/api/chat": GenRoute(
        "api_chat",
        parse_ollama,
        lambda api, g, a, rid, n: OllamaWire(a, g.lora or api.model),
        ollama_error,
        NDJSON,
    ),
}


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
        trace_tokens: bool = False,
        per_request_metrics: bool = False,
        return_perf_metrics: bool = False,
        spec_summary: bool = False,
        lora: LoraConfig | None = None,
        vision: Vision | None = None,
    ) -> None:
        self.profile, self.runner, self.registry, self.faults, self.trace = (
            profile,
            runner,
            registry,
            faults,
            trace,
        )
        self.trace_tokens = trace_tokens
        self.per_request_metrics = per_request_metrics  # vLLM's --enable-per-request-metrics
        self.return_perf_metrics = return_perf_metrics  # trtllm-serve's return_perf_metrics
        self.spec_summary = spec_summary  # vLLM's --per-request-spec-decode-metrics summary
        self.lora = lora  # the LoRA adapters served (--lora-modules), or None
        self.vision = vision or Vision()  # images: taken or not (--text-only), the multimodal cache
        self.model = profile.model
        self.rng = random.Random(seed)
        self.created = int(time.time())
        self._ids = itertools.count(1)
        self.tag = secrets.token_hex(3)
        self.routes: dict[str, tuple[str, Callable[[Request, Connection], None]]] = {
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
            "/tokenize": ("POST", self.tokenize),
        }
        for path, route in GEN_ROUTES.items():
            self.routes[path] = ("POST", lambda r, c, route=route: self.generate(r, c, route))

    def __call__(self, req: Request, conn: Connection) -> None:
        route = self.routes.get(req.path)
        if route is None:
            err = ApiError(404, f"Not Found: {req.path}")
            conn.respond(404, error_body(404, err.kind, err.message))
        elif req.method != route[0]:
            message = f"Method Not Allowed: use {route[0]} {req.path}"
            conn.respond(405, error_body(405, "MethodNotAllowedError", message))
        else:
            route[1](req, conn)

    def reply(self, prefix: str, n: int, g: GenRequest) -> Reply:
        """Who answers the n-th request: an id of `prefix`, this server's tag and n; now; the model
        the request named (a LoRA adapter's name, as vLLM answers)."""
        return Reply(
            f"{prefix}{self.tag}{n:08x}",
            int(time.time()),
            g.lora or self.model,
            self.per_request_metrics,
            self.spec_summary,
        )

    def models(self, req: Request, conn: Connection) -> None:
        """The base model, then each adapter as vLLM lists one: its own id, `parent` the base model."""
        cards = [self._card(self.model, self.model, None, self.profile.engine.max_model_len)]
        if self.lora is not None:
            cards += [self._card(name, root, self.model, None) for name, root in self.lora.modules.items()]
        conn.respond(200, orjson.dumps({"object": "list", "data": cards}))

    def _card(self, name: str, root: str, parent: str | None, max_model_len: int | None) -> dict[str, Any]:
        return {
            "id": name,
            "object": "model",
            "created": self.created,
            "owned_by": "simserver",
            "root": root,
            "parent": parent,
            "max_model_len": max_model_len,
        }

    def adapter(
        self, body: dict[str, Any], field: Callable[[dict[str, Any]], Any] | None = None
    ) -> str | None:
        """The LoRA adapter a request names (None: the base model). A `model` that names neither is left
        to the route's parser (its 404); an unknown adapter in a field of its own is a 400 here."""
        if self.lora is None:
            return None
        name = body.get("model") if field is None else field(body)
        if isinstance(name, str) and name in self.lora.modules:
            return name
        if field is None or name is None:
            return None
        raise ApiError(400, f"LoRA adapter {name!r} is not loaded (served: {', '.join(self.lora.modules)})")

    def tokenize(self, req: Request, conn: Connection) -> None:
        """vLLM's `POST /tokenize`: a chat's (`messages`, under the chat template) or a text's
        (`prompt`) token count and the context length; the tokens as strings, not ids (the engine
        has no vocabulary)."""
        try:
            body = as_object(req.body)
            check_model(body, self.adapter(body) or self.model)
            self._refuse_images(body)
            chat = "messages" in body
            try:
                tokens = chat_tokens(body["messages"]) if chat else prompt_tokens(body.get("prompt"))
            except ValueError as e:
                raise ApiError(400, str(e), "messages" if chat else "prompt") from None
        except ApiError as e:
            conn.respond(e.status, error_body(e.status, e.kind, e.message, e.param))
            return
        out = {"count": len(tokens), "max_model_len": self.profile.engine.max_model_len, "token_strs": tokens}
        conn.respond(200, orjson.dumps(out))

    def _refuse_images(self, body: dict[str, Any]) -> None:
        if (why := self.vision.refusal(body, self.model)) is not None:
            raise ApiError(400, why)

    def reset_prefix_cache(self, req: Request, conn: Connection) -> None:
        self.runner.core.kv.reset_prefix_cache()
        conn.respond(200, b"", "text/plain")

    # -- generation ---------------------------------------------------------------------------
    def generate(self, req: Request, conn: Connection, route: GenRoute) -> None:
        n = next(self._ids)
        request_id = req.headers.get("x-request-id") or f"sim-{self.tag}-{n:08d}"
        ctx = RequestCtx(request_id, route.endpoint, req.t_arrival_unix, self.trace, self.trace_tokens)
        echo = (("x-request-id", request_id),)
        if self.lora is not None:
            ctx.lora = ""  # traced as null (the base model) unless the request names an adapter
        try:
            fields = as_object(req.body)
            lora = self.adapter(fields, route.adapter)
            if lora is not None:
                ctx.lora = lora
            self._refuse_images(fields)
            g = route.parse(fields, lora or self.model, self.profile.engine.max_model_len)
            g.lora = lora
            ctx.stream, ctx.prompt_tokens, ctx.images = g.stream, len(g.prompt), len(g.images)
            self.vision.seen(g.images, self.runner.core.stats)
            try:
                fault = self.faults.pick(req.headers.get(HEADER))
            except ValueError as e:
                raise ApiError(400, str(e)) from None
        except ApiError as e:
            ctx.http_status, body = route.error(e.status, e.kind, e.message, e.param)
            conn.respond(ctx.http_status, body, headers=echo)
            ctx.finish("error")
            return
        ctx.fault = fault
        if fault in HTTP_FAULTS:
            status, kind, message = HTTP_FAULTS[fault]
            hdrs = echo
            if fault == "http_429":
                hdrs = (*echo, ("retry-after", str(self.profile.faults.retry_after_s)))
            ctx.http_status, body = route.error(status, kind, message, None)
            conn.respond(ctx.http_status, body, headers=hdrs)
            ctx.finish("error")
            return
        asked = req.headers.get(TRTLLM_ASK, "").strip() == "1"
        self._start(g, conn, ctx, fault, n, echo, route, self.return_perf_metrics and asked)

    def _answer(self, g: GenRequest, rng: random.Random, fault: str | None, n: int) -> tuple[Answer, int]:
        """The drawn answer and the request's text offset. Draw order is fixed (seeded replays)."""
        p = self.profile
        text_len, text_finish = output_length(rng, p.output, g.max_tokens, g.min_tokens, g.ignore_eos)
        text_offset = rng.getrandbits(16)
        if fault == "empty":
            return Answer(0, None, 1, "stop"), text_offset
        reasoning = draw_reasoning(rng, p.reasoning) if g.think else 0
        tool = (
            pick_call(rng, p.tool_calls, g.tools, g.tool_choice, f"chatcmpl-tool-{self.tag}{n:08x}")
            if g.tools
            else None
        )
        return plan(text_len, text_finish, reasoning, tool, g.max_tokens, g.ignore_eos), text_offset

    def _start(
        self,
        g: GenRequest,
        conn: Connection,
        ctx: RequestCtx,
        fault: str | None,
        n: int,
        echo: tuple,
        route: GenRoute,
        perf_metrics: bool = False,
    ) -> None:
        rng = random.Random(g.seed) if g.seed is not None else self.rng
        answer, text_offset = self._answer(g, rng, fault, n)
        wire = route.wire(self, g, answer, ctx.request_id, n)
        wire.perf_metrics = perf_metrics
        args = (conn, ctx, wire, answer, fault, self.runner)
        streamer = TracedStreamSink if ctx.emits is not None else StreamSink
        sink: Any = streamer(*args) if g.stream else FullSink(*args)
        trickle = Trickle(sink, self.profile.faults.trickle_interval_s) if fault == "trickle" else None
        e = self.profile.engine
        seq = Seq(
            engine_request_id(ctx.request_id, route.endpoint),  # the id vLLM's engine (and its span) carries
            g.prompt,
            g.max_tokens,
            answer.total,
            answer.finish,
            trickle or sink,
            text_offset,
            e.block_size,
            e.enable_prefix_caching,
            g.lora,
        )
        wire.seq = seq
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
            conn.start_stream(200, route.media, echo)
            head = wire.open()
            if head:
                conn.send_many(head)
        if fault == "stall":
            timer = asyncio.get_running_loop().call_later(
                self.profile.faults.stall_s, self.runner.submit, seq
            )
        else:
            self.runner.submit(seq)
