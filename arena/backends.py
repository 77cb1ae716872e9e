"""A target's backends: the engine replicas a router target stands in front of.

A router policy is a configuration like any other (round robin against cache-aware routing over the
same replicas is the question an operator of several engines asks), but its cell needs more than one
process: `backends: {replicas: N, simserver: … | launch: …}` starts N copies of one engine command,
each on its own free port and each polled healthy, before the target's own command (the router),
which takes their URLs through `{backends}`. A fresh set per cell, like any launched target, so no
replica's prefix cache or the router's own tree carries from one cell into the next.

A replica's command and `env` take `{replica}` beside the usual placeholders: its index, 0, 1, … — one
GPU each with `env: {CUDA_VISIBLE_DEVICES: "{replica}"}`, or apart cores for CPU engines.

Placeholders the router's command (and its `server_metrics`) can use beyond the usual ones:
`{backends}` — as a whole argument, one argument per replica URL (`--worker-urls {backends}`);
inside a longer one, the URLs joined by commas; `{backend_metrics}` — each replica's `/metrics`,
joined by commas (for `--server-metrics`); `{metrics_port}` — a second free port, for a router
that serves its own metrics page apart from its API (vllm-router's and the SGLang gateway's
`--prometheus-port`).
"""

from __future__ import annotations

from dataclasses import dataclass

from arena.places import Ctx, MatrixError, get_int, get_launched, get_str

BACKEND_KEYS = ("replicas", "launch", "simserver", "env", "health", "startup_timeout", "engine")
MAX_REPLICAS = 64  # the load path's --server-metrics takes at most 64 pages
SPREAD = "backends"  # the placeholder a whole argument of which becomes one argument per replica URL
ROUTER_ONLY = ("backends", "backend_metrics")


@dataclass(frozen=True)
class Backends:
    """N replicas of one engine command; `launch` keeps its builtins (`{port}`, …) for each replica's start."""

    replicas: int
    launch: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    health: str = "/health"
    startup_timeout_s: float = 120.0
    engine: str = ""

    def command(self, values: dict[str, str]) -> list[str]:
        return [tok.format_map(values) for tok in self.launch]

    def environment(self, values: dict[str, str]) -> dict[str, str]:
        return {k: v.format_map(values) for k, v in self.env}


def parse(ctx: Ctx, t: dict, name: str) -> dict | None:
    """The checked `backends:` mapping of target `t` (None: it has none); its command is built by the
    caller with the target's own launch rules, so both take the same `simserver:` shorthand."""
    node = t.get("backends")
    if node is None:
        return None
    where = f"{name}.backends"
    ctx.keys(node, BACKEND_KEYS, where)
    if get_int(ctx, node, "replicas", where + ".replicas", 2, 1) > MAX_REPLICAS:
        raise MatrixError(f"{ctx.at(node, 'replicas', where + '.replicas')}: at most {MAX_REPLICAS} replicas")
    if sum(k in node for k in ("launch", "simserver")) != 1:
        raise MatrixError(f"{ctx.at(node, None, where)}: give exactly one of launch, simserver")
    if "launch" not in t:
        raise MatrixError(
            f"{ctx.at(t, 'backends', where)}: backends need a router in front of them: give the target a "
            "launch command that takes {backends}"
        )
    get_launched(ctx, node, where)  # checked here, before the grid is expanded
    return node


def build(ctx: Ctx, node: dict, name: str, launch: tuple[str, ...], env: tuple, engine: str) -> Backends:
    """The replicas' spec once their command is built (`launch`, `env` with grid values filled)."""
    where = f"{name}.backends"
    _, health, timeout = get_launched(ctx, node, where)
    return Backends(
        replicas=node.get("replicas", 2),
        launch=launch,
        env=env,
        health=health,
        startup_timeout_s=timeout,
        engine=get_str(ctx, node, "engine", where + ".engine") or engine,
    )


def check_router(ctx: Ctx, t: dict, name: str, used: set[str], metrics_used: set[str]) -> None:
    """A router target must take its backends; a target without backends cannot name them."""
    where = ctx.at(t, "launch", f"{name}.launch")
    if "backends" in t and SPREAD not in used:
        raise MatrixError(f"{where}: the router's command must take its replicas' URLs: add {{{SPREAD}}}")
    if "backends" not in t:
        named = sorted((used | metrics_used) & set(ROUTER_ONLY))
        if named:
            raise MatrixError(f"{where}: {{{named[0]}}} needs a backends: entry (the replicas to start)")


def spread(tokens: tuple[str, ...] | list[str], values: dict[str, str], urls: list[str]) -> list[str]:
    """A command's tokens filled: a token that is exactly `{backends}` becomes one token per URL."""
    out: list[str] = []
    for tok in tokens:
        if tok == "{" + SPREAD + "}":
            out += urls
        else:
            out.append(tok.format_map(values))
    return out
