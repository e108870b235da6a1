"""What ``kbatch gc`` stops: clusters that outlived their job (pure; the API does the I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kbatch_dask.gateway import ClusterInfo
from kbatch_dask.records import JobRecord


@dataclass(frozen=True)
class GcAction:
    """A cluster ``gc`` stopped (or, with ``dry_run``, would stop), and why."""

    cluster: str
    job_id: str | None
    why: str
    stopped: bool = False


def stale_clusters(
    records: Iterable[JobRecord], clusters: Mapping[str, ClusterInfo], *, all_clusters: bool = False
) -> list[GcAction]:
    """The active clusters whose job has ended (its own and those its code made,
    :attr:`JobRecord.owned_clusters`); with ``all_clusters``, also those of no job.

    >>> from kbatch_dask.gateway import ClusterStatus
    >>> from kbatch_dask.records import DaskInfo, JobState, now
    >>> lost = JobRecord("k3x9q", "t", "me", "local", JobState.LOST, now(), "t.py", dask=DaskInfo("2", cluster="c1"),
    ...                  owned_clusters=("c3",))
    >>> clusters = {n: ClusterInfo(n, ClusterStatus.RUNNING, None) for n in ("c1", "c2", "c3")}
    >>> [(a.cluster, a.why) for a in stale_clusters([lost], clusters, all_clusters=True)]
    [('c1', 'job k3x9q LOST'), ('c2', 'no kbatch job'), ('c3', 'job k3x9q LOST')]
    """
    owners = {name: r for r in records for name in r.owned_clusters}
    owners.update({r.dask.cluster: r for r in records if r.dask and r.dask.cluster})
    actions = []
    for name, info in sorted(clusters.items()):
        if not info.status.is_active():
            continue
        owner = owners.get(name)
        if owner is not None and owner.state.is_terminal():
            actions.append(GcAction(name, owner.id, f"job {owner.id} {owner.state.value}"))
        elif owner is None and all_clusters:
            actions.append(GcAction(name, None, "no kbatch job"))
    return actions
