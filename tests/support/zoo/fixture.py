"""The zoo server for a test module (one process each), and what tests ask it."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from loadgen.transport import arrival
from loadgen.transport.client import RawTransport
from tests.conftest import PYTHON, Proc, free_port, start, wait_http

BODY = {"model": "zoo", "max_tokens": 16, "stream": True, "stream_options": {"include_usage": True}}


def zoo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A module fixture's body: `zoo = pytest.fixture(scope="module")(zoo_server)`."""
    port = free_port()
    p = start(
        [PYTHON, "-m", "tests.support.zoo.server", "--port", str(port)],
        tmp_path_factory.mktemp("zoo") / "zoo.log",
    )
    try:
        p.url = f"http://127.0.0.1:{port}"
        wait_http(p.url + "/health", proc=p.popen)
        _warm_kernel_stamps(p.url)
        yield p
    finally:
        p.stop()


def _warm_kernel_stamps(url: str) -> None:
    """Linux turns receive stamping on a moment after the first socket asks: stream until reads carry it."""
    t = RawTransport(f"{url}/zoo/vllm", None)
    try:
        for _ in range(20):
            before = len(arrival.READ_LAGS)
            t.stream("/v1/chat/completions", dict(BODY, messages=[]), {}, 10.0)
            if not arrival.KERNEL_STAMPS or len(arrival.READ_LAGS) > before:
                return
    finally:
        t.close()


def truth(url: str, rid: str) -> dict:
    with urllib.request.urlopen(f"{url}/truth/{rid}", timeout=5) as r:
        return json.loads(r.read())
