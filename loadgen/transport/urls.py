"""Target URLs: what a target or /metrics URL must look like, its form without credentials, and the
way Goodput's own requests (the target check, the /metrics scrape) reach it."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit, urlunsplit


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
