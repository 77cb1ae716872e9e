"""Whether requests paid a connect in their TTFT: the report's line when a server closes connections.

Each user keeps one connection and sends its requests on it one after another (HTTP/1.1 keep-alive),
so only its first request should open one. A request that opened a new connection although its
user's previous answer had completed (`new_connection`, core/record.py) found the connection closed
by the server or a proxy between: its TTFT holds a TCP connect, and on https a TLS handshake, that a
kept-alive connection would not. llama-server closes after every stream; a proxy closes after its
keep-alive limits (nginx's `keepalive_requests`, `keepalive_timeout`); through `--client openai`
(one connection pool per process, shared by its users) so does the pool itself past the idle
connections it keeps (the SDK's default: 100). A request after a failed one is left out: the client
itself drops a connection a failure left half-read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: The share of measured requests from which the report speaks of it.
NOTICE_SHARE = 0.01


def reopened(df: pd.DataFrame) -> np.ndarray:
    """Per row of `df`: True where the request opened a new connection after its user's previous
    request (any row of the run, in send order) had completed on one."""
    if "new_connection" not in df or df.empty:
        return np.zeros(len(df), dtype=bool)
    new = df["new_connection"].to_numpy(dtype=object) == True  # noqa: E712 (None: unknown)
    if not new.any():
        return new
    order = np.lexsort(
        (df["t_start_unix"].to_numpy(), df["user"].to_numpy(), df["worker"].astype(str).to_numpy())
    )
    users = df["worker"].astype(str).to_numpy()[order], df["user"].to_numpy()[order]
    same_user = np.zeros(len(df), dtype=bool)
    same_user[1:] = (users[0][1:] == users[0][:-1]) & (users[1][1:] == users[1][:-1])
    ok = df["ok"].to_numpy(dtype=bool)[order]
    after_ok = np.zeros(len(df), dtype=bool)
    after_ok[1:] = ok[:-1]
    out = np.zeros(len(df), dtype=bool)
    out[order] = new[order] & same_user & after_ok
    return out


def reconnect_warnings(df: pd.DataFrame, measured: np.ndarray) -> list[str]:
    """One report line when at least NOTICE_SHARE of the measured requests (`measured`: a mask over
    `df`) opened a new connection after a completed answer."""
    n = int(measured.sum())
    if not n or "new_connection" not in df:
        return []
    k = int((reopened(df) & measured).sum())
    if not k or k < NOTICE_SHARE * n:
        return []
    return [
        f"{k:,} of {n:,} measured requests ({k / n:.0%}) opened a new connection though their user's "
        "previous answer had completed on one: the server (or a proxy between) closed it after the "
        "answer, so their TTFT holds a connect (TCP, and TLS on https) that a kept-alive connection "
        "would not — llama-server closes after every stream, a proxy after its keep-alive limits, the "
        "openai SDK's pool (--client openai) past the 100 idle connections it keeps per process"
    ]
