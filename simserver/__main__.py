"""`python -m simserver`: parse the command line, build the engine, serve until SIGINT/SIGTERM.

Bad input (unknown profile, malformed --faults, bad YAML, a port in use) ends with one line on
stderr and exit code 2 — never a traceback — so scripts and tests can show the user the cause.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from dataclasses import asdict, replace
from typing import Any, NoReturn

import yaml

from simserver.api import Api
from simserver.engine import EngineCore
from simserver.faults import FaultPicker
from simserver.http import ServerCounters, serve
from simserver.images import DEFAULT_MM_CACHE_ITEMS, Vision
from simserver.lora import DEFAULT_LOAD_MS, lora_config
from simserver.metrics import EngineCollector, Gauges, LagWindow, make_registry
from simserver.profiles import (
    Profile,
    ProfileError,
    available,
    from_dict,
    load_config,
    load_profile,
    parse_fault_probabilities,
)
from simserver.replicas import ReplicaCtx, ReplicaLink, TaggedTrace, serve_set, unsupported
from simserver.runner import EngineRunner
from simserver.spans import SpanCollector, SpanExporter, check_endpoint, resource_attributes
from simserver.specdecode import parse_speculative_config
from simserver.trace import TraceWriter


class UsageError(Exception):
    """A command-line mistake, reported as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(prog="python -m simserver", description="Simulated OpenAI-compatible LLM inference engine.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--profile", default=None, help=f"built-in profile ({', '.join(available())}); default: default"
    )
    src.add_argument("--config", default=None, help="profile YAML file (may name a `base:` profile)")
    p.add_argument("--seed", type=int, default=0, help="seed of output lengths, texts and fault draws")
    p.add_argument("--trace", default=None, help="append one JSON line per request to this file")
    p.add_argument(
        "--trace-tokens",
        action="store_true",
        help="with --trace: record every token's emit time (emit_unix list, µs) in the trace line",
    )
    p.add_argument(
        "--faults", default=None, help="per-request fault probabilities, e.g. http_500=0.01,stall=0.002"
    )
    p.add_argument("--model", default=None, help="served model name (overrides the profile's)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one profile key, e.g. engine.max_num_seqs=32 or max_num_seqs=32 (repeatable)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        metavar="N",
        help="N independent engine processes behind one port, like data-parallel replicas (Linux)",
    )
    p.add_argument(
        "--otlp-traces-endpoint",
        default=None,
        metavar="URL",
        help="export one OTLP/HTTP span per finished request, POSTed to URL as given "
        "(e.g. http://127.0.0.1:4318/v1/traces)",
    )
    p.add_argument(
        "--enable-per-request-metrics",
        action="store_true",
        help="as vLLM's option: each OpenAI answer states the engine's own timing of the request "
        "(`metrics` beside the last usage, or in the final Responses response)",
    )
    p.add_argument(
        "--return-perf-metrics",
        action="store_true",
        help="as trtllm-serve's return_perf_metrics: a streamed chat or completions answer to a request "
        "with `X-TRTLLM-return-metrics: 1` ends with the engine's timing after [DONE] "
        "(`event: trtllm.perf_metrics`)",
    )
    p.add_argument(
        "--speculative-config",
        default=None,
        metavar="JSON",
        help='as vLLM\'s option: speculative decoding, e.g. \'{"method":"ngram","num_speculative_tokens":3}\'; '
        "the simulator also reads `acceptance` (0 < p <= 1, default 0.7: the chance each next draft "
        "token is accepted)",
    )
    p.add_argument(
        "--per-request-spec-decode-metrics",
        choices=["none", "summary"],
        default="none",
        help="as vLLM's option: `summary` adds `speculative_decoding` to each OpenAI answer's `metrics`",
    )
    p.add_argument(
        "--lora-modules",
        nargs="+",
        default=None,
        metavar="NAME[=PATH]",
        help="serve these LoRA adapters beside the base model, each a model of its own name, e.g. a,b,c; "
        "vLLM's NAME=PATH ... (or JSON) form carries over, the path only names its root",
    )
    p.add_argument(
        "--max-loras",
        type=int,
        default=None,
        metavar="N",
        help="as vLLM's option: adapters that may run at once, each in a GPU slot (default 1, vLLM's)",
    )
    p.add_argument(
        "--lora-load-ms",
        type=float,
        default=None,
        metavar="MS",
        help=f"time an adapter load into a slot adds to its step (default {DEFAULT_LOAD_MS:g}: a rank-16 "
        "adapter of a 7-8B model, ~40-80 MB, copied in from host memory)",
    )
    p.add_argument(
        "--enable-lora", action="store_true", help="vLLM's; accepted (--lora-modules turns LoRA on)"
    )
    p.add_argument("--max-lora-rank", type=int, default=None, help="vLLM's; accepted and ignored")
    p.add_argument(
        "--text-only", action="store_true", help="the model takes no images: a request with one is a 400"
    )
    p.add_argument(
        "--mm-cache-items",
        type=int,
        default=DEFAULT_MM_CACHE_ITEMS,
        metavar="N",
        help=f"images the multimodal cache keeps, an LRU of their hashes (default {DEFAULT_MM_CACHE_ITEMS}; "
        "0: none): vllm:mm_cache_queries / vllm:mm_cache_hits",
    )
    args = p.parse_args(argv)
    try:
        args.lora = lora_config(
            args.lora_modules, args.max_loras, args.lora_load_ms, args.max_lora_rank, args.enable_lora
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.mm_cache_items < 0:
        raise UsageError(f"--mm-cache-items must be >= 0, got {args.mm_cache_items}")
    if not 1 <= args.replicas <= 64:
        raise UsageError(f"--replicas must be 1..64, got {args.replicas}")
    if args.replicas > 1 and (why := unsupported()):
        raise UsageError(why)
    if args.otlp_traces_endpoint is not None and (why := check_endpoint(args.otlp_traces_endpoint)):
        raise UsageError(f"--otlp-traces-endpoint: {why}")
    if args.trace_tokens and not args.trace:
        raise UsageError("--trace-tokens needs --trace FILE.jsonl (the emit times are written there)")
    if args.speculative_config is not None:
        try:
            args.speculative_config = parse_speculative_config(args.speculative_config)
        except ValueError as e:
            raise UsageError(f"--speculative-config: {e}") from None
    return args


def build_profile(args: argparse.Namespace) -> Profile:
    profile = load_config(args.config) if args.config else load_profile(args.profile or "default")
    if args.set:
        profile = apply_overrides(profile, args.set)
    if args.faults is not None:
        probs = parse_fault_probabilities(args.faults, "--faults")
        profile = replace(profile, faults=replace(profile.faults, probabilities=probs))
    if args.model:
        profile = replace(profile, model=args.model)
    if args.lora is not None and profile.model in args.lora.modules:
        raise UsageError(f"--lora-modules: '{profile.model}' is the base model's name")
    if args.speculative_config is not None:
        profile = replace(profile, speculative=args.speculative_config)
    if args.per_request_spec_decode_metrics != "none" and not profile.speculative.num_speculative_tokens:
        raise UsageError(  # vLLM's words
            "--per-request-spec-decode-metrics requires speculative decoding to be enabled "
            "(via --speculative-config)."
        )
    return profile


def apply_overrides(profile: Profile, items: list[str]) -> Profile:
    """`--set section.key=value` (or a bare key that one section owns): parameter sweeps need no files.

    Values are YAML scalars (`32`, `0.5`, `false`); the result is re-validated like a profile file.
    """
    data = asdict(profile)
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set: '{item}' is not KEY=VALUE (e.g. engine.max_num_seqs=32)")
        section, dot, name = key.rpartition(".")
        if not dot:
            owners = [s for s, v in data.items() if isinstance(v, dict) and key in v]
            if len(owners) != 1:
                raise UsageError(f"--set: unknown key '{key}' (use SECTION.KEY, e.g. engine.max_num_seqs)")
            section, name = owners[0], key
        if not isinstance(data.get(section), dict):
            raise UsageError(f"--set: unknown section '{section}' in '{key}'")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        data[section][name] = value
    return from_dict(data, "--set")


def describe(args: argparse.Namespace, profile: Profile, port: int) -> str:
    """The one line printed when the server (every replica) is ready."""
    extras = [f"profile {profile.name}", f"seed {args.seed}"]
    if args.replicas > 1:
        extras.append(f"{args.replicas} replicas")
    if args.trace:
        extras.append(f"trace {args.trace}")
    if args.otlp_traces_endpoint:
        extras.append(f"spans to {args.otlp_traces_endpoint}")
    if k := profile.speculative.num_speculative_tokens:
        extras.append(f"speculative decoding K={k} p={profile.speculative.acceptance:g}")
    if args.text_only:
        extras.append("text-only")
    if lora := args.lora:
        extras.append(
            f"LoRA {','.join(lora.modules)} max_loras={lora.max_loras} load {lora.load_s * 1e3:g} ms"
        )
    return f"simserver: serving '{profile.model}' on http://{f'[{args.host}]' if ':' in args.host else args.host}:{port} ({', '.join(extras)})"


def start_exporter(url: str | None, core: EngineCore, registry: Any, labels: dict[str, str], index: int) -> SpanExporter | None:  # fmt: skip
    """With --otlp-traces-endpoint: the engine's finish hook feeds a span exporter thread."""
    if not url:
        return None
    exporter = SpanExporter(url, resource_attributes(index))
    registry.register(SpanCollector(exporter, labels))
    core.on_finish = exporter.on_finish
    exporter.start()
    return exporter


async def run(args: argparse.Namespace, profile: Profile, replica: ReplicaCtx | None = None) -> None:
    index = replica.index if replica else 0
    seed = args.seed + index
    core = EngineCore(profile, seed, lora=args.lora)
    lag = LagWindow()
    counters = ServerCounters()
    e = profile.engine
    cache_info = {
        "block_size": str(e.block_size),
        "enable_prefix_caching": str(e.enable_prefix_caching),
        "num_gpu_blocks": str(e.num_gpu_blocks),
        "kv_cache_size_tokens": str(e.num_gpu_blocks * e.block_size),
    }
    collector = EngineCollector(
        profile.model,
        core.stats,
        lag,
        lambda: Gauges(
            core.num_running,
            core.num_waiting,
            core.kv.usage(),
            counters.streams,
            counters.connections,
            core.num_deferred,
        ),
        cache_info,
        engine=index,
        lora=core.lora,
        replicated=replica is not None,
    )
    runner = EngineRunner(core, lag)
    trace: TraceWriter | None = None
    if args.trace:
        trace = TaggedTrace(args.trace, index) if replica else TraceWriter(args.trace)
    registry = make_registry(collector)
    exporter = start_exporter(args.otlp_traces_endpoint, core, registry, collector.labels, index)
    faults = FaultPicker(profile.faults.probabilities, seed)
    api = Api(
        profile,
        runner,
        registry,
        faults,
        seed,
        trace,
        args.trace_tokens,
        args.enable_per_request_metrics,
        args.return_perf_metrics,
        args.per_request_spec_decode_metrics == "summary",
        args.lora,
        Vision(args.text_only, args.mm_cache_items),
    )
    link = ReplicaLink(replica, registry, runner) if replica else None
    if link:
        link.install(api.routes)
        await link.start()
    server = await serve(args.host, args.port, api, counters, sock=replica.listen_sock if replica else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine_task = asyncio.create_task(runner.run())
    if link:
        link.ready()
    else:
        print(describe(args, profile, server.sockets[0].getsockname()[1]), file=sys.stderr, flush=True)
    # The heap after start-up never changes: keep the collector from rescanning it.
    gc.collect()
    gc.freeze()
    await stop.wait()
    server.close()
    runner.stop()
    await engine_task
    if trace:
        trace.close()
    if exporter:
        exporter.close()
    if link:
        await link.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        profile = build_profile(args)
        if args.trace:  # fail before serving, not at the first request
            with open(args.trace, "ab"):
                pass
    except (UsageError, ProfileError) as e:
        print(f"simserver: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"simserver: error: cannot open --trace {args.trace}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        if args.replicas > 1:
            return serve_set(
                args.replicas,
                args.host,
                args.port,
                lambda ctx: serve_one(args, profile, ctx),
                lambda port: describe(args, profile, port),
            )
        return serve_one(args, profile)
    except OSError as e:
        print(
            f"simserver: error: cannot listen on {args.host}:{args.port}: {e.strerror or e}", file=sys.stderr
        )
        return 2


def serve_one(args: argparse.Namespace, profile: Profile, replica: ReplicaCtx | None = None) -> int:
    """Run one engine (the server, or one replica of a set) until SIGINT/SIGTERM."""
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # uvloop is pinned, but the stdlib loop also works (with coarser timers)
        runner = asyncio.run
    try:
        runner(run(args, profile, replica))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
