"""The open-loop user (`--rate`, sweep, trace, rate stages): one per load process, it runs the
dispatcher of loadgen/openloop.py, which sends each arrival at its scheduled time whatever the
server does (no coordinated omission)."""

from __future__ import annotations

import gevent
from locust import task

from loadgen import context
from loadgen.openloop import Driver
from users.base import LLMUser


class RateUser(LLMUser):
    """Open loop (`--rate`, sweep, trace, rate stages). Locust runs exactly one per load process."""

    one_per_process = True

    def wait_time(self) -> float:
        """No pause between tasks: the dispatcher keeps the schedule (its closed-loop stages pace
        themselves, loadgen/openloop.py `_closed_loop`)."""
        return 0.0

    def on_start(self) -> None:
        self.ctx = context.of(self.environment)
        self.goodput_id = 0
        self.driver: Driver | None = None

    def on_stop(self) -> None:
        if self.driver is not None:
            self.driver.stop()
            self.ctx.driver = None
            self.driver = None

    @task
    def drive(self) -> None:
        ctx = self.ctx
        if ctx.driver is not None:  # only one dispatcher per process; a spare user idles
            gevent.sleep(5.0)
            return
        self.driver = ctx.driver = Driver(ctx, self.host or self.environment.host)
        try:
            self.driver.run()
        except Exception:
            # Locust logs the error and runs the task again: start over with a fresh dispatcher,
            # a second later so that a persistent error cannot spin.
            self.on_stop()
            gevent.sleep(1.0)
            raise
