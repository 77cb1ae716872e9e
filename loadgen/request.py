"""One request, end to end on the client: send, stream, make the row, tell Locust and the live stats.

Every user class funnels through `perform`, so a request is measured, labelled and recorded the
same way whatever its shape (single shot, agent turn, open-loop arrival).
"""

from __future__ import annotations

import time
from typing import Any

from gevent import GreenletExit

from core.clock import wall_and_perf
from core.measure import fill_record
from core.record import RequestRecord
from core.result import StreamResult
from loadgen.context import RunContext
from loadgen.transport.apis import Api
from loadgen.transport.client import explain_rejection, finish


class LLMRequestError(Exception):
    """Shown in Locust's failures table: the category only, so the table stays short."""


def perform(
    user: Any,
    api: Api,
    body: dict,
    *,
    session: str = "",
    turn: int = 0,
    scheduled_unix: float | None = None,
    backoff_s: float | None = None,
    model: str = "",
    images: int = 0,
) -> StreamResult:
    """Send `body` to `api` for `user` (anything with `ctx`, `goodput_id`, `scenario`, `transport`, and
    `tenant` under `--mix`) and record it.

    `backoff_s`: how long the user paused after failures before this request (its row says so);
    `model`: the model the body names (`RunContext.model_for`), else the run's; `images`: the images
    the body carries (workloads/images.py `count_images` of its messages).
    """
    ctx: RunContext = user.ctx
    rid = ctx.ids.next()
    stage = ctx.stage
    tenant = getattr(user, "tenant", "")
    rec = RequestRecord(
        worker=ctx.worker_name,
        user=user.goodput_id,
        session=session,
        turn=turn,
        request_id=rid,
        scenario=user.scenario,
        dataset=ctx.dataset_of(tenant),
        step=stage.step,
        target_users=stage.target_users,
        t_scheduled_unix=scheduled_unix,
        api=api.name,
        backoff_s=backoff_s,
        tenant=tenant,
        model=model or ctx.model,
        images=images,
    )
    ctx.buffer.started += 1
    ctx.live.log_sent()
    ctx.in_flight += 1
    t_wall, t_perf = wall_and_perf()
    try:
        res = user.transport.stream(api, body, ctx.ids.headers(rid, session, user.goodput_id), ctx.timeout_s)
        explain_rejection(res, ctx.ids.header)
    except GreenletExit:
        # The user is being stopped mid-request: the server saw it, so it keeps its row, with
        # whatever had arrived (the transport's partial result) — a complete one when the body had
        # been read to its end before the stop reached this greenlet (the reader reads for it).
        partial = getattr(user.transport, "in_flight", None)
        if partial is not None and partial.read_to_end:
            # the stop may come after the end marker and before the transport classified the answer (the
            # SDK's client reads the body's tail first): an empty one is still empty_output, not ok
            finish(partial)
            _complete(user, ctx, rec, partial, api.path, t_wall, t_perf)
        else:
            _cancelled(ctx, rec, partial, t_wall, t_perf)
        raise
    finally:
        ctx.in_flight -= 1
    try:
        ctx.io_first.wait()
    finally:  # also when the user is stopped meanwhile: the request is complete, it keeps its row
        _complete(user, ctx, rec, res, api.path, t_wall, t_perf)
    return res


def _cancelled(ctx: RunContext, rec: RequestRecord, partial: StreamResult | None, t_wall: float,
               t_perf: float) -> None:  # fmt: skip
    """The row of a request cut short by its user's stop: the chunks that arrived, TTFT, ITL and their
    tokens (`tokens_source` chunks); E2E is send → the last chunk, or → the cancel when none came."""
    now = time.perf_counter()
    if partial is not None and partial.t_send:
        fill_record(rec, partial)
        rec.t_start_unix = t_wall + (partial.t_send - t_perf)
        if not partial.text_times and partial.t_last is None:
            rec.e2e_s = now - partial.t_send
    else:
        rec.t_start_unix = t_wall
        rec.e2e_s = now - t_perf
    rec.ok = False
    rec.error, rec.error_detail = "cancelled", "user stopped while the request was in flight"
    ctx.emit(rec.row())


def _complete(user: Any, ctx: RunContext, rec: RequestRecord, res: StreamResult, path: str, t_wall: float,
              t_perf: float) -> None:  # fmt: skip
    rid = rec.request_id
    rec.t_start_unix = t_wall + (res.t_send - t_perf) if res.t_send else t_wall
    fill_record(rec, res)
    if rec.tokens_source == "chunks" and ctx.counter is not None:  # the server stated no count
        rec.output_tokens, thought = ctx.counter.count(res)
        rec.tokens_source = "tokenizer"
        if res.splits_reasoning:
            rec.reasoning_tokens = thought
    good = rec.ok and ctx.slo_of(rec.tenant).is_good(
        rec.ttft_s, rec.tpot_s, rec.e2e_s, rec.ttfo_s
    )  # its class's SLO
    elapsed_ms = (rec.e2e_s if rec.e2e_s is not None else time.perf_counter() - t_perf) * 1000.0
    ctx.environment.events.request.fire(
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
        rec.ttft_s, rec.tpot_s, rec.itl_s, rec.e2e_s, rec.output_tokens or 0, rec.ok, good, rec.error,
        ttfo_s=rec.ttfo_s, reasoning_tokens=rec.reasoning_tokens,
    )  # fmt: skip
    ctx.emit(rec.row())
