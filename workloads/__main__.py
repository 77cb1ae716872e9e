"""`python -m workloads list | stats SPEC | show SPEC`: look at a workload before running it.

Errors in the spec or the data are one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from workloads.conversation import Conversation
from workloads.errors import WorkloadError
from workloads.images import image_urls, split_data_url
from workloads.registry import BUILTINS, load_workload
from workloads.stream import ORDERS, WorkloadStream
from workloads.tokens import content_text, count_tokens


def _clip(text: str, full: bool, limit: int = 240) -> str:
    if full or len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()} … [{count_tokens(text):,} tokens]"


def abbreviate_url(url: str) -> str:
    """An image URL for display: a data URL's payload becomes its size (`data:image/jpeg;base64,<34 KB>`),
    so `show --full` prints the messages, not megabytes of base64."""
    parsed = split_data_url(url)
    if parsed is None:
        return url if len(url) <= 120 else f"{url[:117]}..."
    kb = len(parsed[1]) * 3 / 4 / 1000  # base64: 3 bytes per 4 characters
    return (
        f"data:{parsed[0]};base64,<{kb:,.0f} KB>"
        if kb >= 1
        else f"data:{parsed[0]};base64,<{kb * 1000:.0f} B>"
    )


def _message(m: dict, full: bool) -> str:
    content = m.get("content")
    text = _clip(content_text(content), full).replace("\n", "\n    " if full else " ⏎ ")
    images = "".join(f" [image {abbreviate_url(u)}]" for u in image_urls(content))
    return f"  [{m.get('role', '?')}] {text}{images}"


def show_conversation(c: Conversation, full: bool) -> str:
    lines = [f"── {c.id} · group {c.group} · {len(c.turns)} turn{'s' if len(c.turns) != 1 else ''}"]
    if c.extra_body:
        lines.append(f"  extra body: {json.dumps(c.extra_body)}")
    lines += [_message(m, full) for m in c.prefix]
    for i, t in enumerate(c.turns):
        lines.append(
            f" turn {i}: think {t.think_time_s:g} s, max_tokens {t.max_tokens if t.max_tokens is not None else '-'}"
        )
        lines += [_message(m, full) for m in t.messages]
        if t.reply is not None:
            lines.append(_message({"role": "assistant (recorded)", "content": t.reply}, full))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads", description="Inspect Goodput workloads.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the built-in sets and generators")
    p_stats = sub.add_parser("stats", help="requests, sessions, token length percentiles, prefix sharing")
    p_stats.add_argument("spec", help="built-in name (with options), file path[?mapping] or hf:NAME")
    p_stats.add_argument("--json", action="store_true", help="machine-readable output")
    p_stats.add_argument(
        "--context",
        type=int,
        default=None,
        metavar="TOKENS",
        help="count the requests that exceed this context",
    )
    p_stats.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        metavar="N",
        help="output cap with --context, as the run's (256)",
    )
    p_show = sub.add_parser("show", help="print sample conversations in stream order")
    p_show.add_argument("spec")
    p_show.add_argument("-n", type=int, default=3, help="how many conversations (default 3)")
    p_show.add_argument("--order", default="sequential", choices=ORDERS)
    p_show.add_argument("--seed", type=int, default=0)
    p_show.add_argument("--full", action="store_true", help="do not shorten long messages")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for b in BUILTINS.values():
                shipped = f"datasets/{b.shipped}" if b.shipped else "generated"
                print(f"{b.name:<14} {b.description} [{shipped}]")
            return 0
        workload = load_workload(args.spec)
        if args.command == "stats":
            from workloads import stats

            st = stats.compute(workload)
            if args.context is not None:
                if args.context <= 0 or args.max_tokens <= 0:
                    raise WorkloadError("--context and --max-tokens: expected positive numbers of tokens")
                st["context"] = stats.context_fit(workload, args.context, args.max_tokens)
            print(json.dumps(st, indent=2) if args.json else stats.format_text(st))
            return 0
        stream = WorkloadStream(workload, seed=args.seed, order=args.order)
        for _ in range(min(max(args.n, 0), stream.size)):
            print(show_conversation(stream.next_conversation(), args.full))
        return 0
    except WorkloadError as e:
        print(f"workloads: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `| head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
