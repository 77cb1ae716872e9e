"""The start form and the end of a run in Locust's web UI (static/form.js does the page side).

Locust shows plugin options in one alphabetical heap, labelled with their dest and `--help` text.
The page script regroups Goodput's fields by the table this module sends (core/optgroups.py: the
headings, labels and help of `--help`), says under the user-count and ramp fields whether the
chosen load shape uses them — by asking `/llm/form/shape`, which applies shapes/options.py's rule to
the form's values, so the page never re-implements it — and, after STOP, shows the run folder and
the command that analyses it (`/llm/run`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request

from core.errors import OptionError
from core.optgroups import form_fields
from loadgen import context
from loadgen.output.runfolder import analyse_command
from shapes import TITLES, build_schedule
from shapes.options import shape_and_why


def camel(name: str) -> str:
    """A field's name on Locust's form (its React app camel-cases the option's dest)."""
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def form_config(parser: Any) -> dict:
    """window.templateArgs.goodput_form: Goodput's fields in display order, with their form names."""
    return {"fields": [{**f, "field": camel(f["name"])} for f in form_fields(parser)]}


def form_options(opts: Any, form: Mapping[str, str]) -> Any:
    """A copy of the options with the form's values, converted as Locust's /swarm converts them."""
    out = copy.copy(opts)
    for key, text in form.items():
        if not hasattr(out, key):
            continue
        current = getattr(opts, key)
        try:
            value = (
                (text == "true")
                if isinstance(current, bool)
                else text
                if current is None
                else type(current)(text)
            )
        except ValueError:
            raise OptionError(f"--{key.replace('_', '-')}: '{text}' is not a number") from None
        setattr(out, key, value)
    out.goodput_users_given = False  # on the form, the user count is used only by --shape none
    return out


def shape_answer(opts: Any, form: Mapping[str, str]) -> dict:
    """The shape the form's values select, whether it uses the user count and ramp, or the error."""
    try:
        o = form_options(opts, form)
        name, why = shape_and_why(o)
    except OptionError as e:
        return {"shape": None, "uses_users": False, "note": "", "error": str(e)}
    error = ""
    try:
        build_schedule(o)
    except OptionError as e:
        error = str(e)
    return {"shape": name, "uses_users": name == "none", "note": shape_note(name, why, o), "error": error}


def shape_note(name: str, why: str, o: Any) -> str:
    """One sentence for under the user-count and ramp fields."""
    head = f"Load shape: {TITLES[name]} ({why})"
    if name == "none":
        return f"{head}: Number of users and Ramp up set the load."
    detail = {
        "step": f"+{o.step_users} users every {o.step_interval}"
        + (f" up to {o.max_users}" if o.max_users else ""),
        "rate": f"{o.rate:g} requests/s, open loop, one sender per load process",
        "stages": "the stages list sets the users or the rate of each stage",
        "sweep": f"{o.sweep_stages} rates between synchronous and saturation, {o.sweep_stage_duration} each",
        "trace": "the trace's timestamps set the arrivals",
    }[name]
    return f"{head}: {detail}. Number of users and Ramp up are not used."


def last_run(environment: Any) -> dict:
    """Where the latest run went, once its folder is closed (the page shows it after STOP)."""
    ctx = context.of(environment)
    run_dir, meta = ctx.run_dir, ctx.meta
    closed = run_dir is not None and ctx.sink is None and "rows_received" in meta
    return {
        "state": environment.runner.state,
        "run_id": ctx.run_id,
        "run_dir": str(run_dir) if closed else "",
        "rows": meta.get("rows_received") if closed else None,
        "outcome": meta.get("outcome") if closed else None,
        "analyse": analyse_command(run_dir) if closed and run_dir is not None else "",
    }


def add_routes(bp: Blueprint, guard: Callable, environment: Any) -> None:
    @bp.route("/llm/form/shape")
    @guard
    def llm_form_shape() -> Response:
        return jsonify(shape_answer(environment.parsed_options, request.args))

    @bp.route("/llm/run")
    @guard
    def llm_run() -> Response:
        return jsonify(last_run(environment))
