"""`--api llamacpp`: llama.cpp's native `POST /completion` (llama-server).

The body: `prompt` (the conversation as one prompt, base.prompt_text), `n_predict`, `stream: true`,
`ignore_eos` when asked, the dataset's temperature/top_p/top_k/stop/seed under the same names
(tools/server/README.md). Each event (`data: {…}`; server-task.cpp `to_json_non_oaicompat`) is
`{"index", "content", "tokens", "stop": false, …}` per generated token — a token whose bytes do not
yet complete a character may come with `content: ""`, so an event counts when it has content or
`tokens`; the last is `stop: true` with `stop_type` (eos | word | limit), `tokens_evaluated` (the
prompt) and `timings` {cache_n, prompt_n, predicted_n, prompt_ms, predicted_ms, …}: the token
counts (`tokens_source=timings`) and the slot's own prefill and decode times (`engine_*_s`). No
`[DONE]` on this route (server.cpp sends it only for the OpenAI-compatible ones): the `stop: true`
event ends the stream. An error is `{"error": {code, message,
type}}`. No reasoning field on this route: reasoning is text, TTFO undefined. The real server's
stream: tests/fixtures/llamacpp-completion-stream.txt.
"""

from __future__ import annotations

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.apis.base import (
    Api,
    Prompt,
    event_object,
    fail,
    llamacpp_timings,
    openai_usage,
    prompt_text,
    sampling,
)

FINISH = {"eos": "stop", "word": "stop", "limit": "length"}  # OpenAI's names


def build(p: Prompt) -> dict:
    body: dict = {"prompt": prompt_text(p.messages), "n_predict": p.max_tokens, "stream": True}
    if p.ignore_eos:
        body["ignore_eos"] = True
    body.update(sampling(p.extra, {}))
    return body


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    content = obj.get("content")
    if content is None:
        fail(res, sse.error_message(obj) or str(obj)[:300])
        return
    if content or obj.get("tokens"):
        res.text_times.append(t)
        res.parts.append(content)
    if obj.get("stop"):
        res.done = True
        st = obj.get("stop_type") or ""
        res.finish_reason = FINISH.get(st, st)
        timings = obj.get("timings") or {}
        n = timings.get("predicted_n", obj.get("tokens_predicted"))
        if n is not None:
            res.tokens_source = "timings"
            res.usage = openai_usage(n, obj.get("tokens_evaluated"), timings.get("cache_n"))
        llamacpp_timings(res, timings)


API = Api("llamacpp", "/completion", build, fold, splits_reasoning=False, server="llama.cpp")
