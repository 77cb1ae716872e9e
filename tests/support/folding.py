"""Folding a whole stream's events with an API's parser, as the transports do, in tests that hold a
parser to a server's format: event i arrives at t0 + i s, the request left at t0."""

from __future__ import annotations

from core.measure import fill_record
from core.record import RequestRecord
from core.result import StreamResult
from loadgen.transport.apis import Api
from loadgen.transport.client import finish


def fold_events(
    api: Api, events: list[tuple[str, bytes]], t0: float = 10.0
) -> tuple[StreamResult, RequestRecord]:
    """The stream's result (ended as the transports end one) and the row it makes."""
    res = StreamResult(t_send=t0, status=200, splits_reasoning=api.splits_reasoning)
    for i, (kind, data) in enumerate(events, start=1):
        res.n_events += 1
        api.fold(res, kind, data, t0 + i)
        if res.done or res.error:
            break
    finish(res)
    rec = RequestRecord()
    fill_record(rec, res)
    return res, rec
