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


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
_ENV_PROXIES = urllib.request.build_opener(_NoRedirect)


def opener_like(client: str) -> urllib.request.OpenerDirector:
    """Goodput's own requests to the target go the way the load does.

    The raw client connects directly and never reads HTTP(S)_PROXY; urllib does. A check or scrape
    that went through a proxy the load bypasses would call a reachable server unreachable (a dead
    proxy in a shell's environment) or measure another path. The openai SDK honours those
    variables (and NO_PROXY), so with `--client openai` the check and the scrape do too. Neither
    follows a redirect: the target check stops on one (loadgen/run/target.py says why).
    """
    return _ENV_PROXIES if client == "openai" else _DIRECT
