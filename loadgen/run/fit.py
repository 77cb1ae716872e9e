"""Will the workload's requests fit the server's context? Checked before a run, against the context
length the server gives (serverfacts.py: vLLM's and SGLang's `max_model_len` in `/v1/models`,
OpenRouter's `context_length`, llama-server's `/props`).

A request whose prompt and `max_tokens` together exceed the context is refused (HTTP 400: SGLang,
OpenAI, vLLM before its renderer clamped max_tokens) or has its answer cut short to fit (vLLM 0.32
clamps max_tokens to what is left; a prompt longer than the context is refused everywhere). Either
way a dataset with a few long prompts runs with those requests failing or shortened, and the figures
describe the others.

Prompt lengths are Goodput's token estimate (core/tokens.py: ±25 % of a model's tokenizer on prose,
more on code or a small vocabulary; the chat template adds a few tokens per message), scaled to the
server's own count where it counts prompts (vLLM's `/tokenize`, llama-server's
`/v1/chat/completions/input_tokens`, SGLang's `/tokenize` on the text): the longest prompts are counted there
and the ratio applied to every request (the test engine's tokenizer gives 3× the estimate on random
words). A request near the limit may still go either way: the check warns with the counts; only a
certainty stops the run — every request's output cap larger than the context of a server that
refuses one (vLLM: "max_tokens=N cannot be greater than max_model_len=M"; llama-server accepts it
and generates until its context is full, which the warning says).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import OptionError
from loadgen.run.serverfacts import Context
from workloads.images import count_images, image_kinds, without_images

CALIBRATION_PROMPTS = 16  # the longest requests counted by the server's tokenizer, when it has one
NEAR, EXACT_NEAR_LIMIT = 0.1, 64  # then up to 64 requests within 10 % of the context counted there too
MIN_SAMPLES = 4  # a ratio from fewer (a server that stopped answering) is not trusted

Counter = Callable[[list[dict]], "int | None"]


@dataclass(frozen=True)
class Fit:
    """One dataset against the server's context: how many of its requests would not fit."""

    dataset: str
    context: int  # the server's context length, tokens
    source: str  # where the server said it (serverfacts.py)
    requests: int  # the dataset's requests (one pass)
    over: int  # requests whose prompt + output cap exceed `context`
    longest_prompt: int  # the longest such prompt, tokens (0: none over)
    its_cap: int  # that request's output cap
    scale: float | None = None  # the server's tokens per estimated token (None: Goodput's estimate)
    sampled: int = 0  # prompts the server counted (for `scale`, and near the limit)
    # the workload's pictures: the server's prompt tokens per picture (its count of a request with its
    # pictures less its count without them), None where the server could not say; 0 pictures: no images
    pictures: int = 0
    picture_tokens: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "requests": self.requests,
            "over": self.over,
            "longest_prompt_tokens": self.longest_prompt,
            "its_max_tokens": self.its_cap,
            "tokens_per_estimated_token": self.scale,
            "prompts_counted_by_server": self.sampled,
            "pictures": self.pictures,
            "tokens_per_picture": self.picture_tokens,
        }

    @property
    def counted_by(self) -> str:
        if self.scale is None:
            text = "Goodput's estimate"
        else:
            text = (
                f"counted by the server for {self.sampled} prompts, the longest and those near "
                f"the limit; the others are Goodput's estimate × {self.scale:.2f}"
            )
        if not self.pictures:
            return text
        if self.picture_tokens is None:
            return f"{text}; their pictures not counted: the server said nothing of them"
        return f"{text}, and {self.picture_tokens:,.0f} tokens a picture by the server's count"

    def picture_line(self) -> str:
        """One line for the log when the workload has pictures: what the server makes of one."""
        if not self.pictures:
            return ""
        if self.picture_tokens is None:
            return (
                f"--dataset {self.dataset}: {self.pictures:,} pictures; the server did not count one (no "
                "counting route that takes them), so its prompts' sizes are their text alone"
            )
        return (
            f"--dataset {self.dataset}: the server counts one of its pictures as {self.picture_tokens:,.0f} "
            "prompt tokens (a request counted with and without them)"
        )

    def warning(self) -> str:
        """One line for the log ("" when every request fits)."""
        if not self.over:
            return ""
        share = 100 * self.over / self.requests
        longest = (
            f"the longest prompt, ~{self.longest_prompt:,} tokens ({self.counted_by}), fills it by itself"
            if self.longest_prompt >= self.context
            else f"the longest prompt, ~{self.longest_prompt:,} tokens ({self.counted_by}), with max_tokens "
            f"{self.its_cap:,} needs ~{self.longest_prompt + self.its_cap:,}"
        )
        return (
            f"{self.over:,} of {self.requests:,} requests of --dataset {self.dataset} ({share:.0f} %) will not fit "
            f"the server's context of {self.context:,} tokens ({self.source}): {longest}. A server "
            "refuses such a request (HTTP 400 or 422), cuts its answer short or, as Ollama does, its prompt, and "
            "the figures would describe other requests than the workload's: lower --max-tokens or use shorter "
            "prompts"
        )


def check_fit(dataset: str, workload: Any, cap: int, server: Context, count: Counter | None = None) -> Fit:
    """The dataset's fit in the `server`'s context with output cap `cap` (`--max-tokens`), its prompts
    counted by Goodput's estimate scaled to the server's tokenizer where `count` (serverfacts.py)
    answers for its longest prompts; an OptionError when every request's output cap alone is larger
    than the context of a server that refuses such a request."""
    from workloads.conversation import output_cap, request_messages
    from workloads.stats import longest_requests, requests_above

    context = server.tokens
    caps = [output_cap(t.max_tokens, cap) for c in workload.conversations for t in c.turns]
    if server.strict and caps and min(caps) > context:
        raise OptionError(
            f"--max-tokens {cap:,}: the server's context is {context:,} tokens ({server.source}), "
            "and a prompt and its answer must fit in it together: every request would be refused; "
            f"pass --max-tokens below {context:,}"
        )
    scale, sampled = (
        _calibrate(longest_requests(workload, CALIBRATION_PROMPTS), count) if count else (None, 0)
    )
    pictures = sum(image_kinds(workload.conversations).values())
    per_picture = _picture_tokens(workload, count) if count and pictures else None
    over = []
    exact = EXACT_NEAR_LIMIT if count and scale is not None else 0
    low, high = context * (1 - NEAR), context * (1 + NEAR)
    above = requests_above(workload, cap, low if exact else context, scale or 1.0, per_picture or 0.0)
    for conv, turn, n_in, n_out in above:
        near = low < n_in + n_out <= high
        if exact and near and count and (n := count(request_messages(conv, turn))) is not None:
            n_in, exact, sampled = n, exact - 1, sampled + 1
        if n_in + n_out > context:
            over.append((n_in, n_out))
    longest = max(over, default=(0, 0))
    return Fit(dataset, context, server.source, len(caps), len(over), longest[0], longest[1], scale, sampled,
               pictures, per_picture)  # fmt: skip


def _calibrate(samples: list[tuple[list[dict], int]], count: Counter) -> tuple[float | None, int]:
    """The server's tokens per estimated token over `samples` (their sums: long prompts weigh most,
    as they decide the fit), from those counted before the server stopped answering (its counting
    budget, serverfacts.py), if at least MIN_SAMPLES or all; (None, 0) otherwise."""
    theirs = ours = counted = 0
    for messages, estimate in samples:
        n = count(without_images(messages))  # the estimate is the text's: so is the count it is scaled to
        if n is None:
            break
        theirs, ours, counted = theirs + n, ours + estimate, counted + 1
    if not ours or counted < min(MIN_SAMPLES, len(samples)):
        return None, 0
    return round(theirs / ours, 4), counted


PICTURE_SAMPLES = 3  # requests counted with and without their pictures


def _picture_tokens(workload: Any, count: Counter) -> float | None:
    """The server's prompt tokens per picture: a few requests with pictures, each counted with them and
    without (their text alone), the difference over their pictures; None where the server's counting
    route drops them (a text route) or stopped answering. Asked after the calibration, so a route that
    refuses pictures costs the text counts nothing."""
    from workloads.conversation import request_messages

    extra = seen = 0
    for conv in workload.conversations:
        for turn in range(len(conv.turns)):
            messages = request_messages(conv, turn)
            if not (n := count_images(messages)):
                continue
            whole, text = count(messages), count(without_images(messages))
            if whole is None or text is None:
                return None
            extra, seen = extra + whole - text, seen + n
            if seen >= PICTURE_SAMPLES:
                return extra / seen if extra > 0 else None
            break  # one request a conversation: other pictures, other sizes
    return extra / seen if seen and extra > 0 else None
