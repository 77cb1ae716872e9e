"""`python -m workloads stats`: what a workload will ask of a server, before any run.

Counts use Goodput's token estimate (workloads.tokens). The prefix-sharing share is the fraction
of all prompt tokens that lie in a prefix the request shares with at least one *other* request:
the most a perfect prefix cache could reuse (agentic sessions: the system prompt and each turn's
history; random prompts: ~0). For multi-turn sets the share *across sessions* (the shared system
prompt, without a session's own history) is reported too. Computed exactly, in characters of the
rendered prompt (workloads.tokens.render), by sorting: a prompt's longest common prefix with any
other prompt is the one with a neighbour in sorted order.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from core.quantiles import linear
from workloads.conversation import (
    Conversation,
    Workload,
    assistant,
    expected_output_tokens,
    output_cap,
    request_messages,
)
from workloads.gen.pictures import image_stats
from workloads.images import count_images
from workloads.tokens import content_text, count_tokens, render

QUANTILES = (50, 90, 99)
DECIMALS = 6  # interpolated token counts and shares: no binary artefacts (386.60000000000014) in --json


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    v = sorted(values)
    out = {f"p{q}": round(linear(v, q / 100), DECIMALS) for q in QUANTILES}
    out.update(max=v[-1], mean=round(sum(v) / len(v), DECIMALS), min=v[0])
    return out


def common_prefix_len(a: str, b: str) -> int:
    """Length of the common prefix, comparing in blocks (C speed) and bisecting the first differing one."""
    n = min(len(a), len(b))
    i, block = 0, 4096
    while i < n and a[i : i + block] == b[i : i + block]:
        i += block
    if i >= n:
        return n
    lo, hi = i, min(i + block, n)  # the mismatch is in [lo, hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if a[lo : mid + 1] == b[lo : mid + 1]:
            lo = mid + 1
        else:
            hi = mid
    return lo


def shared_prefix_chars(texts: list[str]) -> list[int]:
    """For each text, the longest prefix it shares with any other text of the list."""
    order = sorted(range(len(texts)), key=texts.__getitem__)
    best = [0] * len(texts)
    for a, b in itertools.pairwise(order):
        n = common_prefix_len(texts[a], texts[b])
        best[a] = max(best[a], n)
        best[b] = max(best[b], n)
    return best


class _Lengths:
    """Per-request lengths of one conversation, from per-message counts made once per message object.

    Messages are shared between the turns of a session (and a shared prefix between sessions), so
    counting each message once keeps stats linear in the dataset's size rather than in its context.
    """

    def __init__(self) -> None:
        self._memo: dict[int, tuple[int, int, int]] = {}

    def _sizes(self, key: int, m: dict) -> tuple[int, int, int]:
        if key not in self._memo:
            text = render((m,))
            self._memo[key] = (count_tokens(content_text(m.get("content"))), count_tokens(text), len(text))
        return self._memo[key]

    def requests(self, c: Conversation) -> list[tuple[int, int, int]]:
        """(input tokens, rendered tokens, rendered characters) of each turn's full request.

        Keys are ids of objects the conversation keeps alive (its messages, its turns for the
        replies), never of temporary dicts whose ids could be reused.
        """
        base = (0, 0, 0)

        def add(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
            return (a[0] + b[0], a[1] + b[1], a[2] + b[2])

        for m in c.prefix:
            base = add(base, self._sizes(id(m), m))
        out = []
        for turn in c.turns:
            for m in turn.messages:
                base = add(base, self._sizes(id(m), m))
            out.append(base)
            if turn.reply is not None:
                base = add(base, self._sizes(id(turn), assistant(turn.reply)))
        return out


def request_lengths(workload: Workload) -> list[tuple[int, int | None]]:
    """(input tokens, expected output tokens or None) of every request, in order."""
    lengths = _Lengths()
    return [
        (size[0], expected_output_tokens(turn))
        for c in workload.conversations
        for size, turn in zip(lengths.requests(c), c.turns, strict=True)
    ]


def requests_above(
    workload: Workload, cap: int, floor: float, scale: float = 1.0, per_picture: float = 0.0
) -> Iterator[tuple[Conversation, int, int, int]]:
    """(conversation, turn, prompt tokens, output cap) of every request whose prompt and output cap
    exceed `floor` tokens (near or over a server's context length). Prompt tokens are Goodput's
    estimate times `scale` (a server's tokens per estimated token, loadgen/run/fit.py), plus
    `per_picture` for each picture the request carries, rounded; the output cap is the turn's
    max_tokens capped by `cap`, as sent. A conversation whose last request has few enough characters
    and pictures is skipped uncounted (an estimated token is at least one character, and history only
    grows)."""
    lengths = _Lengths()
    for c in workload.conversations:
        caps = [output_cap(t.max_tokens, cap) for t in c.turns]
        pictures = pictures_per_request(c) if per_picture else [0] * len(c.turns)
        if final_chars(c) * scale + pictures[-1] * per_picture + max(caps) <= floor:
            continue
        for t, (size, n_out) in enumerate(zip(lengths.requests(c), caps, strict=True)):
            n_in = round(size[0] * scale + pictures[t] * per_picture)
            if n_in + n_out > floor:
                yield c, t, n_in, n_out


def pictures_per_request(c: Conversation) -> list[int]:
    """The pictures each of the conversation's requests carries: the prefix's and every turn's so far (a
    recorded reply carries none), counted once per message, not once per request it is sent in."""
    counts = itertools.accumulate((count_images(t.messages) for t in c.turns), initial=count_images(c.prefix))
    return list(counts)[1:]


def final_chars(c: Conversation) -> int:
    """Characters of the conversation's last (longest) request's message contents."""
    return sum(len(content_text(m.get("content"))) for m in request_messages(c, len(c.turns) - 1))


def longest_requests(workload: Workload, k: int) -> list[tuple[list[dict], int]]:
    """The last requests of the `k` conversations with the most characters, with their estimated
    prompt tokens: where a server's own count matters most (fit.py calibrates on them)."""
    longest = sorted(workload.conversations, key=final_chars, reverse=True)[:k]
    out = []
    for c in longest:
        messages = request_messages(c, len(c.turns) - 1)
        out.append((messages, sum(count_tokens(content_text(m.get("content"))) for m in messages)))
    return out


def compute(workload: Workload) -> dict:
    """Every request's prompt is a string prefix of its session's last request (history only grows),
    so prefix sharing needs the sessions' final prompts only: sharing *across sessions* is each final
    prompt's longest common prefix with another session's (sorted neighbours); sharing with *any*
    other request adds the session's own earlier turns, of which each later turn is an extension.
    """
    convs = workload.conversations
    lengths = _Lengths()
    per_conv = [lengths.requests(c) for c in convs]
    finals = [render(request_messages(c, len(c.turns) - 1)) for c in convs]
    cross = shared_prefix_chars(finals)
    total = shared_any = shared_cross = 0
    inputs: list[float] = []
    for sizes, full, lcp in zip(per_conv, finals, cross, strict=True):
        at_lcp = count_tokens(full[:lcp]) if lcp else 0
        for t, (n_in, n_tok, n_chars) in enumerate(sizes):
            inputs.append(n_in)
            total += n_tok
            shared_cross += n_tok if n_chars <= lcp else at_lcp
            if t < len(sizes) - 1:
                shared_any += n_tok  # the next turn of the session extends this prompt
            else:
                reach = max(lcp, sizes[t - 1][2] if t else 0)
                shared_any += (
                    n_tok if reach >= n_chars else (at_lcp if reach == lcp else count_tokens(full[:reach]))
                )
    outputs = [float(n) for c in convs for turn in c.turns if (n := expected_output_tokens(turn)) is not None]
    thinks = [turn.think_time_s for c in convs for turn in c.turns[1:]]
    turns = [len(c.turns) for c in convs]
    return {
        "name": workload.name,
        "spec": workload.spec,
        "source": workload.source,
        "fingerprint": workload.fingerprint,
        "description": workload.description,
        "sessions": len(convs),
        "requests": len(inputs),
        "multi_turn": workload.multi_turn,
        "groups": len({c.group for c in convs}),
        "turns": summary(turns),
        "input_tokens": summary(inputs),
        "output_tokens": summary(outputs),
        "output_known": len(outputs),
        "think_time_s": summary(thinks),
        "prefix_share": round(shared_any / total, DECIMALS) if total else 0.0,
        "prefix_share_across_sessions": round(shared_cross / total, DECIMALS) if total else 0.0,
        "images": image_stats(workload),  # None without images
    }


def _row(label: str, s: dict | None, digits: int = 0) -> str:
    if s is None:
        return f"{label:<16}{'n/a':>9}"
    cells = [s["p50"], s["p90"], s["p99"], s["max"], s["mean"]]
    return f"{label:<16}" + "".join(f"{x:>9,.{digits}f}" for x in cells)


def format_text(st: dict) -> str:
    t = st["turns"]
    shape = (
        f"multi-turn, {t['min']:.0f}-{t['max']:.0f} turns (median {t['p50']:.0f})"
        if st["multi_turn"]
        else "single-turn"
    )
    lines = [
        f"{st['name']}" + (f" — {st['description']}" if st["description"] else ""),
        f"{'source':<16}{st['source']} (fingerprint {st['fingerprint']})",
        f"{'sessions':<16}{st['sessions']:,} in {st['groups']} prefix group{'s' if st['groups'] != 1 else ''}, {shape}",
        f"{'requests':<16}{st['requests']:,}",
        "",
        f"{'':<16}" + "".join(f"{h:>9}" for h in ("p50", "p90", "p99", "max", "mean")),
        _row("input tokens", st["input_tokens"]),
        _row("output tokens", st["output_tokens"]),
    ]
    if st["multi_turn"]:
        lines.append(_row("think time s", st["think_time_s"], 2))
    if st["output_known"] < st["requests"]:
        lines.append(
            f"{'':<16}(output length known for {st['output_known']:,} of {st['requests']:,} requests; the rest use --max-tokens)"
        )
    lines += [
        "",
        f"{'prefix sharing':<16}{st['prefix_share']:.1%} of prompt tokens lie in a prefix shared with another request"
        + (f" ({st['prefix_share_across_sessions']:.1%} with another session)" if st["multi_turn"] else ""),
        f"{'':<16}(tokens by Goodput's estimate: \\w+ runs and single punctuation marks)",
    ]
    if st.get("images"):
        lines += ["", *_image_lines(st["images"])]
    if fit := st.get("context"):
        lines.append(
            f"{'context':<16}{fit['over']:,} of {st['requests']:,} requests exceed {fit['tokens']:,} tokens with "
            f"max_tokens up to {fit['max_tokens']:,} (prompt + output cap, the longest prompt "
            f"{fit['longest_prompt']:,}); a run asks the server itself (its own tokenizer where it can)"
        )
    return "\n".join(lines)


def _image_lines(im: dict) -> list[str]:
    """The images' lines of `stats`: per request, sizes, bytes; and what the token counts leave out."""
    per = im["per_request"]
    span = f"{per['min']:,}" if per["min"] == per["max"] else f"{per['min']:,}-{per['max']:,}"
    sizes = ", ".join(f"{size} ({n:,})" for size, n in list(im["sizes"].items())[:4])
    more = f", {len(im['sizes']) - 4} more sizes" if len(im["sizes"]) > 4 else ""
    media = ", ".join(im["media_types"]) or "-"
    remote = f", {im['remote']:,} remote (http) not measured" if im["remote"] else ""
    mean = f"{im['mean_bytes'] / 1000:,.1f} KB mean per image" if im["mean_bytes"] is not None else "-"
    return [
        f"{'images':<16}{span} per request (median {per['p50']:g}, history included), "
        f"{im['requests_with_images']:,} requests with images",
        f"{'':<16}{im['distinct']:,} distinct: {sizes or '-'}{more}; {media}{remote}",
        f"{'':<16}{mean} (base64 in the request: 4/3 of that)",
        f"{'':<16}(input tokens count text only: the server counts image tokens by its model's rule)",
    ]


def context_fit(workload: Workload, context: int, cap: int) -> dict:
    """`stats --context N`: how many requests exceed a context of N tokens, by Goodput's estimate,
    with the output cap a run with `--max-tokens cap` sends (the run's own check: loadgen/run/fit.py)."""
    over = [n_in for _, _, n_in, _ in requests_above(workload, cap, context)]
    return {"tokens": context, "max_tokens": cap, "over": len(over), "longest_prompt": max(over, default=0)}
