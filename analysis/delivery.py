"""How the tokens were delivered: how many arrive in one chunk, and whether chunks arrive in bursts.

ITL is the gap between chunks (a chunk is one streamed event carrying generated tokens), and most
servers send one token per chunk, so ITL reads as the time per token. Some send several: vLLM with
`--stream-interval N`, a proxy that buffers the stream, a content filter that releases text in blocks
(Azure OpenAI's default streaming), a server that sends a whole tool call in one event. Then ITL is
N times the time per token and its tail says more of the batching than of the engine; TPOT, from the
server's token count, stays per token. The report says so when it happens.

Chunks that arrive together (in one read: they share its arrival stamp, a gap of 0) are the other
way a delivery hides the engine's pace: a proxy that buffers the stream (nginx's proxy_buffering is
on by default) hands several on at once, and so does a client that reads late. The report says how
many gaps were 0.
"""

from __future__ import annotations

import pandas as pd

from analysis.itl import Distribution

#: Where the report starts to speak: half a token more per chunk than one (a few held UTF-8 bytes or
#: a tool call in one piece move the mean far less than that).
SEVERAL = 1.5
#: Token counts that are not the chunk count (which would make the ratio 1 by construction): the
#: server's, or the text's by the model's tokenizer (`--tokenizer`, loadgen/tokencount.py).
SERVER_COUNTS = ("usage", "meta_info", "details", "timings", "eval_count")
COUNTED = (*SERVER_COUNTS, "tokenizer")


def tokens_per_chunk(sel: pd.DataFrame) -> tuple[float, int, int] | None:
    """(mean tokens per chunk, tokens, chunks) over the completed requests whose token count is not
    their chunk count; None when there is none."""
    if sel.empty or "n_chunks" not in sel:
        return None
    ok = sel[sel["ok"].astype(bool) & sel["tokens_source"].isin(COUNTED)]
    tokens = pd.to_numeric(ok["output_tokens"], errors="coerce").fillna(0)
    chunks = pd.to_numeric(ok["n_chunks"], errors="coerce").fillna(0)
    keep = (tokens > 0) & (chunks > 0)
    n_tokens, n_chunks = int(tokens[keep].sum()), int(chunks[keep].sum())
    return (n_tokens / n_chunks, n_tokens, n_chunks) if n_chunks else None


def uncounted_warnings(sel: pd.DataFrame) -> list[str]:
    """One report line when completed requests' output tokens are their chunk counts: the server
    stated no count (and no `--tokenizer` counted their text), so every figure per token — TPOT,
    output tokens/s, the TPOT SLO — assumes one token a chunk, which nothing in the run checks."""
    if sel.empty or "tokens_source" not in sel:
        return []
    ok = sel[sel["ok"].astype(bool)]
    n = int((ok["tokens_source"] == "chunks").sum())
    if not n:
        return []
    return [
        f"{n} of {len(ok)} completed requests had no token count from the server: their output tokens "
        "are their chunks, one token each, and so are their TPOT and output tokens/s — too few tokens "
        "where a chunk carries several (speculative decoding, vLLM's --stream-interval, a proxy that "
        "buffers); --tokenizer counts their text with the model's tokenizer"
    ]


def chunking_warnings(sel: pd.DataFrame, speculating: bool = False) -> list[str]:
    """One report line when chunks carry several tokens on average; `speculating`: the server said it
    decodes speculatively (analysis/specdecode.py), which is then the likely cause."""
    got = tokens_per_chunk(sel)
    if got is None or got[0] < SEVERAL:
        return []
    mean, n_tokens, n_chunks = got
    why = (
        "the server decodes speculatively: a step streams its verified token and the draft tokens it "
        "accepted in one chunk (section Speculative decoding)"
        if speculating
        else "vLLM sends several with --stream-interval or when it decodes speculatively, a proxy "
        "that buffers the stream merges them, and a content filter (Azure OpenAI's by default) "
        "releases the text in blocks"
    )
    return [
        f"the server sent {mean:.1f} tokens per chunk on average ({n_tokens} tokens in {n_chunks} chunks): "
        f"ITL is the gap between chunks, not tokens (TPOT is per token); {why}"
    ]


#: Where the report speaks of bursts: a tenth of the gaps 0, over enough gaps to mean it.
BURSTY, MIN_GAPS = 0.10, 100


def burst_warnings(itl: Distribution) -> list[str]:
    """One report line when many gaps between chunks are 0 (µs resolution: read together)."""
    n = itl.n
    zero = int(itl.counts[0]) if len(itl.counts) else 0
    if n < MIN_GAPS or zero < BURSTY * n:
        return []
    return [
        f"{100 * zero / n:.0f} % of the gaps between chunks are 0 ({zero} of {n}: read together): the tokens "
        "arrive in bursts, from a proxy that buffers the stream (nginx's proxy_buffering), the server "
        "writing several chunks at once, or a client that reads late (its own warning says when); ITL's "
        "low percentiles are then 0 and its tail the bursts' spacing"
    ]
