"""`--api-path`: servers whose OpenAI routes are not below `/v1` — Gemini's OpenAI compatibility
(`/v1beta/openai/chat/completions`, its model list beside it), Azure OpenAI's deployments (a path of
their own and an `api-version` query every request must carry, no model list there) — played by real
HTTP servers on 127.0.0.1 that answer nowhere else, through both clients and a headless run."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest

from tests.conftest import PYTHON, ROOT
from tests.support.json_server import Handler, http_server

pytestmark = pytest.mark.e2e
WORDS = ["The", " sky", " is", " blue"]


def sse(model: str) -> bytes:
    """A short chat stream as OpenAI writes one: content chunks, a usage chunk, [DONE]."""
    head = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1765000000, "model": model}
    events = [{**head, "choices": [{"index": 0, "delta": {"role": "assistant", "content": w},
                                    "finish_reason": "stop" if i == len(WORDS) - 1 else None}]}
              for i, w in enumerate(WORDS)]  # fmt: skip
    events.append(
        {**head, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}}
    )
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"


class Elsewhere(Handler):
    """Answers only at its own paths (`ROUTE`, `MODELS`); records every path asked."""

    ROUTE = ""
    MODELS: str | None = None
    MODEL = ""
    seen: ClassVar[list[str]]

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        if self.MODELS is not None and self.path == self.MODELS:
            card = {"id": self.MODEL, "object": "model", "owned_by": "google"}
            self.answer(200, json.dumps({"object": "list", "data": [card]}).encode())
        else:
            self.answer(404, b'{"error": {"code": "404", "message": "Resource not found"}}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(f"POST {self.path}")
        if self.path == self.ROUTE:
            self.answer(200, sse(self.MODEL), Content_Type="text/event-stream")
        else:
            self.answer(404, b'{"error": {"code": "404", "message": "Resource not found"}}')


class Gemini(Elsewhere):
    ROUTE, MODELS, MODEL = (
        "/v1beta/openai/chat/completions",
        "/v1beta/openai/models",
        "models/gemini-2.5-flash",
    )
    seen: ClassVar[list[str]] = []


class Azure(Elsewhere):
    ROUTE, MODEL = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21", "gpt-4o"
    seen: ClassVar[list[str]] = []


def locust(host: str, results: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [PYTHON, "-m", "locust", "-f", "locustfile.py", "--headless", "--only-summary", "--host", host,
           "--results-dir", str(results), "--shape", "none", "--server-metrics", "off", "-u", "2", "-r", "2",
           "-t", "3s", "--dataset", "chat", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def rows_of(results: Path) -> tuple[dict, list[dict]]:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    with open(run / "requests.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["error"] != "cancelled"]
    return json.loads((run / "run.json").read_text()), rows


@pytest.mark.parametrize("client", ["raw", "openai"])
def test_gemini_base_url_without_v1(tmp_path: Path, client: str) -> None:
    Gemini.seen = []
    with http_server(Gemini) as url:
        out = locust(url, tmp_path / "r", "--client", client, "--api-path", Gemini.ROUTE)
    assert out.returncode == 0, out.stderr[-3000:]
    meta, rows = rows_of(tmp_path / "r")
    assert meta["model"] == Gemini.MODEL and meta["api_path"] == Gemini.ROUTE  # the model from its list
    assert len(rows) >= 4 and all(r["ok"] == "true" and r["output_tokens"] == "4" for r in rows), rows[:2]
    assert {s for s in Gemini.seen if s.startswith("POST")} == {f"POST {Gemini.ROUTE}"}


@pytest.mark.parametrize("client", ["raw", "openai"])
def test_azure_deployment_with_its_api_version_and_no_model_list(tmp_path: Path, client: str) -> None:
    Azure.seen = []
    with http_server(Azure) as url:
        out = locust(url, tmp_path / "r", "--client", client, "--api-path", Azure.ROUTE, "--model", "gpt-4o")
    assert out.returncode == 0, out.stderr[-3000:]
    meta, rows = rows_of(tmp_path / "r")
    assert meta["api_path"] == "/openai/deployments/gpt-4o/chat/completions?api-version=…"  # no value kept
    assert len(rows) >= 4 and all(r["ok"] == "true" for r in rows), rows[:2]
    posts = {s for s in Azure.seen if s.startswith("POST")}
    assert posts == {f"POST {Azure.ROUTE}"}  # every request carried the query


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--api-path", "v1beta/openai/chat/completions"], "--api-path: 'v1beta/openai/chat/completions' must be a path on --host starting with /"),
        (["--api-path", "https://x.example/v1/chat/completions"], "is a URL: give the server's root as --host"),
        (["--client", "openai", "--api-path", "/chat"], "appends /chat/completions to its base URL, and '/chat' does not end so; use --client raw"),
        (["--api-path", "/openai/deployments/gpt-4o/chat/completions?api-version=1"], "the server lists no models beside --api-path: pass --model NAME"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    with http_server(Azure) as url:
        out = locust(url, tmp_path / "r", *args)
    errors = [line for line in out.stderr.splitlines() if "goodput: error:" in line]
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(errors) == 1 and says in errors[0], out.stderr[-2000:]


def test_a_pasted_base_url_gets_the_api_path_it_needs(tmp_path: Path) -> None:
    with http_server(Gemini) as url:
        out = locust(url + "/v1beta/openai/", tmp_path / "r")
    (error,) = [line for line in out.stderr.splitlines() if "goodput: error:" in line]
    assert out.returncode == 2
    assert f"pass --host {url} --api-path /v1beta/openai/chat/completions" in error, error
