"""Inside a job: the job's cluster and client.

The runner sets ``KBATCH_DASK_JOB_ID`` and ``KBATCH_DASK_CLUSTER`` and points
dask-gateway at the job's gateway (``DASK_GATEWAY__*``), so these work from
the user's script, a notebook kernel, or a shell script's Python child.
"""

from __future__ import annotations

import os
from typing import Any

from kbatch_dask.errors import KbatchError


def _cluster_name() -> str:
    name = os.environ.get("KBATCH_DASK_CLUSTER")
    if not name:
        if os.environ.get("KBATCH_DASK_JOB_ID"):
            raise KbatchError("this job has no Dask cluster (it was submitted with --dask-workers 0)")
        raise KbatchError("not inside a kbatch job: KBATCH_DASK_CLUSTER is not set")
    return name


def get_cluster() -> Any:
    """The job's ``dask_gateway.GatewayCluster`` (connected by name; closing it
    does not stop the cluster: the job's driver does that).

    >>> get_cluster().dashboard_link  # doctest: +SKIP
    'http://127.0.0.1:40123/clusters/6f1c.../status'
    """
    from dask_gateway import Gateway

    return Gateway().connect(_cluster_name())


def get_client() -> Any:
    """The job cluster's ``distributed.Client``, made the default client.

    >>> get_client().submit(sum, [1, 2]).result()  # doctest: +SKIP
    3
    """
    from distributed import default_client

    name = _cluster_name()
    try:
        client = default_client()  # type: ignore[no-untyped-call]
    except ValueError:
        client = None
    if client is not None and name in str(client.scheduler.address):
        return client
    return get_cluster().get_client(set_as_default=True)
