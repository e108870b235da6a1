"""The queue: job records joined with what the gateway reports about their clusters.

:func:`join` is pure; :func:`collect` does the I/O (one cluster listing, live
counts read concurrently with a short timeout) and calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from kbatch_dask.errors import GatewayError
from kbatch_dask.gateway.dashboards import live_workers
from kbatch_dask.gateway.status import ClusterInfo, ClusterStatus
from kbatch_dask.records import JobRecord

if TYPE_CHECKING:  # a queue without clusters does not import the client
    from kbatch_dask.gateway.client import GatewayClient


def join(
    records: Iterable[JobRecord],
    clusters: Mapping[str, ClusterInfo] | None,
    live: Mapping[str, int | None],
) -> list[JobRecord]:
    """Fill each record's ``dask`` with its cluster's status, dashboard and live
    worker count. ``clusters`` is None when the gateway could not be asked: the
    status is then unknown rather than guessed.

    >>> from kbatch_dask.records import DaskInfo, JobState, now
    >>> r = JobRecord("k3x9q", "t", "me", "local", JobState.RUNNING, now(), "t.py",
    ...               dask=DaskInfo("2", cluster="abc"))
    >>> info = ClusterInfo("abc", ClusterStatus.RUNNING, "http://gw/clusters/abc/status")
    >>> joined = join([r], {"abc": info}, {"http://gw/clusters/abc/status": 2})
    >>> joined[0].dask.cluster_status, joined[0].dask.live_workers
    (<ClusterStatus.RUNNING: 'RUNNING'>, 2)
    """
    out = []
    for record in records:
        dask = record.dask
        if dask is None or dask.cluster is None:
            out.append(record)
            continue
        if clusters is None:
            out.append(record)
            continue
        info = clusters.get(dask.cluster)
        if info is None:
            # The gateway forgets stopped clusters after a while.
            dask = dask.replace(cluster_status=ClusterStatus.STOPPED, live_workers=0)
        elif info.status is ClusterStatus.RUNNING:
            dashboard = info.dashboard or dask.dashboard
            dask = dask.replace(
                cluster_status=info.status,
                dashboard=dashboard,
                live_workers=live.get(dashboard) if dashboard else None,
            )
        else:
            dask = dask.replace(cluster_status=info.status, live_workers=0)
        out.append(record.replace(dask=dask))
    return out


def collect(records: list[JobRecord], gateway: GatewayClient | None, live_timeout: float = 1.0) -> list[JobRecord]:
    """Ask the gateway about the records' clusters (only if any has one) and join."""
    if gateway is None or not any(r.dask and r.dask.cluster for r in records):
        return join(records, None, {})
    try:
        clusters = gateway.list_clusters()
    except GatewayError:
        return join(records, None, {})
    wanted = {r.dask.cluster for r in records if r.dask and r.dask.cluster}
    dashboards = [
        c.dashboard
        for name, c in clusters.items()
        if name in wanted and c.status is ClusterStatus.RUNNING and c.dashboard
    ]
    return join(records, clusters, live_workers(dashboards, timeout=live_timeout))
