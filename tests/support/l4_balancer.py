"""A layer-4 load balancer: one port in front of several servers, each new connection to the next one.

    python -m tests.support.l4_balancer --port 8000 --upstream-ports 8001,8002

What a Kubernetes Service (kube-proxy) or a TCP load balancer does in front of a server's replicas:
connections are spread round robin and a keep-alive connection stays on its replica, bytes passed
unchanged both ways (tests/support/tls_proxy.py's relay, without TLS). The replicas' own /metrics stay
on their own ports, which is why a run scrapes each of them (`--server-metrics URL,URL`).
Standard library only.
"""

from __future__ import annotations

import argparse
import itertools

from tests.support.tls_proxy import relay


def serve(port: int, upstream_ports: list[int]) -> None:
    turn = itertools.cycle(upstream_ports)
    relay(port, lambda: next(turn))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-ports", required=True, help="comma-separated ports on 127.0.0.1")
    a = ap.parse_args()
    serve(a.port, [int(p) for p in a.upstream_ports.split(",")])
