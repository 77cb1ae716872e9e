"""A layer-4 load balancer: one port in front of several servers, each new connection to the next one.

    python -m tests.support.l4_balancer --port 8000 --upstream-ports 8001,8002

What a Kubernetes Service (kube-proxy) or a TCP load balancer does in front of a server's replicas:
connections are spread round robin and a keep-alive connection stays on its replica, bytes passed
unchanged both ways (tests/support/tls_proxy.py's pipe, without TLS). The replicas' own /metrics stay
on their own ports, which is why a run scrapes each of them (`--server-metrics URL,URL`).
Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

from tests.support.tls_proxy import no_delay, pipe


def serve(port: int, upstream_ports: list[int]) -> None:
    turn = itertools.cycle(upstream_ports)

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", next(turn))
        except OSError:
            c_writer.close()
            return
        no_delay(c_writer)
        no_delay(u_writer)
        await asyncio.gather(pipe(c_reader, u_writer), pipe(u_reader, c_writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-ports", required=True, help="comma-separated ports on 127.0.0.1")
    a = ap.parse_args()
    serve(a.port, [int(p) for p in a.upstream_ports.split(",")])
