"""The shape's hooks: how a shape tells the run what happens, without knowing the run.

shapes/ sits below the load path (it imports only core/), so it cannot set the run's stage or
write run.json itself; it fires these hooks and loadgen/run/stages.py listens. Every listener gets
the master's (or local runner's) `environment` first.
"""

from __future__ import annotations

from locust.event import EventHook

#: The schedule was built for a new run: `(environment, schedule: Schedule)`; a listener binds it
#: to the run's progress (`schedule.bind(progress)`).
schedule_built = EventHook()
#: A new load level became active: `(environment, level: Level, first: bool)`.
level_changed = EventHook()
#: The schedule ended (the run is about to stop its users): `(environment, schedule: Schedule)`.
schedule_ended = EventHook()
#: The schedule's name and parameters for run.json: `(environment, description: dict)`.
described = EventHook()
