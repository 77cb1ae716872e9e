"""A tiny real HTTP server that lists a model and refuses every request at once: the target that fails.

    python -m tests.support.refusing_server --port 8000 [--status 400] [--retry-after 1]

`GET /v1/models` lists one model (so Goodput's target check passes), `GET /health` answers 200,
`GET /count` says how many POSTs arrived; every `POST` gets `--status` with an OpenAI-style error
body (and `Retry-After` when asked) as soon as its body is read. Keep-alive, like a real server, so
a client that does not pause can send thousands of requests a second. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "refused-model"
MESSAGE = "The model `nope` does not exist."


class State:
    def __init__(self, status: int, retry_after: str) -> None:
        self.status = status
        self.retry_after = retry_after
        self.posts = 0
        self.lock = threading.Lock()


def handler_for(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 1 << 16  # headers and body leave in one write (flushed after each request) …
        disable_nagle_algorithm = True  # … at once: no delayed-ACK stall between requests

        def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/v1/models"):
                self._send(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            elif self.path == "/count":
                self._send(200, {"requests": state.posts})
            elif self.path == "/health":
                self._send(200, {"ok": True})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.posts += 1
            headers = {"Retry-After": state.retry_after} if state.retry_after else {}
            err = {"message": MESSAGE, "type": "BadRequestError", "code": state.status}
            self._send(state.status, {"error": err}, headers)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--status", type=int, default=400)
    p.add_argument("--retry-after", default="", help="Retry-After header value (seconds or an HTTP date)")
    args = p.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), handler_for(State(args.status, args.retry_after)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
