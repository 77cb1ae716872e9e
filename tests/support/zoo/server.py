"""The zoo's HTTP/1.1 server (stdlib asyncio): it writes the exact bytes of each case, in its pieces.

    python -m tests.support.zoo.server --port 8123

Routes (a case is chosen by the URL, so any client's base URL selects it):
  POST /zoo/<case>/v1/chat/completions, /zoo/<case>/v1/completions   the case's answer (and the native
       /zoo/<case>/v1/responses, /generate, /generate_stream, /completion, /api/chat: the case says which)
  GET  /zoo/<case>/v1/models                                          one model, `zoo`
  PUT  /script/<request-id>   {"pieces": [hex, ...], "gap_s": s[, "content_type": t][, "end_delay_s": s]}
                              store an answer for that id (end_delay_s: its body's end comes that much later)
  POST /script/v1/chat/completions                                    replay the stored answer (by X-Request-Id)
  GET  /truth/<request-id>    what the server did: case, n_tokens, n_reasoning, write times, and the first
                              token's write: begun at t_first_token_unix, returned at t_first_token_written_unix
                              (the first answer token's: t_first_answer_unix, t_first_answer_written_unix);
                              peer_port: the client's port (one connection, one port)
  GET  /seen                  the id, X- and Authorization headers of every completions request
  GET  /health

Keep-alive as HTTP/1.1 servers do; chunked bodies for streams (each piece its own chunk and its own
write), Content-Length for the rest, or no framing and `Connection: close` where a case says so.
Each write is stamped (wall clock) just before it goes to the socket.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from http import HTTPStatus

from tests.support.zoo.cases import BY_NAME
from tests.support.zoo.stream import Piece, Plan

TRUTH_MAX = 20000
# the last path segment of every generation route: OpenAI chat/completions, Responses, SGLang, TGI, llama.cpp
GENERATE = frozenset(
    ("completions", "responses", "generate", "generate_stream", "completion", "chat", "messages")
)


class Zoo:
    def __init__(self) -> None:
        self.truth: dict[str, dict] = {}
        self.scripts: dict[str, Plan] = {}
        self.seen: list[dict] = []  # request-id-like headers of every completions request
        self.n = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (req := await _read_request(reader)) is not None:
                if not await self.route(*req, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def route(
        self, method: str, path: str, headers: dict, body: bytes, w: asyncio.StreamWriter
    ) -> bool:
        self.n += 1
        rid = headers.get("x-request-id") or f"zoo-{self.n}"
        parts = path.split("?", 1)[0].strip("/").split("/")
        if path == "/health":
            return await _send(w, Plan(200, [("Content-Type", "text/plain")], [Piece(b"ok")]))
        if path == "/seen":
            return await _send(w, _json(200, self.seen))
        if parts[0] == "truth" and len(parts) == 2:
            t = self.truth.get(parts[1])
            return await _send(w, _json(200, t) if t else _json(404, {"error": "no such request"}))
        if parts[0] == "script" and method == "PUT" and len(parts) == 2:
            spec = json.loads(body)
            pieces = [Piece(bytes.fromhex(h), spec.get("gap_s", 0.0)) for h in spec["pieces"]]
            plan = Plan(
                pieces=pieces, n_tokens=spec.get("n_tokens"), end_delay_s=spec.get("end_delay_s", 0.0)
            )
            if "content_type" in spec:  # an answer that is not labelled an event stream
                plan.headers = [("Content-Type", spec["content_type"])]
            self.scripts[parts[1]] = plan
            return await _send(w, Plan(204, [], []))
        if parts[0] == "script" and method == "POST":
            plan = self.scripts.pop(rid, None) or _json(404, {"error": "no script for this request id"})
            return await self.stream(w, plan, rid, "script")
        if parts[0] == "zoo" and len(parts) >= 3 and (case := BY_NAME.get(parts[1])):
            if parts[-1] == "models":
                return await _send(
                    w, _json(200, {"object": "list", "data": [{"id": "zoo", "object": "model"}]})
                )
            if method == "POST" and parts[-1] in GENERATE:
                if len(self.seen) < TRUTH_MAX:
                    self.seen.append({k: v for k, v in headers.items() if _recorded(k)})
                return await self.stream(w, case.plan(headers), rid, case.name)
        return await _send(w, _json(404, {"error": f"no route for {method} {path}"}))

    async def stream(self, w: asyncio.StreamWriter, plan: Plan, rid: str, case: str) -> bool:
        truth = {"case": case, "status": plan.status, "n_tokens": plan.n_tokens, "n_reasoning": plan.n_reasoning,
                 "t_first_token_unix": None, "t_first_answer_unix": None, "writes_unix": [],
                 "peer_port": (w.get_extra_info("peername") or ("", 0))[1]}  # fmt: skip
        if len(self.truth) >= TRUTH_MAX:
            self.truth.clear()
        self.truth[rid] = truth
        return await _send(w, plan, truth)


def _recorded(name: str) -> bool:
    """The headers /seen keeps: request ids, X- headers and Authorization (what a client adds)."""
    return "id" in name.split("-") or name.startswith("x-") or name == "authorization"


def _json(status: int, obj: object) -> Plan:
    return Plan(status, [("Content-Type", "application/json")], [Piece(json.dumps(obj).encode())])


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            k, v = k.strip().lower(), v.strip()
            headers[k] = f"{headers[k]}, {v}" if k in headers else v  # repeated: combined (RFC 9110 §5.3)
    n = int(headers.get("content-length") or 0)
    return method, path, headers, await reader.readexactly(n) if n else b""


async def _send(w: asyncio.StreamWriter, plan: Plan, truth: dict | None = None) -> bool:
    """Write the answer; True when the connection stays open for the next request."""
    streaming = any(
        k.lower() == "content-type" and ("event-stream" in v or "ndjson" in v) for k, v in plan.headers
    )
    head = [
        f"HTTP/1.1 {plan.status} {HTTPStatus(plan.status).phrase}",
        *(f"{k}: {v}" for k, v in plan.headers),
    ]
    if plan.close:
        head.append("Connection: close")
    elif streaming:
        head.append("Transfer-Encoding: chunked")
    else:
        body = b"".join(p.data for p in plan.pieces)
        head.append(f"Content-Length: {len(body)}")
    w.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    if not streaming and not plan.close:
        w.write(body)
        await w.drain()
        return True
    for piece in plan.pieces:
        if piece.delay_s:
            await asyncio.sleep(piece.delay_s)
        data = piece.data if plan.close else b"%x\r\n%b\r\n" % (len(piece.data), piece.data)
        t = time.time()
        w.write(data)  # asyncio hands it to the socket now when nothing is queued before it
        t_after = time.time()
        if truth is not None:
            truth["writes_unix"].append(t)
            if piece.first:
                truth["t_first_token_unix"], truth["t_first_token_written_unix"] = t, t_after
            if piece.answer:
                truth["t_first_answer_unix"], truth["t_first_answer_written_unix"] = t, t_after
        await w.drain()
    if plan.close:
        return False
    if plan.end_delay_s:
        await asyncio.sleep(plan.end_delay_s)
    w.write(b"0\r\n\r\n")
    await w.drain()
    if plan.hangup:  # the close comes a moment later, after the client's next request is on its way
        await asyncio.sleep(0.2)
        return False
    return True


async def serve(host: str, port: int) -> None:
    zoo = Zoo()
    server = await asyncio.start_server(zoo.handle, host, port, limit=1 << 20)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
