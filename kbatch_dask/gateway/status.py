"""What the gateway reports about a cluster."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kbatch_dask.frozen import FrozenMethods


class ClusterStatus(str, enum.Enum):
    """A cluster's status as dask-gateway names it (a ``str``, so it prints and
    compares as the gateway's own word)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"

    def is_active(self) -> bool:
        """Starting or running: a cluster that holds resources.

        >>> ClusterStatus.PENDING.is_active(), ClusterStatus.STOPPING.is_active()
        (True, False)
        """
        return self in (ClusterStatus.PENDING, ClusterStatus.RUNNING)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class ClusterInfo(FrozenMethods):
    """What the gateway reports about one cluster."""

    name: str
    status: ClusterStatus
    dashboard: str | None
