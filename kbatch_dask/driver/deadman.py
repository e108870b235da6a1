"""The dead-man's switch: a scheduler plugin that stops its own cluster once
the job's supervisor is gone.

If the supervisor is killed outright (SIGKILL, OOM, node loss), no ``finally``
runs and nobody would stop the cluster. So the supervisor keeps a Dask client
connected and registers this plugin, which watches for that one client: when
it has been absent for ``grace`` seconds, the scheduler asks the gateway to
stop the cluster with the cluster's own credentials (the gateway's scheduler
preload holds them). Other clients — the runner, a notebook peeking at the
dashboard — come and go without effect.

This module is shipped to the scheduler *by value* (cloudpickle), so the
scheduler's image does not need kbatch-dask: it must import nothing from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

logger = logging.getLogger("distributed.kbatch_dask.driver.deadman")


class SupervisorWatch(SchedulerPlugin):  # type: ignore[misc]
    name = "kbatch-dask-supervisor-watch"

    def __init__(self, client_id: str, grace: float, poll: float = 0.5) -> None:
        self.client_id = client_id
        self.grace = grace
        self.poll = poll
        self._task: asyncio.Task[None] | None = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._task = asyncio.ensure_future(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        gone_since: float | None = None
        while True:
            await asyncio.sleep(self.poll)
            if self.client_id in self.scheduler.clients:
                gone_since = None
                continue
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since >= self.grace:
                logger.warning(
                    "kbatch-dask: the job's supervisor (client %s) has been gone for %.0f s; stopping the cluster",
                    self.client_id,
                    self.grace,
                )
                await self._stop_cluster()
                return

    async def _stop_cluster(self) -> None:
        service = self.scheduler.services.get("gateway")
        for attempt in range(10):
            try:
                if service is not None:
                    await service.gateway.shutdown()
                else:  # not a gateway cluster: nothing to ask, just stop
                    await self.scheduler.close()
                return
            except Exception as exc:
                logger.warning("kbatch-dask: stopping the cluster failed (%s); retrying", exc)
                await asyncio.sleep(min(2**attempt, 10))


def arm(client: Any, grace: float) -> None:
    """Register the switch on ``client``'s scheduler, watching ``client`` itself."""
    import sys

    import cloudpickle

    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        client.register_plugin(SupervisorWatch(client.id, grace), name=SupervisorWatch.name)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
