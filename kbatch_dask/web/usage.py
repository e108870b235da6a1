"""Usage per user, for the admin view of the page: pure, from the same records
(``JobRecord.to_dict()``) the CLI prints.

What the records hold is what was *requested*, so that is what is summed: a
job's run time (:meth:`~kbatch_dask.records.JobRecord.elapsed`, up to now for a
running job, none for a pending one) times its driver's ``--cpus`` (jobs that
gave none are left out of the core-hours: their cores are the backend's
default, which the record does not hold), and times its requested Dask workers
(an adaptive ``MIN:MAX`` counts at its maximum, a cluster the gateway capped at
its cap: an upper bound of what it used; the job report has what it did use).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kbatch_dask.records import JobRecord, JobState, now


@dataclass(frozen=True)
class Usage:
    """One user's jobs among those listed: how many in each phase, and what they requested."""

    user: str
    running: int = 0
    pending: int = 0
    ended: int = 0
    core_hours: float = 0.0  # driver --cpus x run time, of the jobs that gave --cpus
    worker_hours: float = 0.0  # requested workers x run time (adaptive: its maximum)

    def plus(self, record: JobRecord, at: datetime) -> Usage:
        hours = (record.elapsed(at) or 0.0) / 3600
        return Usage(
            self.user,
            self.running + (record.state is JobState.RUNNING),
            self.pending + (record.state is JobState.PENDING),
            self.ended + record.state.is_terminal(),
            self.core_hours + (record.cpus or 0.0) * hours,
            self.worker_hours + requested_workers(record) * hours,
        )


def requested_workers(record: JobRecord) -> int:
    """The most workers the job asked for (and the gateway allowed).

    >>> from kbatch_dask.records import DaskInfo
    >>> r = JobRecord("a", "n", "u", "local", JobState.RUNNING, now(), "s", dask=DaskInfo("2:20", worker_limit=8))
    >>> requested_workers(r), requested_workers(r.replace(dask=None))
    (8, 0)
    """
    if record.dask is None:
        return 0
    most = int(record.dask.workers.split(":")[-1])
    return min(most, record.dask.worker_limit) if record.dask.worker_limit is not None else most


def per_user(jobs: Iterable[dict[str, Any]], at: datetime | None = None) -> list[Usage]:
    """Each user's :class:`Usage` over ``jobs``, by user name; ``at``: now unless given."""
    at = at or now()
    usage: dict[str, Usage] = {}
    for job in jobs:
        record = JobRecord.from_dict(job)
        usage[record.user] = usage.get(record.user, Usage(record.user)).plus(record, at)
    return [usage[user] for user in sorted(usage)]
