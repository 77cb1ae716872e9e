"""Goodput's Locust entry point: `locust -f locustfile.py --host http://HOST:PORT [options]`.

Wires the user classes, the load shape (`--shape`, step ramp by default), Goodput's options and
its event listeners. Only the selected user class runs (`--user`, or automatic from the dataset).
"""

from locust import events

import shapes
import users.options  # noqa: F401  (registers the command-line options)
from shapes import GoodputShape  # noqa: F401  (Locust picks up the one shape class)
from users import scaleout, selfmon, servermetrics, webauth, webui
from users.agent import AgentUser
from users.chat import ChatUser, CompletionsUser
from users.rate import RateUser
from users.setup import install

install(events, {"chat": ChatUser, "agent": AgentUser, "completions": CompletionsUser, "rate": RateUser})
shapes.install(events)  # after the spine: stage bookkeeping and open-loop stats
scaleout.install(events)  # master: workers' heartbeats → run.json per_worker, lost rows
webui.install(events)  # web UI: LLM tabs, /llm charts page, /llm/stats feed
webauth.install(events)  # web UI: --web-login (password from the environment), bind warning
selfmon.install(events)  # every load process: event-loop lag, CPU → run.json loadgen, saturation
servermetrics.install(events)  # master/local: engine /metrics → server_metrics.csv, run.json
