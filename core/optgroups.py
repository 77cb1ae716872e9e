"""How Goodput's options are declared: under a heading per theme, with a label for the web form.

Locust lists every plugin option in one heap, in `--help` and on the web UI's start form alike.
Goodput's options are many, so each one is declared with `add_option`: it goes under its group's
heading in `--help` (argparse argument groups, created here in the order below: most important
first) and carries a short label and its group for the start form, which
loadgen/live/webui/ regroups in the same order. The argparse parser is duck-typed: no third-party
import here.

Locust's own `include_in_web_ui` keyword exists only on its parser's `add_argument`, not on an
argument group's (Locust issue #2560): `add_option` sets the same attributes on the action, which
is all Locust reads when it builds the start form.
"""

from __future__ import annotations

from typing import Any

# (key, heading): the order of the headings in --help and of the sections of the start form.
GROUPS: tuple[tuple[str, str], ...] = (
    ("target", "Goodput: target and model"),
    ("workload", "Goodput: workload"),
    ("shape", "Goodput: load shape"),
    ("slo", "Goodput: SLO and stopping"),
    ("output", "Goodput: output and monitors"),
    ("web", "Goodput: web UI login"),
)
TITLES = dict(GROUPS)


def group_of(parser: Any, key: str) -> Any:
    """The argument group for `key`; the first call creates every group, in GROUPS order."""
    if key not in TITLES:
        raise KeyError(f"unknown option group {key!r} (expected one of {', '.join(TITLES)})")
    existing = {g.title: g for g in parser._action_groups}
    if TITLES[GROUPS[0][0]] not in existing:
        for _, title in GROUPS:
            existing[title] = parser.add_argument_group(title)
    return existing[TITLES[key]]


def add_option(parser: Any, group: str, *flags: str, label: str, web: bool = False, **kwargs: Any) -> Any:
    """Declare one option under `group`'s heading; `web=True` puts it on Locust's start form."""
    action = group_of(parser, group).add_argument(*flags, **kwargs)
    action.include_in_web_ui = web
    action.is_secret = action.is_required = action.is_multiple = False
    action.goodput_group = group
    action.goodput_label = label
    return action


def form_fields(parser: Any) -> list[dict]:
    """The start form's Goodput fields in display order: group by group, each in declaration order."""
    order = {k: i for i, (k, _) in enumerate(GROUPS)}
    fields = [
        {
            "name": a.dest,
            "group": a.goodput_group,
            "heading": TITLES[a.goodput_group].removeprefix("Goodput: "),
            "label": a.goodput_label,
            "help": (a.help or "").replace("%%", "%"),
            "flag": max(a.option_strings, key=len),
        }
        for a in parser._actions
        if getattr(a, "goodput_group", None) and getattr(a, "include_in_web_ui", False)
    ]
    return sorted(fields, key=lambda f: order[f["group"]])  # stable: declaration order within a group
