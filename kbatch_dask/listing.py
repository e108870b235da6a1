"""The queue as the API gives it: job records joined with their clusters' live
state (:func:`list_records`, :func:`show_record`; :mod:`kbatch_dask.api`
re-exports both).

A module of its own so that ``kqueue`` imports the settings, its backend and
the gateway's client, and not what only submitting needs (the spec's
validation, the job handle, the hub's tokens, the reaper).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from kbatch_dask import queue as q
from kbatch_dask import settings
from kbatch_dask.backends import Backend, get_backend
from kbatch_dask.errors import KbatchError
from kbatch_dask.records import JobRecord, JobState, now

if TYPE_CHECKING:
    from kbatch_dask.gateway import GatewaySettings
    from kbatch_dask.settings import Settings


def backend_for(name: str | None, config: Settings | None = None) -> Backend:
    """The backend called ``name``, else the configured one."""
    config = config or settings.load()
    return get_backend(name or config.backend, config)


def list_records(
    *,
    all: bool = False,
    states: Sequence[JobState] = (),
    user: str | None = None,
    backend: str | None = None,
    live: bool = True,
) -> list[JobRecord]:
    """Job records for the queue, joined with their clusters' live state.

    Without ``all``: active jobs and those that ended in the last
    ``kbatch.queue.recent-hours``.
    """
    config = settings.load()
    b = backend_for(backend, config)
    since = None if all else now() - timedelta(hours=config.queue.recent_hours)
    records = b.list(ended_since=since)
    if states:
        records = [r for r in records if r.state in states]
    if user:
        records = [r for r in records if r.user == user]
    return with_clusters(b, records, config.queue.live_timeout) if live else records


def show_record(job_id: str, backend: str | None = None) -> JobRecord:
    """One job's record, joined with its cluster's live state."""
    config = settings.load()
    b = backend_for(backend, config)
    return with_clusters(b, [b.get(job_id)], config.queue.live_timeout)[0]


def with_clusters(backend: Backend, records: list[JobRecord], live_timeout: float) -> list[JobRecord]:
    """``records`` joined with what the gateway says of their clusters now."""
    gateway = _gateway_settings(backend, records)
    if gateway is None:
        return q.collect(records, None)
    from kbatch_dask.gateway.client import GatewayClient  # only where a cluster is to be asked about

    with GatewayClient(gateway) as client:
        return q.collect(records, client, live_timeout)


def _gateway_settings(backend: Backend, records: list[JobRecord]) -> GatewaySettings | None:
    if not any(r.dask and r.dask.cluster for r in records):
        return None
    try:
        # Not probed: a gateway that is down, or still starting, refuses the listing
        # itself, which shows the same unknown cluster states; one request, not two.
        return backend.gateway(probe=False)
    except KbatchError:
        return None
