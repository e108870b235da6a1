"""Dask's performance report (``kbatch-%j.report.html``), rendered by the driver
from what the :mod:`.meter` collected on the scheduler (:func:`.meter.page_data`).

Dask builds this page on the scheduler (``Scheduler.performance_report``); with
bokeh that takes about a second, which on the scheduler would be between the
script's end and the cluster's stop. Here Dask's own method runs instead on a
:class:`Snapshot` of the scheduler, the data fetched with the job's summary, once
the stop has been asked for: the same page, off the stop path. The page's
"Dask Version" lines are the driver's (the versions the method imports).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import types
from typing import Any


class Monitor:
    """The scheduler's system monitor as collected: its quantities since the job's start."""

    def __init__(self, count: int, since: dict[str, list[Any]]) -> None:
        self.count = count
        self.since = since
        self.quantities = since  # their names are what the dashboard's SystemMonitor reads here

    def range_query(self, start: int) -> dict[str, list[Any]]:
        if start >= self.count:
            return {k: [] for k in self.since}
        return {k: list(v[-(self.count - start) :]) for k, v in self.since.items()}

    def update(self) -> None:
        pass  # no new samples: the cluster has stopped


class Snapshot:
    """What ``Scheduler.performance_report`` reads of its scheduler (``self``), from
    :func:`.meter.page_data`; every query answers with the job's whole lifetime,
    which is what the job's report asks for."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.address = data["address"]
        self.workers = {
            address: types.SimpleNamespace(name=name, nthreads=nthreads, memory_limit=memory_limit)
            for address, (name, nthreads, memory_limit) in data["workers"].items()
        }
        self.bandwidth = data["bandwidth"]
        self.bandwidth_workers = {tuple(k): v for k, v in data["bandwidth_workers"].items()}
        self.bandwidth_types = data["bandwidth_types"]
        self.monitor = Monitor(data["monitor"]["count"], data["monitor"]["since"])

    async def get_profile(self, scheduler: bool = False, server: bool = False, **kwargs: Any) -> Any:
        compute, scheduler_profile, administrative = self.data["profiles"]  # as meter.page_data lists them
        return scheduler_profile if scheduler else administrative if server else compute

    def get_task_stream(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.data["task_stream"])

    def get_logs(self, **kwargs: Any) -> list[Any]:
        return list(self.data["logs"])


def prepare() -> None:
    """Import what :func:`render` needs (bokeh and Dask's dashboard: seconds on a busy
    machine), in a thread while the driver collects the report and stops the cluster."""
    with contextlib.suppress(ImportError):  # render() meets it again, and the driver logs it there
        import bokeh.plotting  # noqa: F401
        import distributed.dashboard.components.scheduler
        import distributed.dashboard.components.shared  # noqa: F401


def render(data: dict[str, Any], code: str) -> str:
    """The HTML page, as ``Scheduler.performance_report`` makes it on the scheduler."""
    from distributed.scheduler import Scheduler

    # The page's duration is its stop (now) minus its start: the job's metered span, kept
    # as it was when collected rather than stretched by the time since.
    start = time.time() - (data["stop"] - data["start"])
    page = asyncio.run(Scheduler.performance_report(Snapshot(data), start=start, last_count=0, code=code, mode=None))  # type: ignore[arg-type]
    return str(page)
