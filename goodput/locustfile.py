"""Goodput's Locust composition: the user classes, the one shape class, and the plugins in the order
their listeners must run (the lifecycle first: it creates the context every other plugin uses; stages
after it: the run folder must exist before the first stage is recorded). Each plugin's module says
what it does; README.md § "How it fits together" walks the whole path.

Locust loads it as the checkout's `locustfile.py` (which re-exports it) or, installed, through the
`goodput` command (goodput/cli.py), which passes this file to Locust.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout (or site-packages), any cwd

from locust import events

import loadgen.run.options  # noqa: F401  (registers the command-line options)
from loadgen import openloop
from loadgen.live import console, sampler, webauth, webui
from loadgen.monitors import selfmon, servermetrics, spans
from loadgen.run import failstop, lifecycle, scaleout, stages
from loadgen.state import collector
from shapes import GoodputShape  # noqa: F401  (Locust picks up the one shape class)
from users.agent import AgentUser
from users.chat import ChatUser, CompletionsUser
from users.rate import RateUser

USER_CLASSES = {"chat": ChatUser, "agent": AgentUser, "completions": CompletionsUser, "rate": RateUser}

lifecycle.install(events, USER_CLASSES)  # first: builds the RunContext; owns the run's start and end
PLUGINS = (
    stages,  # the shape's levels → the current stage on every process, run.json's stages
    openloop,  # open-loop generator figures: workers → master → run.json
    scaleout,  # master: workers' heartbeats → run.json per_worker, lost rows; signals
    failstop,  # master/local: a target failing systematically stops the run (exit 2)
    sampler,  # master/local: the live figures every 2 s (after the lifecycle's reset at test_start)
    console,  # headless: the LLM table every 10 s
    webui,  # web UI: LLM tabs, /llm charts page, /llm/stats feed
    webauth,  # web UI: --web-login (password from the environment), bind warning
    selfmon,  # every load process: event-loop lag, CPU → run.json loadgen, saturation
    collector,  # every load process: rare garbage collections, none over what lives for the run
    servermetrics,  # master/local: engine /metrics → server_metrics.csv, run.json
    spans,  # master/local: --otlp-listen, the engine's per-request spans → server_spans.csv, run.json
)
for plugin in PLUGINS:
    plugin.install(events)
