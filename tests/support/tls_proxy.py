"""A TLS-terminating proxy: HTTPS in front of a plain-HTTP server, as an ingress puts it before vLLM.

    python -m tests.support.tls_proxy --port 8443 --upstream-port 8000 --cert chain.pem --key key.pem

Each client connection is decrypted and its bytes are passed to a fresh connection to the upstream
on 127.0.0.1, unchanged both ways (HTTP/1.1, keep-alive and streaming as the upstream does them),
so what reaches the client is the upstream's stream, only encrypted. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
from collections.abc import Callable


async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until the source ends, then end the other side (a closed upstream closes the client's connection)."""
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        dst.close()


def no_delay(writer: asyncio.StreamWriter) -> None:
    """Each token's write leaves at once, as the upstream's does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def relay(port: int, upstream: Callable[[], int], ctx: ssl.SSLContext | None = None) -> None:
    """Serve `port` on 127.0.0.1 until killed, each connection piped to the port `upstream()` names
    (decrypted first with `ctx`)."""

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            u_reader, u_writer = await asyncio.open_connection("127.0.0.1", upstream())
        except OSError:
            c_writer.close()
            return
        no_delay(c_writer)
        no_delay(u_writer)
        await asyncio.gather(pipe(c_reader, u_writer), pipe(u_reader, c_writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve(port: int, upstream_port: int, cert: str, key: str) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    relay(port, lambda: upstream_port, ctx)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--cert", required=True, help="the server's certificate chain (PEM)")
    ap.add_argument("--key", required=True, help="its private key (PEM)")
    a = ap.parse_args()
    serve(a.port, a.upstream_port, a.cert, a.key)
