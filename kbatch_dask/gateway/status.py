"""What the gateway reports about a cluster."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

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
    # A running cluster's TLS credentials, as the gateway hands them to its user: never shown.
    credentials: ClusterCredentials | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True, repr=False, eq=False)  # FrozenMethods'
class ClusterCredentials(FrozenMethods):
    """What connects a Dask client to a running cluster, besides the gateway's proxy
    address: the cluster's own certificate (also its CA) and key. Not in its ``repr``.

    >>> ClusterCredentials("-----BEGIN CERTIFICATE-----...", "-----BEGIN PRIVATE KEY-----...")
    ClusterCredentials(...)
    """

    tls_cert: str
    tls_key: str

    def __repr__(self) -> str:
        return "ClusterCredentials(...)"
