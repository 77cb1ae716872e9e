"""Goodput's command-line options, registered on Locust's parser so the web UI start form shows them too."""

from __future__ import annotations

from locust import events


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:
    # Locust's web-UI flag (include_in_web_ui) exists only on the parser itself, not on argument groups.
    g = parser
    g.add_argument(
        "--model", default="", help="Model name; default: the first id of /v1/models", include_in_web_ui=True
    )
    g.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        help="Max output tokens per request (default 256)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--ignore-eos", action="store_true", default=False, help="Ask the server to ignore EOS (vLLM/SGLang)"
    )
    g.add_argument(
        "--dataset",
        default="chat",
        help="Built-in set (chat, agentic, random, code, shared-prefix) or a path",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--order",
        default="shuffled",
        choices=["shuffled", "sequential", "grouped", "interleaved"],
        help="Request order",
    )
    g.add_argument(
        "--user",
        dest="llm_user",
        default="auto",
        choices=["auto", "chat", "agent", "completions", "rate"],
        help="User class; auto picks agent for multi-turn datasets",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--endpoint",
        default="chat",
        choices=["chat", "completions"],
        help="OpenAI endpoint for single-shot users",
    )
    g.add_argument("--think-time", default="0s", help="AgentUser pause between turns (e.g. 2s)")
    g.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Seed of the request stream (reproducible)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--slo",
        default="chat",
        help="SLO profile name, YAML file, or ttft=500ms,tpot=50ms,e2e=20s",
        include_in_web_ui=True,
    )
    g.add_argument("--run-name", default="run", help="Run folder name prefix", include_in_web_ui=True)
    g.add_argument("--results-dir", default="results", help="Where run folders go (default results/)")
    g.add_argument(
        "--request-timeout", default="120s", help="Per-request timeout (default 120s)", include_in_web_ui=True
    )
    g.add_argument(
        "--keep-going",
        action="store_true",
        default=False,
        help="Run to the end even when the target fails systematically (fault-injection runs)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="Name of the environment variable holding the API key"
    )
    g.add_argument(
        "--request-id-header",
        default="X-Request-Id",
        help="Header carrying each request's id (a UUIDv7; default X-Request-Id); none: send no id header",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--client",
        default="raw",
        choices=["raw", "openai"],
        help="Transport: raw SSE (default, cheap) or the openai SDK",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--shape",
        default="step",
        choices=["step", "stages", "sweep", "trace", "search", "none"],
        help="Load shape (default step); none = plain -u/-r; search = capacity search (--search-*)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--step-users",
        type=int,
        default=1,
        help="StepShape: users added per step (default 1)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--step-interval",
        default="10s",
        help="StepShape: time between steps (default 10s)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--max-users",
        type=int,
        default=0,
        help="StepShape: cap on users (0 = no cap)",
        include_in_web_ui=True,
    )
    g.add_argument(
        "--step-duration", default="10m", help="StepShape: total length when -t is not given (default 10m)"
    )
