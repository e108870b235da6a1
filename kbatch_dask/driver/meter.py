"""The job meter: a scheduler plugin that sums up what the job's cluster did,
for the job's report (:mod:`.metering` fetches it, :mod:`kbatch_dask.report` reads it).

It keeps aggregates only, whatever the job runs: the workers and threads over
time (integrated at each arrival and departure), compute seconds and counts by
task prefix (from each task's ``startstops`` as it reaches memory or errs; at
most :data:`MAX_PREFIXES` prefixes, the rest summed as ``other``), and, sampled
every ``sample`` seconds from the worker metrics the scheduler already holds,
the peak memory and spill of a worker. Transfer and spill-write bytes are read
once, at the end, from the scheduler's cumulative worker metrics.

With ``task_stream``, it also starts the scheduler's task stream, and
:func:`collect` returns, besides the summary, what Dask's performance report
reads of the scheduler (:func:`page_data`): the driver renders the HTML page
from it once the cluster has stopped (:mod:`.page`), so that bokeh's work is
not on the cluster's stop path.

Like :mod:`.deadman`, this module is shipped to the scheduler *by value*
(cloudpickle): it imports nothing from kbatch-dask.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from dask.utils import key_split
from distributed.diagnostics.plugin import SchedulerPlugin
from distributed.diagnostics.task_stream import TaskStreamPlugin

MAX_PREFIXES = 200  # a job of generated names (f"task-{i}") keeps the report small
TOP_PREFIXES = 20  # prefixes the report lists, by compute time
OTHER = "other"


class JobMeter(SchedulerPlugin):  # type: ignore[misc]
    name = "kbatch-dask-job-meter"

    def __init__(self, sample: float = 1.0, task_stream: bool = False) -> None:
        self.sample = sample
        self.task_stream = task_stream  # for Dask's performance report
        self._task: asyncio.Task[None] | None = None

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        now = time.time()
        self.metered_from = now
        self.scheduler_started = float(getattr(scheduler, "time_started", now))
        self.monitor_count = int(scheduler.monitor.count)  # where Dask's performance report starts
        self.changed = now
        self.first_worker: float | None = now if scheduler.workers else None
        self.workers, self.threads, self.memory_limits = _count(scheduler.workers.values())
        self.peak_workers, self.peak_threads = self.workers, self.threads
        self.worker_seconds = self.thread_seconds = self.memory_limit_byte_seconds = 0.0
        self.memory_limit = max((ws.memory_limit or 0 for ws in scheduler.workers.values()), default=0)
        self.peak_memory = self.peak_spilled = 0
        self.prefixes: dict[str, list[float]] = {}  # prefix -> [compute seconds, tasks, erred]
        if self.task_stream and TaskStreamPlugin.name not in scheduler.plugins:
            # Here rather than by the client's get_task_stream(): one round trip less at the job's start.
            scheduler.add_plugin(TaskStreamPlugin(scheduler))  # type: ignore[no-untyped-call]
        self._task = asyncio.ensure_future(self._sampling())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    # -- workers over time -------------------------------------------------------

    def _integrate(self, now: float) -> None:
        span = max(0.0, now - self.changed)
        self.worker_seconds += self.workers * span
        self.thread_seconds += self.threads * span
        self.memory_limit_byte_seconds += self.memory_limits * span
        self.changed = now

    def _recount(self, leaving: str | None = None) -> None:
        now = time.time()
        self._integrate(now)
        present = [ws for address, ws in self.scheduler.workers.items() if address != leaving]
        self.workers, self.threads, self.memory_limits = _count(present)
        self.peak_workers = max(self.peak_workers, self.workers)
        self.peak_threads = max(self.peak_threads, self.threads)
        if present and self.first_worker is None:
            self.first_worker = now
        self.memory_limit = max([self.memory_limit, *(ws.memory_limit or 0 for ws in present)])

    def add_worker(self, scheduler: Any = None, worker: str | None = None) -> None:
        self._recount()

    def remove_worker(self, scheduler: Any = None, worker: str | None = None, **kwargs: Any) -> None:
        self._recount(leaving=worker)

    # -- tasks --------------------------------------------------------------------

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kwargs: Any) -> None:
        if finish != "memory" and finish != "erred":
            return  # the hot path: most transitions are neither
        prefix = key_split(key)
        entry = self.prefixes.get(prefix)
        if entry is None:
            prefix = prefix if len(self.prefixes) < MAX_PREFIXES else OTHER
            entry = self.prefixes.setdefault(prefix, [0.0, 0, 0])
        for startstop in kwargs.get("startstops") or ():
            if startstop.get("action") == "compute":
                entry[0] += startstop["stop"] - startstop["start"]
        entry[1] += 1
        if finish == "erred":
            entry[2] += 1

    # -- memory, sampled ------------------------------------------------------------

    async def _sampling(self) -> None:
        while True:
            self._look()
            await asyncio.sleep(self.sample)

    def _look(self) -> None:
        for ws in self.scheduler.workers.values():
            self.peak_memory = max(self.peak_memory, int(ws.memory.process))
            spilled = (ws.metrics or {}).get("spilled_bytes") or {}
            self.peak_spilled = max(self.peak_spilled, int(spilled.get("disk") or 0))

    def summary(self) -> dict[str, Any]:
        """The report's figures now (see docs/user-guide.md, "What did my job cost?")."""
        now = time.time()
        self._integrate(now)
        with contextlib.suppress(Exception):  # a worker's metrics in a shape this Dask does not have
            self._look()
        metrics = getattr(self.scheduler, "cumulative_worker_metrics", {}) or {}
        transferred = spill_written = 0.0
        for key, value in metrics.items():
            if isinstance(key, tuple) and key[-1] == "bytes":
                transferred += value if key[0] == "get-data" else 0
                spill_written += value if key[-2] == "disk-write" else 0
        cpu = sum(v for k, v in metrics.items() if isinstance(k, tuple) and k[0] == "execute" and k[-2] == "thread-cpu")
        ranked = sorted(self.prefixes.items(), key=lambda item: -item[1][0])
        metered = max(now - self.metered_from, 1e-9)
        return {
            "version": 1,
            "scheduler_started": self.scheduler_started,
            "metered_from": self.metered_from,
            "first_worker": self.first_worker,
            "collected": now,
            "workers": {
                "peak": self.peak_workers,
                "mean": self.worker_seconds / metered,
                "seconds": self.worker_seconds,
                "threads_peak": self.peak_threads,
                "thread_seconds": self.thread_seconds,
                "memory_limit_byte_seconds": self.memory_limit_byte_seconds,
            },
            "tasks": {
                "count": int(sum(e[1] for e in self.prefixes.values())),
                "erred": int(sum(e[2] for e in self.prefixes.values())),
                "compute_seconds": sum(e[0] for e in self.prefixes.values()),
                "cpu_seconds": cpu,  # from the workers' heartbeats: the last second or so may be missing
                "prefixes": [
                    {"prefix": p, "seconds": e[0], "count": int(e[1]), "erred": int(e[2])}
                    for p, e in ranked[:TOP_PREFIXES]
                ],
            },
            "memory": {
                "peak_bytes": self.peak_memory,
                "limit_bytes": self.memory_limit or None,
                "spilled_peak_bytes": self.peak_spilled,
                "spill_written_bytes": int(spill_written),
            },
            "transfer_bytes": int(transferred),
        }


def _count(workers: Any) -> tuple[int, int, int]:
    """Workers, their threads and their memory limits' sum."""
    listed = list(workers)
    return len(listed), sum(ws.nthreads for ws in listed), sum(ws.memory_limit or 0 for ws in listed)


async def collect(dask_scheduler: Any, page: bool = False) -> dict[str, Any] | None:
    """Run on the scheduler (``Client.run_on_scheduler``): the meter's summary and, with
    ``page``, the data of Dask's performance report (:func:`page_data`); None without a meter."""
    meter = dask_scheduler.plugins.get(JobMeter.name)
    if meter is None:
        return None
    report = meter.summary()
    data = await page_data(dask_scheduler, report["metered_from"], meter.monitor_count) if page else None
    return {"report": report, "page": data}


async def page_data(scheduler: Any, start: float, monitor_count: int) -> dict[str, Any]:
    """What ``Scheduler.performance_report`` reads of the scheduler since ``start``, as
    plain data: the three profiles (the workers' compute and administrative ones, the
    scheduler's), the task stream, bandwidths, the system monitor since
    ``monitor_count`` and the scheduler's log."""
    profiles = await asyncio.gather(
        scheduler.get_profile(start=start),
        scheduler.get_profile(scheduler=True, start=start),
        scheduler.get_profile(server=True, start=start),
    )
    monitor = scheduler.monitor
    return {
        "start": start,
        "stop": time.time(),
        "address": scheduler.address,
        "workers": {a: [ws.name, ws.nthreads, ws.memory_limit] for a, ws in scheduler.workers.items()},
        "profiles": list(profiles),
        "task_stream": scheduler.get_task_stream(start=start),
        "bandwidth": scheduler.bandwidth,
        "bandwidth_workers": dict(scheduler.bandwidth_workers),
        "bandwidth_types": dict(scheduler.bandwidth_types),
        # At least the last sample: the page's system tab cannot draw none (a job shorter than its period).
        "monitor": {"count": monitor.count, "since": monitor.range_query(start=min(monitor_count, monitor.count - 1))},
        "logs": scheduler.get_logs(start=start, timestamps=True),
    }
