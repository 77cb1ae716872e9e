"""POST /v1/responses: OpenAI's Responses API as vLLM serves it (vllm serving_responses.py).

A stream is typed SSE events, `event: TYPE` + `data: {"type": TYPE, "sequence_number": N, …}`,
no [DONE]: response.created and response.in_progress as soon as the request is accepted (before
the engine runs, as vLLM sends them), then per output item response.output_item.added, its deltas
and its *.done events — a reasoning item (response.reasoning_text.delta per reasoning token, the
event vLLM and gpt-oss use for raw reasoning) and a message item (response.content_part.added,
response.output_text.delta per token, response.output_text.done, response.content_part.done) —
and last response.completed with usage (input_tokens_details.cached_tokens,
output_tokens_details.reasoning_tokens). A response cut by max_output_tokens ends, as in vLLM,
with response.completed whose status is "incomplete" (incomplete_details.reason
"max_output_tokens"). Tools are not offered on this route (function_call items are not simulated).
A message's `input_image` parts (`image_url`, a data URL) are its images, in place (simserver/images.py).
"""

from __future__ import annotations

from typing import Any

import orjson

from simserver.answer import REASONING, Answer
from simserver.images import ImageItem, url_part
from simserver.reqparse import ApiError, GenRequest, check_lengths, check_model, get_bool, get_int
from simserver.tokenizer import VOCAB_JSON, VOCAB_TEXT, chat_tokens
from simserver.wire import Emit, Reply, Tally, Wire, answer_metrics, frame, joined_json

DELTA = b'event: %b\ndata: {"type":"%b","sequence_number":%d,"item_id":"%b","output_index":%d,"content_index":0,"delta":%b%b}\n\n'  # fmt: skip
RS_DELTA, TEXT_DELTA = b"response.reasoning_text.delta", b"response.output_text.delta"
NO_LOGPROBS = b',"logprobs":[]'
PARTS = ("input_text", "output_text", "text", "input_image")


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`input` (a string or a list of messages) and `instructions` as chat messages."""
    raw = body.get("input")
    if isinstance(raw, str):
        items: list[Any] = [{"role": "user", "content": raw}]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise ApiError(400, "'input' must be a non-empty string or a list of messages", "input")
    out: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise ApiError(400, "'instructions' must be a string", "instructions")
        out.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type", "message") != "message" or "role" not in item:
            raise ApiError(400, f"input[{i}] must be a message {{role, content}}", "input")
        content = item.get("content")
        if isinstance(content, list):
            content = [_part(p) for p in content if isinstance(p, dict) and p.get("type") in PARTS]
        out.append({"role": item["role"], "content": content})
    return out


def _part(p: dict[str, Any]) -> dict[str, Any]:
    """A text part, or an `input_image` (its `image_url`, a data URL: simserver/images.py) as chat's."""
    if p.get("type") != "input_image":
        return {"type": "text", "text": p.get("text")}
    if p.get("image_url") is None and p.get("file_id") is not None:
        raise ApiError(
            400, "an input_image by file_id is not supported: send its image_url (a data URL)", "input"
        )
    return url_part(p.get("image_url"))


def parse_responses(body: dict[str, Any], model: str, max_model_len: int) -> GenRequest:
    check_model(body, model)
    images: list[ImageItem] = []
    try:
        prompt = chat_tokens(_messages(body), images)
    except ValueError as e:
        raise ApiError(400, str(e), "input") from None
    given = get_int(body, "max_output_tokens", None)
    max_tokens = given if given is not None else max_model_len - len(prompt)  # vLLM's default
    check_lengths(prompt, max_tokens, 0, max_model_len, "max_output_tokens", "input")
    opts = {"instructions": body.get("instructions"), "max_output_tokens": max_tokens}
    return GenRequest(prompt, max_tokens, stream=get_bool(body, "stream"), opts=opts, images=tuple(images))


class ResponsesWire(Wire):
    def __init__(self, reply: Reply, answer: Answer, opts: dict[str, Any]) -> None:
        self.resp_id, self.created, self.model = reply.id, reply.created, reply.model
        self.answer, self.opts = answer, opts
        self.reply = (
            reply  # vLLM's `metrics` in the final response (per-request timing, speculative decoding)
        )
        self.rs_id, self.msg_id = f"rs_{reply.id[5:]}", f"msg_{reply.id[5:]}"
        self.seqno = -1
        self.reasoning: list[int] = []
        self.text: list[int] = []

    # -- events -----------------------------------------------------------------------------------
    def _ev(self, kind: str, **data: Any) -> bytes:
        self.seqno += 1
        payload = orjson.dumps({"type": kind, "sequence_number": self.seqno, **data})
        return b"event: %b\ndata: %b\n\n" % (kind.encode(), payload)

    def _response(self, status: str, output: list[Any], usage: Any, incomplete: Any = None) -> dict[str, Any]:
        """vLLM's ResponsesResponse fields, in its order."""
        return {
            "id": self.resp_id,
            "created_at": self.created,
            "incomplete_details": incomplete,
            "instructions": self.opts.get("instructions"),
            "metadata": None,
            "model": self.model,
            "object": "response",
            "output": output,
            "parallel_tool_calls": True,
            "temperature": 1.0,
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "background": False,
            "max_output_tokens": self.opts.get("max_output_tokens"),
            "max_tool_calls": None,
            "previous_response_id": None,
            "prompt": None,
            "reasoning": None,
            "service_tier": "auto",
            "status": status,
            "text": None,
            "top_logprobs": None,
            "truncation": "disabled",
            "usage": usage,
            "user": None,
        }

    def _reasoning_item(self, status: str) -> dict[str, Any]:
        content = [{"text": _text(self.reasoning), "type": "reasoning_text"}] if status == "completed" else []
        return {"id": self.rs_id, "summary": [], "type": "reasoning", "content": content, "encrypted_content": None, "status": status}  # fmt: skip

    def _part(self) -> dict[str, Any]:
        return {"annotations": [], "text": _text(self.text), "type": "output_text", "logprobs": []}

    def _message(self, status: str) -> dict[str, Any]:
        content = [self._part()] if status == "completed" else []
        return {
            "id": self.msg_id,
            "content": content,
            "role": "assistant",
            "status": status,
            "type": "message",
        }

    def _done(self, tally: Tally) -> tuple[bytes, dict[str, Any]]:
        usage = {
            "input_tokens": tally.prompt_tokens,
            "input_tokens_details": {"cached_tokens": tally.cached_tokens},
            "output_tokens": tally.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": tally.reasoning_tokens},
            "total_tokens": tally.prompt_tokens + tally.completion_tokens,
        }
        output = ([self._reasoning_item("completed")] if self.reasoning else []) + (
            [self._message("completed")] if self.text or not self.reasoning else []
        )
        if tally.finish == "length":
            resp = self._response("incomplete", output, usage, {"reason": "max_output_tokens"})
        else:
            resp = self._response("completed", output, usage)
        if (metrics := answer_metrics(self.reply, self.seq, tally)) is not None:  # after `user`, as vLLM
            resp["metrics"] = metrics
        return self._ev("response.completed", response=resp), resp

    # -- Wire ----------------------------------------------------------------------------------------
    def open(self) -> list[bytes]:
        resp = self._response("in_progress", [], None)
        return [self._ev("response.created", response=resp), self._ev("response.in_progress", response=resp)]

    def enter(self, phase: int, n: int) -> tuple[list[bytes], Emit]:
        if phase == REASONING:
            events = [
                self._ev(
                    "response.output_item.added", output_index=0, item=self._reasoning_item("in_progress")
                )
            ]
        else:
            events = self._close_reasoning() if self.reasoning else []
            out = 1 if self.reasoning else 0
            events.append(
                self._ev("response.output_item.added", output_index=out, item=self._message("in_progress"))
            )
            part = {"annotations": [], "text": "", "type": "output_text", "logprobs": []}
            where = {"item_id": self.msg_id, "output_index": out, "content_index": 0}
            events.append(self._ev("response.content_part.added", **where, part=part))
        return events, Emit(
            fmt=lambda _n, index: frame(self._delta(phase, index)),
            many=lambda _n, indices: frame(self._deltas(phase, indices)),
        )

    def _delta(self, phase: int, index: int) -> bytes:
        """One token's delta event; the token also joins the item's text."""
        self.seqno += 1
        if phase == REASONING:
            self.reasoning.append(index)
            return DELTA % (RS_DELTA, RS_DELTA, self.seqno, self.rs_id.encode(), 0, VOCAB_JSON[index], b"")
        self.text.append(index)
        out = 1 if self.reasoning else 0
        return DELTA % (
            TEXT_DELTA,
            TEXT_DELTA,
            self.seqno,
            self.msg_id.encode(),
            out,
            VOCAB_JSON[index],
            NO_LOGPROBS,
        )

    def _deltas(self, phase: int, indices: list[int]) -> bytes:
        """A speculative step's tokens as one delta event (their text together)."""
        self.seqno += 1
        text = joined_json(indices)
        if phase == REASONING:
            self.reasoning.extend(indices)
            return DELTA % (RS_DELTA, RS_DELTA, self.seqno, self.rs_id.encode(), 0, text, b"")
        self.text.extend(indices)
        out = 1 if self.reasoning else 0
        return DELTA % (TEXT_DELTA, TEXT_DELTA, self.seqno, self.msg_id.encode(), out, text, NO_LOGPROBS)

    def _close_reasoning(self) -> list[bytes]:
        where = {"item_id": self.rs_id, "output_index": 0, "content_index": 0}
        done = self._ev("response.reasoning_text.done", **where, text=_text(self.reasoning))
        return [
            done,
            self._ev("response.output_item.done", output_index=0, item=self._reasoning_item("completed")),
        ]

    def final(self, phase: int, n: int, indices: list[int], tally: Tally) -> list[bytes]:
        events = [self._deltas(phase, indices)]
        if phase == REASONING:
            events += self._close_reasoning()
        else:
            out = 1 if self.reasoning else 0
            where = {"item_id": self.msg_id, "output_index": out, "content_index": 0}
            events.append(self._ev("response.output_text.done", **where, text=_text(self.text), logprobs=[]))
            events.append(self._ev("response.content_part.done", **where, part=self._part()))
            events.append(
                self._ev("response.output_item.done", output_index=out, item=self._message("completed"))
            )
        return [*events, self._done(tally)[0]]

    def empty(self, tally: Tally) -> list[bytes]:
        return [self._done(tally)[0]]

    def body(self, indices: list[int], tally: Tally) -> bytes:
        r, _ = self.answer.split(len(indices))
        self.reasoning, self.text = indices[:r], indices[r:]
        resp = self._done(tally)[1]
        return orjson.dumps(resp)


def _text(indices: list[int]) -> str:
    return "".join(VOCAB_TEXT[i] for i in indices)
