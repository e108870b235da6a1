"""The scheduler's end of the dead-man's switch, on a stand-in scheduler: which state
of the supervisor's client stops the cluster (the real scheduler and gateway are in
tests/e2e/test_dead_mans_switch.py)."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from distributed.metrics import time as scheduler_time

from kbatch_dask.driver.deadman import STOP_ASKED, SupervisorWatch, close_once_workers_left


class Scheduler:
    """What the watch uses of a scheduler: its clients and workers (none: the gateway
    stopped them), its close, and the gateway's service that stops the cluster."""

    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients = clients
        self.workers: dict[str, Any] = {}
        self.stops = 0
        self.closed = asyncio.Event()
        self.services = {"gateway": types.SimpleNamespace(gateway=self)}

    async def shutdown(self) -> None:
        self.stops += 1

    async def close(self, reason: str) -> None:
        self.reason = reason
        self.closed.set()


def watch_until_it_stops(scheduler: Scheduler, grace: float, silence: float) -> None:
    async def run() -> None:
        watch = SupervisorWatch("supervisor", grace, silence, poll=0.01)
        await watch.start(scheduler)
        assert watch._task is not None
        await asyncio.wait_for(watch._task, 30)
        await asyncio.wait_for(scheduler.closed.wait(), 30)  # it closes itself too, once its workers have left

    asyncio.run(run())


def test_a_client_silent_for_the_silence_on_an_open_connection_stops_the_cluster() -> None:
    silent = types.SimpleNamespace(last_seen=scheduler_time() - 120)  # its last heartbeat 2 minutes ago
    scheduler = Scheduler({"supervisor": silent, "runner": types.SimpleNamespace(last_seen=scheduler_time())})
    watch_until_it_stops(scheduler, grace=3600, silence=60)
    assert scheduler.stops == 1


def test_a_client_whose_connection_closed_stops_the_cluster_after_the_grace() -> None:
    scheduler = Scheduler({"runner": types.SimpleNamespace(last_seen=scheduler_time())})
    watch_until_it_stops(scheduler, grace=0.05, silence=3600)
    assert scheduler.stops == 1


def test_a_scheduler_whose_stop_was_asked_for_closes_itself_once_its_workers_have_left() -> None:
    scheduler = Scheduler({"driver": object(), "runner": object(), "fire-and-forget": object()})
    scheduler.workers = {"tcp://w1": object()}

    async def run() -> None:
        close_once_workers_left(dask_scheduler=scheduler)
        await asyncio.sleep(0.3)
        assert not scheduler.closed.is_set()  # a worker still connected would wait for it as it closes
        scheduler.workers.clear()  # the gateway stopped it
        await asyncio.sleep(0.3)
        assert not scheduler.closed.is_set()  # nor a client: the driver's closes next, the runner's as it exits
        del scheduler.clients["driver"]
        await asyncio.sleep(0.3)
        assert not scheduler.closed.is_set()
        del scheduler.clients["runner"]
        await asyncio.wait_for(scheduler.closed.wait(), 5)

    asyncio.run(run())
    assert scheduler.reason == STOP_ASKED
    assert scheduler.stops == 0  # the gateway was asked already: not again


def test_a_scheduler_whose_stop_was_asked_for_leaves_its_stop_to_the_gateway_while_a_client_stays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kbatch_dask.driver import deadman

    monkeypatch.setattr(deadman, "WORKERS_LEAVE_TIMEOUT", 0.3)
    scheduler = Scheduler({"notebook": object()})  # someone watching its dashboard

    async def run() -> None:
        close_once_workers_left(dask_scheduler=scheduler)
        await asyncio.sleep(1.0)

    asyncio.run(run())
    assert not scheduler.closed.is_set() and scheduler.stops == 0
