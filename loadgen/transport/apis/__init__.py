"""The server APIs Goodput speaks (`--api`): one module each, listed here once.

Adding an API is adding one module with `build` and `fold` (loadgen/transport/apis/base.py says
what they do) and its line below.
"""

from __future__ import annotations

import dataclasses

from loadgen.transport.apis import chat, completions, llamacpp, messages, ollama, responses, sglang, tgi
from loadgen.transport.apis.base import Api, Prompt

APIS: dict[str, Api] = {
    m.API.name: m.API for m in (chat, completions, responses, messages, sglang, tgi, llamacpp, ollama)
}
BY_PATH: dict[str, Api] = {a.path: a for a in APIS.values()}
SDK_APIS = tuple(name for name, a in APIS.items() if a.sdk)  # what `--client openai` can send

__all__ = ["APIS", "BY_PATH", "SDK_APIS", "Api", "Prompt", "chosen", "resolve"]


def resolve(api: Api | str) -> Api:
    """An `Api`, or the one served at a path (`/v1/chat/completions`) or named (`chat`)."""
    if isinstance(api, Api):
        return api
    found = BY_PATH.get(api) or APIS.get(api)
    if found is None:
        raise ValueError(f"unknown API {api!r} (known: {', '.join(APIS)})")
    return found


def chosen(api: str | None, endpoint: str | None, path: str | None = None) -> Api:
    """The API of `--api` or of its alias `--endpoint` (chat when neither is given), served at
    `path` (`--api-path`) when one is given instead of its own route.

    ValueError when both are given and differ, or a name is unknown (the option checks turn it into
    one line naming the option)."""
    if api and endpoint and api != endpoint:
        raise ValueError(
            f"--api {api} and --endpoint {endpoint} disagree: --endpoint is an alias of --api, give one"
        )
    name = api or endpoint or "chat"
    if name not in APIS:
        raise ValueError(f"unknown API {name!r}; expected one of {', '.join(APIS)}")
    return dataclasses.replace(APIS[name], path=path) if path else APIS[name]
