"""Every message Goodput's master and workers exchange, with its payload, in one place.

Two channels, both Locust's (msgpack over its ZeroMQ socket, plain dicts and lists):
- custom messages (`runner.send_message(NAME, data)`, `register_message(NAME, handler)`);
- keys Goodput adds to each worker report (`report_to_master` on the worker, `worker_report` on
  the master, once a second: `locust.runners.WORKER_REPORT_INTERVAL`).
Their order on the one socket is what makes the end of a run exact: a worker's `FLUSHED` follows
the report that carried its last rows, so the master knows they arrived.
"""

from __future__ import annotations

from typing import TypedDict

# -- custom messages -------------------------------------------------------------------------------

#: worker → master, once its handlers of the messages below are registered (at Locust's `init`), and
#: again on `ASK_READY`: no payload. Locust counts a worker ready when it connects, a moment before
#: that; the master's first stage waits for this (loadgen/run/scaleout.py `wait_for_workers`), so
#: nothing it sends is lost.
READY = "goodput_ready"
#: master → every connected worker, at the master's own `init`: no payload; "say READY again". A
#: worker can connect and say READY before the master registered its handler (`--processes` forks
#: the workers first), and Locust drops a message nobody handles.
ASK_READY = "goodput_ask_ready"
#: master → each worker, at every run start, before users spawn: `RunSettings`.
RUN = "goodput_run"
#: master → all workers, at every new load level: `core.stage.Stage.to_dict()`.
STAGE = "goodput_stage"
#: master → each live worker, the run is over: no payload; "send your last rows now".
FLUSH = "goodput_flush"
#: worker → master, after the report with its last rows: no payload (the sender is `msg.node_id`).
FLUSHED = "goodput_flushed"


class RunSettings(TypedDict):
    model: str  # the model every request names (resolved on the master)
    worker_index: int  # this worker's slice of the workload …
    worker_count: int  # … out of this many
    run_id: str  # the run folder's name


# -- keys in each worker report ----------------------------------------------------------------------

#: The rows made since the last report, the requests started this run, the live-figure entries.
ROWS = "goodput"


class RowsReport(TypedDict):
    rows: list[list[str]]  # requests.csv rows (core/record.py COLUMNS order)
    started: int  # requests this worker started this run (rows owed: loss accounting)
    taken_unix: float  # when the worker took these rows: every request it started later is not in them
    live: list[dict]  # loadgen/state/livestats.py entries since the last report (Locust's serialize())


#: Open-loop generator figures since the last report: loadgen/state/openloop.py `OpenLoopStats.drain()`.
OPEN_LOOP = "goodput_open_loop"
#: Self-measurement seconds: `{"worker": name, "seconds": [loadgen/monitors/selfmon.py records]}`.
SELFMON = "goodput_selfmon"
#: Requests this worker has waiting on the server right now (int), for the web UI's in-flight figure.
IN_FLIGHT = "goodput_in_flight"
