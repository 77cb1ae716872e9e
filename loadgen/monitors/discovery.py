"""Replicas found by DNS: `--server-metrics dns+http://NAME:PORT/metrics` scrapes every address NAME has.

A Kubernetes headless Service (`clusterIP: None`) answers its name with one A record per ready pod,
the way Prometheus' `dns_sd_configs` finds its targets; listing pod IPs by hand goes stale the moment
a pod restarts. The name is resolved again before every scrape round: an address that appears gets
its own source (`instance` = `IP:PORT`, as for a listed URL), one that disappears stops being scraped
and keeps its counts in run.json. A failed lookup keeps the addresses already known (counted,
warned once); up to `MAX_URLS` sources in all.

Only `dns+http`: over TLS each pod's certificate names the Service, not the address scraped.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from core.errors import OptionError

log = logging.getLogger("goodput")

SCHEME = "dns+http"
Resolver = Callable[[str, int], list[str]]


def is_dns(value: str) -> bool:
    return value.lower().startswith(("dns+http://", "dns+https://"))  # https: refused with a reason


def lookup(name: str, port: int) -> list[str]:
    """NAME's addresses (A and AAAA), each once, in the resolver's order (gevent's resolver under Locust)."""
    infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class DnsName:
    """One `dns+http://NAME:PORT/PATH`: the scrape URL of each of NAME's addresses, as of its last lookup."""

    def __init__(self, value: str, resolver: Resolver = lookup) -> None:
        u = urlsplit(value)
        shown = "the value" if "@" in u.netloc else value  # never echo credentials
        if u.scheme.lower() != SCHEME:
            raise OptionError(
                f"--server-metrics: '{shown}': only dns+http:// is looked up (over TLS each pod's certificate "
                "names the Service, not the address scraped)"
            )
        try:
            port = u.port
        except ValueError:
            port = None
        if not u.hostname or port is None or "@" in u.netloc:
            raise OptionError(
                f"--server-metrics: '{shown}' is not dns+http://NAME:PORT/PATH (a name, a port, no credentials)"
            )
        self.value, self.name, self.port, self.path = value, u.hostname, port, u.path or "/metrics"
        self.resolver = resolver
        self.addresses: list[str] = []
        self.failures = 0
        self.last_error = ""

    def url_of(self, address: str) -> tuple[str, str]:
        """(scrape URL, `instance` label) of one address (an IPv6 one in brackets)."""
        host = f"[{address}]" if ":" in address else address
        netloc = f"{host}:{self.port}"
        return urlunsplit(("http", netloc, self.path, "", "")), netloc

    def resolve(self) -> list[str]:
        """The addresses now; on a failed lookup the last ones known (the failure counted, warned once)."""
        try:
            found = self.resolver(self.name, self.port)
        except OSError as e:
            self.failures += 1
            if not self.last_error:
                log.warning(
                    "goodput: server metrics: looking up %s failed (%s); the addresses known are still scraped",
                    self.name,
                    e,
                )
            self.last_error = " ".join(str(e).split())[:160] or type(e).__name__
            return self.addresses
        self.addresses = found
        return found

    def counts(self) -> dict:
        """Its line in run.json `server_metrics.lookups`."""
        return {
            "url": self.value,
            "addresses": list(self.addresses),
            "failures": self.failures,
            "last_error": self.last_error,
        }
