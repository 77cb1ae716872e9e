"""One request, end to end on the client: send, stream, make the row, tell Locust and the live stats.

Every user class funnels through `perform`, so a request is measured, labelled and recorded the
same way whatever its shape (single shot, agent turn, open-loop arrival).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any

import gevent
from gevent import Greenlet, GreenletExit
from gevent.hub import Waiter, get_hub

from users.arrival import wall_and_perf
from users.client import StreamResult, explain_rejection
from users.inflight import IN_FLIGHT
from users.record import RequestRecord


class LLMRequestError(Exception):
    """Shown in Locust's failures table: the category only, so the table stays short."""


def perform(
    user: Any,
    path: str,
    body: dict,
    *,
    session: str = "",
    turn: int = 0,
    scheduled_unix: float | None = None,
) -> StreamResult:
    ctx = user.environment.goodput
    rid = ctx.next_request_id()
    stage = ctx.stage
    rec = RequestRecord(
        worker=ctx.worker_name,
        user=user.goodput_id,
        session=session,
        turn=turn,
        request_id=rid,
        scenario=user.scenario,
        dataset=ctx.options.dataset,
        step=stage.step,
        target_users=stage.target_users,
        t_scheduled_unix=scheduled_unix,
    )
    ctx.buffer.started += 1
    IN_FLIGHT.n += 1
    t_wall, t_perf = wall_and_perf()
    try:
        id_header = ctx.request_id_header
        res = user.transport.stream(path, body, {id_header: rid} if id_header else {}, ctx.timeout_s)
        explain_rejection(res, id_header)
    except GreenletExit:
        # The user is being stopped mid-request: the server saw it, so it keeps its row.
        rec.t_start_unix = t_wall
        rec.e2e_s = time.perf_counter() - t_perf
        rec.error, rec.error_detail = "cancelled", "user stopped while the request was in flight"
        ctx.emit(rec.row())
        raise
    finally:
        IN_FLIGHT.n -= 1
    try:
        IO_FIRST.wait()
    finally:  # also when the user is stopped meanwhile: the request is complete, it keeps its row
        _complete(user, ctx, rec, res, path, t_wall, t_perf)
    return res


def _complete(user: Any, ctx: Any, rec: RequestRecord, res: StreamResult, path: str, t_wall: float,
              t_perf: float) -> None:  # fmt: skip
    rid = rec.request_id
    rec.t_start_unix = t_wall + (res.t_send - t_perf) if res.t_send else t_wall
    fill_record(rec, res)
    good = rec.ok and ctx.slo.is_good(rec.ttft_s, rec.tpot_s, rec.e2e_s)
    elapsed_ms = (rec.e2e_s if rec.e2e_s is not None else time.perf_counter() - t_perf) * 1000.0
    user.environment.events.request.fire(
        request_type="POST",
        name=path,
        response_time=elapsed_ms,
        response_length=res.n_bytes,
        exception=LLMRequestError(rec.error) if rec.error else None,
        context={"request_id": rid},
        start_time=rec.t_start_unix,
        url=None,
        response=None,
    )
    ctx.live.log_request(
        rec.ttft_s, rec.tpot_s, rec.itl_s, rec.e2e_s, rec.output_tokens or 0, rec.ok, good, rec.error
    )
    ctx.emit(rec.row())


class IoFirst:
    """Request bookkeeping waits until the event loop has no I/O pending, ~1 ms of it per loop pass.

    A token's stamp is its kernel arrival (users/arrival.py) as long as its stream is read before the
    next token comes. When many streams end in the same engine step (closed-loop users with equal
    lengths stay in lockstep), their rows, Locust events and the requests that follow would hold
    the loop for tens of ms while the first tokens of the requests just sent arrive unread. Here a
    finished request waits its turn; a dispatcher lets a batch go whenever the loop is idle and sizes
    the batches so that one takes about `BUDGET_S`. Under no pressure that is the same loop pass.
    """

    BUDGET_S = 0.001

    def __init__(self) -> None:
        self.waiting: deque[Waiter] = deque()
        self.dispatcher: Greenlet | None = None
        self.batch = 8

    def wait(self) -> None:
        w = Waiter()
        self.waiting.append(w)
        if self.dispatcher is None:
            self.dispatcher = gevent.spawn(self._dispatch)
        w.get()

    def _dispatch(self) -> None:
        loop = get_hub().loop
        try:
            while self.waiting:
                gevent.idle()
                t0 = time.perf_counter()
                for _ in range(min(self.batch, len(self.waiting))):
                    loop.run_callback(self.waiting.popleft().switch, None)
                gevent.sleep(0)  # queued after them: each ran until it blocked (its next request sent)
                if time.perf_counter() - t0 > self.BUDGET_S:
                    self.batch = max(1, self.batch // 2)
                else:
                    self.batch = min(2 * self.batch, 256)
        finally:
            self.dispatcher = None


IO_FIRST = IoFirst()


def fill_record(rec: RequestRecord, res: StreamResult) -> None:
    """The contract's definitions: TTFT to the first text chunk, E2E to the last event, ITL between text chunks."""
    t0 = res.t_send
    times = res.text_times
    rec.http_status = res.status
    rec.finish_reason = res.finish_reason
    rec.error, rec.error_detail = res.error, res.error_detail
    rec.ok = not res.error
    rec.n_chunks = len(times)
    if times:
        rec.ttft_s = times[0] - t0
        rec.itl_s = [b - a for a, b in itertools.pairwise(times)]
    last = res.t_last if res.t_last is not None else (times[-1] if times else None)
    if last is not None:
        rec.e2e_s = last - t0
    usage = res.usage
    if usage and usage.get("completion_tokens") is not None:
        rec.tokens_source = "usage"
        rec.output_tokens = int(usage["completion_tokens"])
        rec.prompt_tokens = _int(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details") or {}
        rec.cached_tokens = _int(details.get("cached_tokens"))
    elif times:
        rec.tokens_source = "chunks"
        rec.output_tokens = len(times)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)
