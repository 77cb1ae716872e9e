"""`--api completions`: OpenAI's `POST /v1/completions` (vLLM, SGLang, llama.cpp, TensorRT-LLM).

The conversation goes as one plain prompt (base.prompt_text). Events are `data: {text_completion}`
with the text in `choices[0].text`; `usage` as for chat (TensorRT-LLM types that chunk
`chat.completion.chunk`: only its fields are read). Servers parse reasoning on the chat route only
(vLLM's reasoning parser, SGLang's separate_reasoning), so here reasoning is text: TTFO and reasoning
tokens are undefined.
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
    openai_body,
    prompt_text,
    usage_timing,
)


def build(p: Prompt) -> dict:
    return openai_body(p, prompt=prompt_text(p.messages))


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    choices = obj.get("choices")
    if choices:
        choice = choices[0]
        text = choice.get("text")
        if text:
            res.text_times.append(t)
            res.parts.append(text)
        if fr := choice.get("finish_reason"):
            res.finish_reason = fr
            llamacpp_timings(res, obj.get("timings"))  # llama-server, no usage chunk: on the last one
    elif msg := sse.error_message(obj):
        fail(res, msg)
        return
    if usage := obj.get("usage"):
        res.usage = usage
        usage_timing(res, obj)  # llama-server's timings or vLLM's metrics, beside the usage


API = Api("completions", "/v1/completions", build, fold, splits_reasoning=False, sdk="completions",
          server="OpenAI-compatible servers")  # fmt: skip
