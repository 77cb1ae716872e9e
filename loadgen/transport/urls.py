"""Target URLs: what a target or /metrics URL must look like, its form without credentials, and the
way Goodput's own requests (the target check, the /metrics scrape) reach it."""

from __future__ import annotations

import urllib.request
from urllib.parse import parse_qsl, urlsplit, urlunsplit

OPENAI_ROOT = "/v1"  # where OpenAI-compatible servers serve the API, below the server's root


def is_http_url(url: str) -> bool:
    """An http(s) URL with a host and, if any, a numeric port: what a target or /metrics URL must be."""
    try:
        u = urlsplit(url)
        _ = u.port  # a malformed port raises here, not in urlsplit
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.hostname)


def safe_url(url: str) -> str:
    """The URL without userinfo: credentials never reach run.json or a report."""
    try:
        u = urlsplit(url)
        port = u.port  # a malformed port raises here, not in urlsplit
    except ValueError:
        return ""
    host = u.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if port:
        host = f"{host}:{port}"
    return urlunsplit((u.scheme, host, u.path, "", ""))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect comes back as the 3xx it is (an HTTPError), as it does to the raw client."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _opener(direct: bool, follow: bool) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [] if follow else [_NoRedirect()]
    if direct:
        handlers.append(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener(*handlers)


_OPENERS = {(direct, follow): _opener(direct, follow) for direct in (True, False) for follow in (True, False)}


def opener_like(client: str, follow_redirects: bool = False) -> urllib.request.OpenerDirector:
    """Goodput's own requests to the target go the way the load does.

    The raw client connects directly and never reads HTTP(S)_PROXY; urllib does. A check or scrape
    that went through a proxy the load bypasses would call a reachable server unreachable (a dead
    proxy in a shell's environment) or measure another path. The openai SDK honours those
    variables (and NO_PROXY), so with `--client openai` the check and the scrape do too. The
    target check sees a redirect as the 3xx it is and stops on it (loadgen/run/target.py says why);
    the scrape follows one (a `/metrics` → `/metrics/` redirect times nothing).
    """
    return _OPENERS[client != "openai", follow_redirects]


def sdk_tail(sdk: str) -> str:
    """The path the openai SDK appends to its base URL for a resource: `chat.completions` →
    `/chat/completions`."""
    return "/" + sdk.replace(".", "/")


def split_query(path: str) -> tuple[str, dict[str, str]]:
    """`/p?api-version=1` → (`/p`, {"api-version": "1"})."""
    u = urlsplit(path)
    return u.path, dict(parse_qsl(u.query))


def openai_base(path: str, sdk: str | None) -> str | None:
    """The OpenAI base path of a request path (`/v1beta/openai/chat/completions` → `/v1beta/openai`):
    what lies before the resource the SDK appends; None when the path does not end with it (or the
    API has no SDK resource)."""
    if sdk is None:
        return None
    bare = urlsplit(path).path
    tail = sdk_tail(sdk)
    return bare[: -len(tail)] if bare.endswith(tail) else None


def models_path(path: str, sdk: str | None) -> str:
    """Where the model list is asked: beside an OpenAI route (`/v1beta/openai/models`, the route's
    query kept: an api-version), else OpenAI's own `/v1/models` (a native route's server, vLLM's and
    SGLang's, lists them there)."""
    base = openai_base(path, sdk)
    if base is None:
        return OPENAI_ROOT + "/models"
    query = urlsplit(path).query
    return base + "/models" + (f"?{query}" if query else "")


def api_path_problem(path: str) -> str | None:
    """What is wrong with an `--api-path` (None when nothing: an absolute path, a query allowed)."""
    if not path:
        return None
    if "://" in path or path.startswith("//"):
        return "is a URL: give the server's root as --host and the path alone here"
    if not path.startswith("/") or any(c.isspace() for c in path) or "#" in path:
        return "must be a path on --host starting with / (e.g. /v1beta/openai/chat/completions)"
    return None


def shown_path(path: str) -> str:
    """An --api-path as run.json records it: its query's names, never their values (one may be a key)."""
    bare, query = split_query(path)
    return bare + ("?" + "&".join(f"{k}=…" for k in query) if query else "")
