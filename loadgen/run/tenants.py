"""Mixed tenants on the load path (`--mix`, workloads/mix.py): the option's check, and the users' classes.

Closed loop: each class of the mix runs as a Locust user class of its own — a subclass of the user
the class needs (`--user`, or with `auto` the agent for a multi-turn dataset, else chat/completions)
carrying its `tenant` name and weighted by its share — so Locust's dispatcher assigns the users, on
one process or spread over workers, in workloads/mix.py's `user_order`. Every process builds the
same classes from the same options (workers at each run's start), under the same names, because
the master tells workers what to spawn by class name.

Open loop: one `RateUser` per process as without a mix; each arrival draws its class
(loadgen/openloop.py, workloads/mix.py `arrival_classes`).
"""

from __future__ import annotations

from typing import Any

from core.errors import OptionError
from core.slo import Slo
from workloads.mix import Mix, MixError, TenantClass, parse_mix


def check(opts: Any, slo: Slo) -> Mix | None:
    """The run's mix (None without `--mix`), or OptionError: one line naming the class."""
    text = getattr(opts, "mix", "") or ""
    if not text.strip():
        if getattr(opts, "mix_alone", ""):
            raise OptionError("--mix-alone: needs --mix (it names one class of the mix)")
        return None
    if opts.shape == "trace":
        raise OptionError("--mix: not used with --shape trace (the trace sets every request)")
    try:
        return parse_mix(text, slo, alone=getattr(opts, "mix_alone", "") or "")
    except MixError as e:
        message = str(e)
        raise OptionError(message if message.startswith("--mix") else f"--mix: {message}") from None


def base_name(c: TenantClass, opts: Any) -> str:
    """The `--user` name a class runs as: the one given, else agent (multi-turn) or chat/completions."""
    if opts.llm_user not in ("auto", "rate"):
        return opts.llm_user
    from workloads import open_workload

    if open_workload(c.dataset, seed=opts.seed).multi_turn:
        return "agent"
    return "completions" if opts.endpoint == "completions" else "chat"


def user_classes(mix: Mix, bases: dict[str, type], opts: Any, made: dict[tuple, type]) -> list[type]:
    """One weighted Locust user class per tenant class, named `<tenant> (<Base>)` (a space sorts before
    every character a class name may hold, so Locust's name order is the tenants' name order, as
    `user_order` assumes). `made` keeps the classes across runs: the same options give the same objects."""
    out = []
    for c in mix.classes:
        base = bases[base_name(c, opts)]
        key = (c.name, c.share_pct, base)
        if key not in made:
            made[key] = type(
                f"{c.name} ({base.__name__})",
                (base,),
                {"tenant": c.name, "weight": c.share_pct, "__module__": base.__module__},
            )
        out.append(made[key])
    return out
