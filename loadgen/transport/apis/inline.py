"""Reasoning written inline in the answer's text, by a server that streams a reasoning model's
output without its reasoning parser: what `answer` (base.py) hands here to tell thinking from answer.

Three shapes are known, each told apart only at the answer's start (or, for the second, by its
closing tag), so an answer that merely mentions them is left alone:
- `<think>` … `</think>` (Qwen3, QwQ, DeepSeek-R1 on vLLM or SGLang without `--reasoning-parser`);
  or only `</think>`, when the chat template opened the block in the prompt (DeepSeek-R1-0528);
- gpt-oss's harmony channels with their markers kept (llama-server `--reasoning-format none`, servers
  without a harmony parser): `<|channel|>analysis<|message|>…<|end|><|start|>assistant<|channel|>
  final<|message|>…`, each marker usually a chunk of its own (one special token);
- the same with the markers dropped as special tokens (`/v1/completions`, a server decoding with
  `skip_special_tokens`): `analysis…assistantfinal…`.
In each, TTFO becomes the first token of the answer proper, as with a server-side parser; chunks
sent before a marker that only its end reveals (an opening in the prompt, the bare harmony form)
move from the answer to reasoning when it comes.
"""

from __future__ import annotations

from core.result import StreamResult

# `StreamResult.think`: where the answer's text stands against inline reasoning.
UNSEEN, THINK_OPEN, OVER, HARMONY, HARMONY_BARE = 0, 1, 2, 3, 4
OPEN_TAG, CLOSE_TAG = "<think>", "</think>"
HARMONY_HEADS = ("<|channel|>", "<|start|>")  # the answer opens with a channel header
HARMONY_FINAL = "<|channel|>final<|message|>"  # the header of the answer proper
BARE_HEAD, BARE_FINAL = "analysis", "assistantfinal"  # the same with the special tokens dropped


def inline_reasoning(res: StreamResult, text: str, t: float) -> bool:
    """True when `text` (one chunk of answer text) was reasoning; any answer after the marker that
    ends the reasoning is kept as the answer's first chunk."""
    state = res.think
    if state == UNSEEN:
        if res.t_first_answer is None:
            head = text.lstrip()
            if head.startswith(OPEN_TAG):
                res.think = THINK_OPEN
                res.reasoning_parts.append(OPEN_TAG)  # the tag is a token of the reasoning (a count's)
                return _think_block(res, head[len(OPEN_TAG) :], t)
            if head.startswith(HARMONY_HEADS):
                res.think = HARMONY
                return _until(res, text, HARMONY_FINAL, t)
            if head.startswith(BARE_HEAD):
                res.think = HARMONY_BARE
                return _until(res, text, BARE_FINAL, t)
        if CLOSE_TAG not in text:
            return False  # the word, not a tag at the answer's start: answer text
        _answer_was_reasoning(res)
        res.think = THINK_OPEN
        return _think_block(res, text, t)
    if state == THINK_OPEN:
        return _think_block(res, text, t)
    return _until(res, text, HARMONY_FINAL if state == HARMONY else BARE_FINAL, t)


def _think_block(res: StreamResult, text: str, t: float) -> bool:
    if CLOSE_TAG not in text:
        res.reasoning_chunks += 1
        res.reasoning_parts.append(text)
        return True
    _over(res, text, text.partition(CLOSE_TAG)[2], t)
    return True


def _until(res: StreamResult, text: str, marker: str, t: float) -> bool:
    """Harmony: reasoning until `marker`, which may arrive split over chunks (the last few characters
    are kept to find it). The bare form is provisional answer text until its marker shows: a model
    whose answer merely starts with the word keeps it."""
    seen = res.markup_tail + text
    at = seen.find(marker)
    if at < 0:
        res.markup_tail = seen[-(len(marker) - 1) :]
        if res.think == HARMONY_BARE:
            return False
        res.reasoning_chunks += 1
        res.reasoning_parts.append(text)
        return True
    if res.think == HARMONY_BARE:
        _answer_was_reasoning(res)
    res.markup_tail = ""
    _over(res, text, seen[at + len(marker) :], t)
    return True


def _answer_was_reasoning(res: StreamResult) -> None:
    """The chunks taken as answer so far turn out to have been reasoning."""
    res.reasoning_chunks += len(res.parts)
    res.reasoning_parts.extend(res.parts)
    res.parts.clear()
    res.t_first_answer = None


def _over(res: StreamResult, text: str, after: str, t: float) -> None:
    """The chunk `text` that ends the reasoning: itself reasoning up to the marker's end, with any
    answer `after` it (a suffix of `text`)."""
    res.think = OVER
    res.reasoning_chunks += 1
    if head := text[: len(text) - len(after)]:
        res.reasoning_parts.append(head)
    if after:
        res.parts.append(after)
        res.t_first_answer = t
