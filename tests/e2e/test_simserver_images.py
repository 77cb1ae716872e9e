"""The simulated engine's image routes as a client meets them (`python -m simserver` on 127.0.0.1):
a 512×512 picture adds Qwen2-VL's 326 prompt tokens on every route, the refusals (a remote URL, data
that is not an image, a text-only model in vLLM's words), vLLM's multimodal cache counters, and a
history's picture found in the prefix cache. The bodies are the unit tests' (each route's form)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.traces import traced
from tests.unit.simserver.test_images import MODEL, ROUTES, b64, chat, data_url, jpeg, messages, ollama

pytestmark = [pytest.mark.e2e]


class Client:
    """`post` and `page` against one running engine."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        req = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def page(self) -> str:
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()


@pytest.fixture
def engine(sim_server) -> Callable[..., Client]:
    return lambda *argv: Client(sim_server(*argv).url)


@pytest.fixture
def sim(engine: Callable[..., Client]) -> Client:
    return engine()


# -- every route counts them -------------------------------------------------------------------------


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_512_image_adds_326_prompt_tokens_on_every_route(sim: Client, route: str) -> None:
    path, body, prompt_tokens = ROUTES[route]
    status, text_only = sim.post(path, body(None))
    assert status == 200, text_only
    status, with_image = sim.post(path, body(data_url(jpeg(512, 512))))
    assert status == 200, with_image
    assert prompt_tokens(with_image) == prompt_tokens(text_only) + 326


def test_chat_takes_the_image_url_as_a_plain_string_too(sim: Client) -> None:
    status, body = sim.post("/v1/chat/completions", chat(data_url(jpeg(1000, 300)), as_string=True))
    _, text = sim.post("/v1/chat/completions", chat(None))
    assert status == 200 and body["usage"]["prompt_tokens"] == text["usage"]["prompt_tokens"] + 398


# -- refusals ----------------------------------------------------------------------------------------


def test_a_remote_url_is_a_400_that_says_only_data_urls_are_taken(sim: Client) -> None:
    status, body = sim.post("/v1/chat/completions", chat("https://example.com/cat.jpg"))
    assert status == 400 and body["error"]["type"] == "BadRequestError"
    assert "only as data URLs" in body["error"]["message"] and "fetches nothing" in body["error"]["message"]
    remote = {"type": "image", "source": {"type": "url", "url": "http://example.com/cat.jpg"}}
    status, body = sim.post(
        "/v1/messages", {**messages(None), "messages": [{"role": "user", "content": [remote]}]}
    )
    assert status == 400 and "only as data URLs" in body["error"]["message"]


@pytest.mark.parametrize(
    "url, says",
    [
        ("data:image/jpeg;base64,@@not base64@@", "not valid base64"),
        (
            "data:image/jpeg;base64," + b64(b"plain text, no picture"),
            "Failed to load image: the data is not an image",
        ),
        ("data:image/jpeg,rawbytes", "only base64 data URLs"),
    ],
)
def test_an_image_that_cannot_be_read_is_a_400_that_says_why(sim: Client, url: str, says: str) -> None:
    status, body = sim.post("/v1/chat/completions", chat(url))
    assert status == 400 and says in body["error"]["message"], body
    status, body = sim.post("/api/chat", {**ollama(None), "messages": [{"role": "user", "content": "x", "images": ["@@"]}]})  # fmt: skip
    assert status == 400 and "base64" in body["error"]


def test_a_text_only_model_refuses_images_in_vllm_words(engine: Callable[..., Client]) -> None:
    e = engine("--text-only")
    for route, (path, body, _) in ROUTES.items():
        status, answer = e.post(path, body(data_url(jpeg(64, 64))))
        assert status == 400, route
        assert f"{MODEL} is not a multimodal model" in json.dumps(answer), (route, answer)
        assert e.post(path, body(None))[0] == 200, route


# -- vLLM's multimodal cache, the prefix cache, the trace -------------------------------------------


def counter(page: str, name: str) -> float:
    line = next(x for x in page.splitlines() if x.startswith(name + "{"))
    assert 'engine="0"' in line and f'model_name="{MODEL}"' in line
    return float(line.rsplit(" ", 1)[1])


def test_mm_cache_counts_every_image_a_query_and_a_repeat_a_hit(engine: Callable[..., Client]) -> None:
    e = engine()
    page = e.page()  # shown from the start, 0, as vLLM shows them (also for a text-only model)
    assert (
        counter(page, "vllm:mm_cache_queries_total") == 0 and counter(page, "vllm:mm_cache_hits_total") == 0
    )
    for _ in range(2):
        assert e.post("/v1/chat/completions", chat(data_url(jpeg(256, 256))))[0] == 200
    page = e.page()
    assert (
        counter(page, "vllm:mm_cache_queries_total") == 2 and counter(page, "vllm:mm_cache_hits_total") == 1
    )
    assert "# TYPE vllm:mm_cache_hits_total counter" in page


def test_a_second_turn_resending_the_image_hits_the_prefix_cache(
    engine: Callable[..., Client], tmp_path: Path
) -> None:
    trace = tmp_path / "trace.jsonl"
    e = engine("--trace", str(trace))
    first = chat(data_url(jpeg(512, 512, (10, 120, 10))))
    status, one = e.post("/v1/chat/completions", first)
    assert status == 200 and one["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    history = [
        *first["messages"],
        one["choices"][0]["message"],
        {"role": "user", "content": "And its colour?"},
    ]
    status, two = e.post("/v1/chat/completions", {**first, "messages": history})
    assert status == 200, two
    assert two["usage"]["prompt_tokens_details"]["cached_tokens"] >= 326
    lines = traced(trace, count=2)
    assert [x["images"] for x in lines] == [1, 1]
    assert lines[0]["prompt_tokens"] == one["usage"]["prompt_tokens"]
