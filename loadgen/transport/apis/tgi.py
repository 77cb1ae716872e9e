"""`--api tgi`: Text Generation Inference's native `POST /generate_stream`.

The body: `inputs` (the conversation as one prompt, base.prompt_text), `parameters`
{max_new_tokens, details: true, the dataset's temperature/top_p/top_k/stop/seed}. TGI has no
ignore-EOS parameter (router/src/lib.rs GenerateParameters; vLLM's benchmark notes the same), so
`--ignore-eos` cannot be honoured here. Each event (`data:{…}` without a space: axum's SSE) is one
generated token, `{"index", "token": {id, text, logprob, special}, "generated_text", "details"}`;
the last has `generated_text` and, because `details` was asked for, `details` {finish_reason
(length | eos_token | stop_sequence), generated_tokens, input_length} — the token counts
(`tokens_source=details`). A special token (EOS) is a generated token without answer text. No
`[DONE]`: the event with `generated_text` ends the stream. An error event is `{"error", "error_type"}`.
No reasoning field on this route: reasoning is text, TTFO undefined.
"""

from __future__ import annotations

from core.result import StreamResult
from loadgen.transport import sse
from loadgen.transport.apis.base import (
    Api,
    Prompt,
    event_object,
    fail,
    openai_usage,
    prompt_text,
    sampling,
)

FINISH = {"eos_token": "stop", "stop_sequence": "stop"}  # OpenAI's names; `length` is the same


def build(p: Prompt) -> dict:
    params = {"max_new_tokens": p.max_tokens, "details": True, **sampling(p.extra, {})}
    if p.adapter:  # a LoRA adapter of the server's LORA_ADAPTERS, by its id
        params["adapter_id"] = p.adapter
    return {"inputs": prompt_text(p.messages), "parameters": params}


def fold(res: StreamResult, event: str, data: bytes | bytearray, t: float) -> None:
    obj = event_object(res, event, data, t)
    if obj is None:
        return
    token = obj.get("token")
    if token is None:
        fail(res, sse.error_message(obj) or str(obj)[:300])
        return
    res.text_times.append(t)
    if not token.get("special"):
        res.parts.append(token.get("text") or "")
    if (details := obj.get("details")) is not None:
        fr = details.get("finish_reason") or ""
        res.finish_reason = FINISH.get(fr, fr)
        if (n := details.get("generated_tokens")) is not None:
            res.tokens_source = "details"
            res.usage = openai_usage(n, details.get("input_length"))
    if obj.get("generated_text") is not None:
        res.done = True


API = Api("tgi", "/generate_stream", build, fold, splits_reasoning=False, server="TGI", ignore_eos=False)
