"""Per-process run state, hung on the Locust `Environment` as `environment.goodput`.

Locust's Environment is the composition root; this object is what Goodput adds to it: parsed
options, the SLO, the current load stage, the workload stream, live token stats and where rows
go. Every load process (local, master, worker) has one; only the master/local one has a run folder.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from analysis.slo import Slo
from loadgen.requestid import RequestIds
from users.livestats import LiveStats
from users.options import parse_duration_s, request_id_header
from users.sink import CsvSink, RowBuffer


@dataclass(slots=True)
class Stage:
    """The load level requests are labelled with (`step`, `target_users` in requests.csv)."""

    step: int = 0
    target_users: int = 0
    rate_rps: float | None = None
    label: str = ""
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    spawn_rate: float = 0.0
    t_start_unix: float = 0.0
    t_end_unix: float | None = None


class RunContext:
    def __init__(self, environment: Any, slo: Slo, model: str) -> None:
        opts = environment.parsed_options
        self.environment = environment
        self.options = opts
        self.slo = slo
        self.model = model
        self.timeout_s = parse_duration_s(opts.request_timeout, "--request-timeout")
        self.think_time_s = parse_duration_s(opts.think_time, "--think-time")
        self.worker_name = f"{socket.gethostname()}-{os.getpid()}"
        self._request_ids = RequestIds()
        # the header that carries each request's id (None: sent without one; the row keeps the id)
        self.request_id_header = request_id_header(getattr(opts, "request_id_header", "X-Request-Id"))
        self._user_ids = itertools.count(1)
        self.stage = Stage()
        self.stages: list[Stage] = []
        self.live = LiveStats()
        self.buffer = RowBuffer()
        self.worker_index = 0
        self.worker_count = 1
        self._workload: Any = None
        self.refused = ""  # web UI: why the form's options were refused (users then send nothing)
        # master / local only
        self.run_dir: Path | None = None
        self.run_id = ""
        self.sink: CsvSink | None = None
        self.meta: dict = {}
        self.per_worker: dict[str, dict] = {}

    # -- identities ---------------------------------------------------------------
    def next_request_id(self) -> str:
        return self._request_ids.next()

    def next_user_id(self) -> int:
        return next(self._user_ids)

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.options.api_key_env) or None

    # -- workload -------------------------------------------------------------------
    def workload(self) -> Any:
        """Opened on first use, after the master has told this worker its slice."""
        if self._workload is None:
            from workloads import open_workload

            self._workload = open_workload(
                self.options.dataset,
                seed=self.options.seed,
                worker_index=self.worker_index,
                worker_count=self.worker_count,
                order=self.options.order,
            )
        return self._workload

    def chat_body(self, messages: list[dict], max_tokens: int | None, extra: dict | None = None) -> dict:
        body: dict = {
            "model": self.model,
            "messages": messages,
            "max_tokens": min(max_tokens, self.options.max_tokens) if max_tokens else self.options.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.options.ignore_eos:
            body["ignore_eos"] = True
        if extra:
            body.update(extra)
        return body

    def completion_body(self, prompt: str, max_tokens: int | None, extra: dict | None = None) -> dict:
        body = self.chat_body([], max_tokens, extra)
        del body["messages"]
        body["prompt"] = prompt
        return body

    # -- rows -----------------------------------------------------------------------
    def emit(self, row: list[str]) -> None:
        if self.sink is not None:
            self.sink.add_rows([row])
        else:
            self.buffer.add(row)

    # -- stages ----------------------------------------------------------------------
    def set_stage(self, stage: Stage) -> None:
        now = time.time()
        if self.stages and self.stages[-1].t_end_unix is None:
            self.stages[-1].t_end_unix = now
        stage.t_start_unix = stage.t_start_unix or now
        self.stage = stage
        self.stages.append(stage)

    def stages_meta(self) -> list[dict]:
        return [asdict(s) for s in self.stages]
