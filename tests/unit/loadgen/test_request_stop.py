"""A user stopped while its request is in flight (loadgen/request.py `perform`): the row it keeps.
An answer read to its end marker before the stop is complete — and classified as any other: the SDK's
client reads the body's tail after `[DONE]` before it classifies, so a stop landing there must not turn
an answer without text into an ok row (seen in the fault e2e test at the run's stop)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from gevent import GreenletExit

from core.record import COLUMNS
from core.result import StreamResult
from loadgen.request import perform
from loadgen.transport.apis import APIS


class _Stopped:
    """A transport whose request got its answer to the end marker, then the user was stopped."""

    def __init__(self, res: StreamResult) -> None:
        self.in_flight = res

    def stream(self, *_: Any) -> StreamResult:
        raise GreenletExit


def _user(res: StreamResult, rows: list[dict]) -> Any:
    slo = SimpleNamespace(is_good=lambda *_: True)
    ids = SimpleNamespace(next=lambda: "rid-1", headers=lambda *_: {}, header="X-Request-Id")
    ctx = SimpleNamespace(
        ids=ids, stage=SimpleNamespace(step=0, target_users=1), dataset_of=lambda _: "d", worker_name="w",
        model="m", buffer=SimpleNamespace(started=0), in_flight=0, timeout_s=5.0, counter=None,
        live=SimpleNamespace(log_sent=lambda: None, log_request=lambda *_, **__: None), slo_of=lambda _: slo,
        environment=SimpleNamespace(events=SimpleNamespace(request=SimpleNamespace(fire=lambda **_: None))),
        emit=rows.append,
    )  # fmt: skip
    return SimpleNamespace(ctx=ctx, goodput_id="u1", scenario="chat", transport=_Stopped(res))


@pytest.mark.parametrize(("text", "error"), [(False, "empty_output"), (True, "")])
def test_an_answer_read_to_its_end_before_the_stop_is_classified(text: bool, error: str) -> None:
    res = StreamResult()
    res.t_send, res.read_to_end, res.done, res.finish_reason = 1.0, True, True, "stop"
    res.usage = {"prompt_tokens": 3, "completion_tokens": 1 if text else 0}
    if text:
        res.text_times.append(1.2)
    rows: list[dict] = []
    with pytest.raises(GreenletExit):
        perform(_user(res, rows), APIS["chat"], {})
    (values,) = rows
    row = dict(zip(COLUMNS, values, strict=True))
    assert (row["error"] or "", row["ok"]) == (error, "false" if error else "true")
