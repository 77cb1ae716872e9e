"""Stop a run whose target fails systematically: one line that says why and what to check, exit code 2.

The rule (loadgen/state/failures.py) runs where every row arrives — the master or the local
runner — so it judges all workers together. When it holds, this module logs ONE line (the
category, the server's own message, what to check), records the verdict in run.json
(`outcome: "target_failing"`, `stop_reason`), and stops the run the way the shape's own end does:
the run folder closes normally and keeps every row (loadgen/run/lifecycle.py). A headless process
then exits with code 2 (lifecycle.py EXIT_CODES maps the outcome to the exit code); a web-UI run
just stops, and the form can start the next one.

`--keep-going` turns the stop off (fault-injection runs that fail on purpose): the line is
logged once as a warning and the run goes on to its end.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust.runners import WorkerRunner

from loadgen import context
from loadgen.context import RunContext
from loadgen.state.failures import Verdict

log = logging.getLogger("goodput")

_BROKEN_STREAM = (
    "the server's answers are not usable streams: check its logs, --client, and that it speaks "
    "OpenAI's streaming format (chat/completions with stream=true)"
)
HINTS = {
    "http_400": "check --model, --max-tokens against the model's context length, the dataset's extra "
    "request fields, and that the server accepts the X-Request-Id header",
    "http_401": "check the API key in ${key_env} (--api-key-env)",
    "http_403": "check the API key in ${key_env} (--api-key-env) and its rights on --model",
    "http_404": "check --host (and its path prefix, or --api-path), --model, and that the server serves "
    "the route of --api (not every server has /v1/responses, /v1/messages or a native route: try --api chat)",
    "http_422": "check --model, --max-tokens and the dataset's extra request fields",
    "http_429": "the server rate-limits this load: lower it (fewer users, a lower --rate), or pass "
    "--keep-going to measure the limiting itself",
    "connect": "nothing answers: check --host and that the server is up",
    "timeout": "nothing completes within --request-timeout: raise it, or lower the load",
    "disconnect": _BROKEN_STREAM,
    "bad_sse": _BROKEN_STREAM,
    "stream_error": _BROKEN_STREAM,
    "empty_output": "the server answers without text: check --model and --max-tokens",
}


STREAM_OPTIONS_HINT = (
    "the server refuses stream_options (OpenAI's request for token counts): pass --stream-usage off "
    "(counts then come from the chunks)"
)


MAX_TOKENS_HINT = (
    "the server wants max_completion_tokens instead of max_tokens (OpenAI's reasoning models): "
    "pass --max-tokens-field max_completion_tokens"
)


def hint(category: str, key_env: str, detail: str = "") -> str:
    """What to check for a category, or for what the server said (one clause, no trailing period)."""
    if category.startswith("http_4") and "stream_options" in detail:
        return STREAM_OPTIONS_HINT
    if category.startswith("http_4") and "max_completion_tokens" in detail:
        return MAX_TOKENS_HINT
    if category in HINTS:
        text = HINTS[category]
    elif category.startswith("http_3"):
        text = "the server redirects every request (its Location is in the message): pass that URL as --host"
    elif category.startswith("http_5"):
        text = "the server fails: check its logs (each request's X-Request-Id is in requests.csv)"
    elif category.startswith("http_4"):
        text = "the server refuses the requests: check --host, --model and the API key"
    else:
        text = "check the server's logs"
    return text.replace("{key_env}", key_env)


def stop_line(verdict: Verdict, key_env: str, keep_going: bool) -> str:
    """The one line a stop (or, with --keep-going, the warning) prints."""
    said = verdict.error_detail or "no message"
    status = f"HTTP {verdict.http_status}: " if verdict.http_status else ""
    then = (
        "--keep-going: the run goes on"
        if keep_going
        else "stopping the run (every row is kept; --keep-going runs on regardless)"
    )
    return (
        f"goodput: the target fails systematically: {verdict.describe()} ({status}{said}) — "
        f"{hint(verdict.category, key_env, verdict.error_detail)}; {then}"
    )


def on_target_failing(environment: Any, verdict: Verdict) -> None:
    """Master/local, the first time the rule holds in a run (fired from the row path: act later)."""
    ctx = context.of(environment)
    opts = environment.parsed_options
    keep_going = bool(getattr(opts, "keep_going", False))
    line = stop_line(verdict, opts.api_key_env, keep_going)
    if keep_going:
        log.warning("%s", line)
        ctx.meta["target_failing"] = verdict.to_dict()
        return
    log.error("%s", line)
    ctx.outcome = "target_failing"
    ctx.meta["stop_reason"] = verdict.to_dict()
    gevent.spawn(stop_run, environment, ctx)


def stop_run(environment: Any, ctx: RunContext) -> None:
    """End the run as the shape's own end does; headless, the process then exits with code 2."""
    runner = environment.runner
    if not getattr(environment.parsed_options, "headless", False):
        runner.stop()  # web UI: the run stops, the UI stays for the next one
        return
    shape = runner.shape_greenlet
    if shape is not None and not shape.dead:
        # Locust's headless main waits on the shape; ending it lets main stop the run and quit
        # exactly as at the shape's end (one stop, the run folder closed once, then shutdown).
        shape.kill(block=False)
    # else the shape has just ended by itself: main is already stopping the run


def install(events: Any) -> None:
    """Master/local runner: act on the rule's verdict."""

    @events.init.add_listener
    def _init(environment: Any, runner: Any, **_: Any) -> None:
        ctx = context.find(environment)
        if ctx is None or isinstance(runner, WorkerRunner):
            return
        ctx.target_failing.add_listener(lambda verdict, **__: on_target_failing(environment, verdict))
