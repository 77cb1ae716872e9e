"""Target URLs: what a target or /metrics URL must look like, and its form without credentials."""

from __future__ import annotations

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
