"""The data model every source produces and every Locust user consumes.

A workload is a tuple of `Conversation`s. A single-shot dataset is the special case of one turn per
conversation, so users, ordering and statistics need only one code path. Messages are plain OpenAI
chat dicts shared between requests: treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Turn:
    """One request's worth of new messages in a conversation."""

    messages: tuple[dict, ...]  # OpenAI chat messages this turn appends (user text, or tool results)
    max_tokens: int | None  # expected/allowed output length for this turn
    reply: str | None = None  # the recorded assistant reply (used when replaying without the live one)
    think_time_s: float = 0.0  # pause before sending this turn (0 for the first)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A session: a shareable prefix, then turns sent one after another."""

    id: str  # stable id (session id in requests.csv)
    prefix: tuple[dict, ...]  # leading messages (system prompt, tool definitions): the shareable prefix
    turns: tuple[Turn, ...]  # 1 for single-shot datasets
    group: str = "default"  # prefix group id (--order grouped/interleaved, prefix-sharing stats)
    extra_body: dict = field(default_factory=dict)  # extra request fields (e.g. temperature)


@dataclass(frozen=True, slots=True)
class Workload:
    """A loaded, immutable set of conversations; streams over it are cheap to create."""

    name: str  # short name: the built-in's name or the file name
    spec: str  # what the user asked for, verbatim
    source: str  # where the data came from: a file path, `generated`, `hf:NAME`
    conversations: tuple[Conversation, ...]
    description: str = ""
    fingerprint: str = ""  # sha256 prefix of the file or of the generator's options
    repeat: str = "fresh"  # later passes over the set: "fresh" (tagged, see `retagged`) or "exact"

    @property
    def multi_turn(self) -> bool:
        return any(len(c.turns) > 1 for c in self.conversations)

    @property
    def requests(self) -> int:
        return sum(len(c.turns) for c in self.conversations)


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def request_messages(conv: Conversation, turn: int) -> list[dict]:
    """The full message list of turn `turn` when replayed with the recorded replies.

    Earlier turns contribute their messages and, when recorded, their assistant reply; a missing
    reply is skipped rather than invented. Returns a new list the caller may extend.
    """
    out = list(conv.prefix)
    for t in conv.turns[:turn]:
        out.extend(t.messages)
        if t.reply is not None:
            out.append(assistant(t.reply))
    out.extend(conv.turns[turn].messages)
    return out


def retagged(conv: Conversation, epoch: int, index: int) -> Conversation:
    """The conversation for a later pass over the set: its first message starts with `[epoch.index] `.

    A set smaller than a run is cycled, and a verbatim repeat would be served from the prefix cache
    as no real traffic would. The tag goes after the shared prefix, so system prompts stay shared
    while each repeated session or prompt is new to the server (about five tokens longer).
    """
    tag = f"[{epoch}.{index}] "
    first = conv.turns[0]
    message = dict(first.messages[0])
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = tag + content
    elif isinstance(content, list):
        message["content"] = [{"type": "text", "text": tag.strip()}, *content]
    else:
        message["content"] = tag.strip()
    turn = Turn((message, *first.messages[1:]), first.max_tokens, first.reply, first.think_time_s)
    return Conversation(
        f"{conv.id}~{epoch}", conv.prefix, (turn, *conv.turns[1:]), conv.group, conv.extra_body
    )


def output_cap(max_tokens: int | None, cap: int) -> int:
    """The output cap a request is sent with: the turn's own max_tokens, capped by the run's
    `--max-tokens` (`cap`), or `cap` when the turn has none."""
    return min(max_tokens, cap) if max_tokens else cap


def expected_output_tokens(turn: Turn) -> int | None:
    """The turn's output length: its max_tokens, else the recorded reply's length, else unknown."""
    if turn.max_tokens is not None:
        return turn.max_tokens
    if turn.reply is not None:
        from workloads.tokens import count_tokens

        return count_tokens(turn.reply)
    return None
