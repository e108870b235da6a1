"""The dead-man's switch: a scheduler plugin that stops its own cluster once
the job's supervisor is gone.

If the supervisor is killed outright (SIGKILL, OOM, node loss), no ``finally``
runs and nobody would stop the cluster. So the supervisor keeps a Dask client
connected and registers this plugin, which watches for that one client, and
the scheduler asks the gateway to stop the cluster with the cluster's own
credentials (the gateway's scheduler preload holds them) in either of two cases:

- the client's connection closed ``grace`` seconds ago (a short delay, room
  for a reconnect) and it did not come back. A killed process's sockets are
  closed by its kernel at once, so a SIGKILL, an OOM kill or a crash shows here
  within the delay. (The connection runs through the gateway's proxy, which
  closes its side to the scheduler as soon as the driver's side closes.)
- the connection is still open but the client has sent no heartbeat for
  ``silence`` seconds (a long grace). Only a host that is gone (node lost,
  network cut) leaves a connection open with nobody behind it; a driver that
  is merely slow — stopped (SIGSTOP), or paused by a long garbage collection —
  keeps its connection open too and is not stopped unless it stays silent for
  the whole ``silence``. Dask clients heartbeat every 5 s (10 x the scheduler's
  ``heartbeat_interval`` for a handful of clients).

Other clients — the runner, a notebook peeking at the dashboard — come and go
without effect.

When the gateway cannot be reached (it was killed, say), the scheduler closes
itself after a few tries; its workers close with it.

The switch can only be armed once the cluster runs. A driver killed before
that (while the cluster starts) leaves a cluster nobody watches, so the
embedded gateway also loads this module as a scheduler preload
(``--preload kbatch_dask.driver.deadman``): a cluster that no client has
joined ``$KBATCH_DASK_ATTACH_TIMEOUT`` seconds after its scheduler started
stops itself. A configured gateway's clusters have no such preload: there
the driver records the cluster as soon as it is created, for ``kbatch gc``.

This module is shipped to the scheduler *by value* (cloudpickle), so the
scheduler's image does not need kbatch-dask: it must import nothing from it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.metrics import time as scheduler_time  # the clock of a client's ``last_seen``

logger = logging.getLogger("distributed.kbatch_dask.driver.deadman")

# Tries of the gateway before the scheduler closes itself: about 15 s of backoff.
GATEWAY_ATTEMPTS = 5
# Seconds the scheduler waits for the gateway to stop its workers before it closes anyway.
WORKERS_LEAVE_TIMEOUT = 30.0
ATTACH_TIMEOUT_VARIABLE = "KBATCH_DASK_ATTACH_TIMEOUT"
_closing: set[asyncio.Task[None]] = set()


class _Watch(SchedulerPlugin):  # type: ignore[misc]
    """A plugin that runs :meth:`_watch` on the scheduler's loop until it returns or the scheduler closes."""

    poll = 0.5
    _task: asyncio.Task[None] | None = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self._task = asyncio.ensure_future(self._watch())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        raise NotImplementedError


class SupervisorWatch(_Watch):
    name = "kbatch-dask-supervisor-watch"

    def __init__(self, client_id: str, grace: float, silence: float, poll: float = 0.1) -> None:
        self.client_id = client_id
        self.grace = grace  # seconds after its connection closed
        self.silence = silence  # seconds without a heartbeat on a connection still open
        self.poll = poll  # a look is a dict lookup: often, so a close shows at once

    async def _watch(self) -> None:
        gone_since: float | None = None
        while True:
            await asyncio.sleep(self.poll)
            client = self.scheduler.clients.get(self.client_id)
            if client is not None:
                gone_since = None
                silent = scheduler_time() - client.last_seen
                if silent < self.silence:
                    continue
                why = f"has sent no heartbeat for {silent:.0f} s on a connection still open (its host gone?)"
            else:
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since < self.grace:
                    continue
                why = f"closed its connection {self.grace:g} s ago and has not come back"
            logger.warning(
                "kbatch-dask: the job's supervisor (client %s) %s; stopping the cluster", self.client_id, why
            )
            await stop_cluster(self.scheduler)
            return


class AttachWatch(_Watch):
    """Stops a cluster no client has joined ``timeout`` seconds after its scheduler
    started; the first client (the driver's switch, or the job's own) ends the watch."""

    name = "kbatch-dask-attach-watch"

    def __init__(self, timeout: float, poll: float = 0.5) -> None:
        self.timeout = timeout
        self.poll = poll

    async def _watch(self) -> None:
        started = time.monotonic()
        while True:
            await asyncio.sleep(self.poll)
            if SupervisorWatch.name in self.scheduler.plugins or set(self.scheduler.clients) - {"fire-and-forget"}:
                return
            if time.monotonic() - started >= self.timeout:
                logger.warning(
                    "kbatch-dask: no client joined this cluster within %.0f s of its start "
                    "(its job's driver died while it started); stopping the cluster",
                    self.timeout,
                )
                await stop_cluster(self.scheduler)
                return


async def stop_cluster(scheduler: Any) -> None:
    """Ask the gateway to stop the cluster with its own credentials, then close the
    scheduler once its workers have left; when the gateway cannot be reached, close
    the scheduler at once (which closes its workers)."""
    service = scheduler.services.get("gateway")
    for attempt in range(GATEWAY_ATTEMPTS if service is not None else 0):
        try:
            await service.gateway.shutdown()
            break
        except Exception as exc:
            logger.warning("kbatch-dask: asking the gateway to stop the cluster failed (%s)", exc)
            if attempt + 1 < GATEWAY_ATTEMPTS:
                await asyncio.sleep(2**attempt)
    else:
        logger.warning("kbatch-dask: closing the scheduler without the gateway")
        _close(scheduler, DRIVER_GONE)
        return
    await _close_once_workers_left(scheduler, DRIVER_GONE)


DRIVER_GONE = "kbatch-dask: the job's driver is gone"
STOP_ASKED = "kbatch-dask: its stop was asked for"


def close_once_workers_left(dask_scheduler: Any) -> None:
    """Run on the scheduler (``Client.run_on_scheduler``) once the gateway was asked to stop
    the cluster: the scheduler closes as soon as its workers and its clients (the asking
    one closes next, the job's runner as its Python exits) have left, so that it has exited
    when the gateway's turn comes to stop it, rather than then starting to close. A client
    that stays (a notebook on the dashboard) leaves its stop to the gateway, as before."""
    _hold(asyncio.ensure_future(_close_once_workers_left(dask_scheduler, STOP_ASKED, clients=True)))


async def _close_once_workers_left(scheduler: Any, reason: str, clients: bool = False) -> None:
    # The gateway stops the workers, then the scheduler, one after the other: a scheduler
    # that closes as soon as its last worker has left has exited by the time its turn
    # comes. Not sooner: a worker (or a client) still connected would wait for it as it
    # closes, and try to reconnect.
    deadline = time.monotonic() + WORKERS_LEAVE_TIMEOUT
    while scheduler.workers or (clients and set(scheduler.clients) - {"fire-and-forget"}):
        if time.monotonic() >= deadline:
            if clients:
                return  # the gateway stops it, its clients or not
            break
        await asyncio.sleep(0.01)  # dict looks: often, so the close starts as the last one leaves
    _close(scheduler, reason)


def _close(scheduler: Any, reason: str) -> None:
    # In a task of its own: awaited in a plugin's task, the close waits for that task
    # (the scheduler closes its plugins) and never ends.
    _hold(asyncio.ensure_future(scheduler.close(reason=reason)))


def _hold(task: asyncio.Task[None]) -> None:
    """Keep a reference to ``task`` until it ends (the loop keeps only weak ones)."""
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def dask_setup(scheduler: Any) -> None:
    """The embedded gateway's scheduler preload: arm the :class:`AttachWatch`."""
    scheduler.add_plugin(AttachWatch(float(os.environ.get(ATTACH_TIMEOUT_VARIABLE, "60"))))


def arm(client: Any, grace: float, silence: float) -> None:
    """Register the switch on ``client``'s scheduler, watching ``client`` itself."""
    with by_value(sys.modules[__name__]):
        client.register_plugin(SupervisorWatch(client.id, grace, silence), name=SupervisorWatch.name)


def close_once_stopped(client: Any) -> concurrent.futures.Future[Any]:
    """Tell ``client``'s scheduler, whose cluster's stop the gateway is about to be asked
    for, to close once its workers and clients have left (:func:`close_once_workers_left`);
    sent on the client's loop, not waited for (the returned future has the answer)."""
    from distributed.protocol.pickle import dumps

    with by_value(sys.modules[__name__]):
        function = dumps(close_once_workers_left)  # type: ignore[no-untyped-call]
    call = client.scheduler.run_function(function=function, args=dumps(()), kwargs=dumps({}), wait=True)  # type: ignore[no-untyped-call]
    return asyncio.run_coroutine_threadsafe(call, client.loop.asyncio_loop)


@contextlib.contextmanager
def by_value(module: ModuleType) -> Iterator[None]:
    """Pickle ``module``'s functions and classes by value while in this block: the
    scheduler needs no kbatch-dask (this module, and the job's meter, are sent so)."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        cloudpickle.unregister_pickle_by_value(module)
