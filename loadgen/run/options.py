"""Goodput's command-line options (the load shapes' own are in shapes/options.py), registered on
Locust's parser under Goodput's headings (core/optgroups.py); `web=True` ones are on the start form.
"""

from __future__ import annotations

from typing import Any

from locust import events

from core.optgroups import add_option
from loadgen.transport.apis import APIS


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    _target(parser)
    _workload(parser)
    _slo_and_output(parser)


def _target(parser: Any) -> None:
    add_option(
        parser,
        "target",
        "--model",
        label="Model",
        web=True,
        default="",
        help="Model name; default: the first id of the target's /v1/models",
    )
    add_option(
        parser,
        "target",
        "--models",
        label="Models (LoRA adapters)",
        web=True,
        default="",
        metavar="NAME[:SHARE%],…",
        help="Several models in one run, mostly LoRA adapters beside their base model: each conversation "
        "names one, by its seeded hash (a,b,c: equal shares; a:70%%,b:30%%); rows say which (`model`)",
    )
    add_option(
        parser,
        "target",
        "--client",
        label="Transport",
        web=True,
        default="raw",
        choices=["raw", "openai"],
        help="raw: Goodput's SSE client (default, cheap, honest stamps); openai: the openai SDK",
    )
    add_option(
        parser,
        "target",
        "--api",
        label="Server API",
        web=True,
        default="",
        choices=list(APIS),
        help="chat (default), completions, responses, messages (Anthropic), or the native routes sglang, tgi, llamacpp, ollama",
    )
    add_option(
        parser,
        "target",
        "--api-path",
        label="API path",
        web=True,
        default="",
        metavar="/PATH",
        help="Where requests go on --host instead of the API's own route, for servers that serve it "
        "elsewhere, e.g. /v1beta/openai/chat/completions (Gemini), /chat/completions; may carry a "
        "?query (an api-version). The model list is asked beside it (/models)",
    )
    add_option(
        parser,
        "target",
        "--endpoint",
        label="Endpoint (alias of --api)",
        default="",
        choices=["chat", "completions"],
        help="Alias of --api (chat or completions), kept for older command lines",
    )
    add_option(
        parser,
        "target",
        "--api-key-env",
        label="API key variable",
        web=True,
        default="OPENAI_API_KEY",
        help="Name of the environment variable holding the API key (default OPENAI_API_KEY)",
    )
    add_option(
        parser,
        "target",
        "--request-id-header",
        label="Request id header",
        web=True,
        default="X-Request-Id",
        help="Header carrying each request's id (a UUIDv7; default X-Request-Id); none: send no id header",
    )
    add_option(
        parser,
        "target",
        "--session-header",
        label="Session header",
        web=True,
        default="none",
        help="Header carrying each conversation's id, as a session-aware client sends it (e.g. X-Session-Id: "
        "a router's consistent hashing keeps a session on one replica); none (default): no session header",
    )
    add_option(
        parser,
        "target",
        "--stream-usage",
        label="Ask for usage",
        web=True,
        default="on",
        choices=["on", "off"],
        help="on (default): ask for the server's token counts (stream_options.include_usage); "
        "off: for gateways that refuse that parameter (counts then come from the chunks)",
    )
    add_option(
        parser,
        "target",
        "--tokenizer",
        label="Tokenizer",
        web=True,
        default="",
        metavar="PATH|MODEL",
        help="Count output tokens with the model's tokenizer where the server states no count (a "
        "tokenizer.json, a model folder, or a model id in the local Hugging Face cache); else chunks count",
    )
    add_option(
        parser,
        "target",
        "--max-tokens-field",
        label="Output cap field",
        web=True,
        default="max_tokens",
        choices=["max_tokens", "max_completion_tokens"],
        help="The chat request field that carries --max-tokens: max_tokens (default) or "
        "max_completion_tokens (OpenAI's reasoning models refuse max_tokens)",
    )
    add_option(
        parser,
        "target",
        "--header",
        label="Extra header",
        action="append",
        default=None,
        metavar="'NAME: VALUE'",
        help="An extra header on every request (repeatable), e.g. 'X-Api-Key: $GATEWAY_KEY': "
        "a $VAR value is read from the environment, and only names reach run.json",
    )
    add_option(
        parser,
        "target",
        "--request-timeout",
        label="Request timeout",
        web=True,
        default="120s",
        help="A request not finished by then is recorded as timeout (default 120s)",
    )


def _workload(parser: Any) -> None:
    add_option(
        parser,
        "workload",
        "--dataset",
        label="Dataset",
        web=True,
        default="chat",
        help="Built-in set (chat, agentic, random, code, shared-prefix), a file, or a spec",
    )
    add_option(
        parser,
        "workload",
        "--max-tokens",
        label="Max output tokens",
        web=True,
        type=int,
        default=256,
        help="Max output tokens per request (default 256)",
    )
    add_option(
        parser,
        "workload",
        "--ignore-eos",
        label="Ignore EOS",
        web=True,
        action="store_true",
        default=False,
        help="Ask the server to ignore EOS and generate max tokens (vLLM/SGLang)",
    )
    add_option(
        parser,
        "workload",
        "--user",
        dest="llm_user",
        label="User class",
        web=True,
        default="auto",
        choices=["auto", "chat", "agent", "completions", "rate"],
        help="auto: agent for multi-turn datasets, rate for open-loop shapes, else chat",
    )
    add_option(
        parser,
        "workload",
        "--mix",
        label="Tenant mix",
        web=True,
        default="",
        help="Mixed tenants instead of --dataset: DATASET:SHARE%%[:slo=SLO][:name=NAME],… or a YAML file "
        "(README.md § Mixed tenants)",
    )
    add_option(
        parser,
        "workload",
        "--mix-alone",
        label="Mix class alone",
        default="",
        metavar="CLASS",
        help="Run only this class of --mix, at 100 %% (the class alone: the interference view's reference)",
    )
    add_option(
        parser,
        "workload",
        "--order",
        label="Request order",
        web=True,
        default="shuffled",
        choices=["shuffled", "sequential", "grouped", "interleaved"],
        help="Request order",
    )
    add_option(
        parser,
        "workload",
        "--think-time",
        label="Think time",
        web=True,
        default="0s",
        help="AgentUser pause between turns (e.g. 2s)",
    )
    add_option(
        parser,
        "workload",
        "--seed",
        label="Seed",
        web=True,
        type=int,
        default=0,
        help="Seed of the request stream (the same seed replays the same requests)",
    )


def _slo_and_output(parser: Any) -> None:
    add_option(
        parser,
        "slo",
        "--slo",
        label="SLO",
        web=True,
        default="chat",
        help="SLO profile name, YAML file, or ttft=500ms,tpot=50ms,e2e=20s (default chat)",
    )
    add_option(
        parser,
        "slo",
        "--keep-going",
        label="Keep going when the target fails",
        web=True,
        action="store_true",
        default=False,
        help="Run to the end even when the target fails systematically (fault-injection runs)",
    )
    add_option(
        parser,
        "output",
        "--run-name",
        label="Run name",
        web=True,
        default="run",
        help="Prefix of the run folder's name (default run)",
    )
    add_option(
        parser,
        "output",
        "--results-dir",
        label="Results folder",
        web=True,
        default="results",
        help="Where run folders go (default results/, under the current directory)",
    )
