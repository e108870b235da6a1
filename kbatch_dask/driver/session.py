"""Inside a job: the job's cluster and client.

The runner sets ``KBATCH_DASK_JOB_ID`` and ``KBATCH_DASK_CLUSTER`` and points
dask-gateway at the job's gateway (``DASK_GATEWAY__*``), so these work from
the user's script, a notebook kernel, or a shell script's Python child.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any

from kbatch_dask.errors import KbatchError
from kbatch_dask.files import write_atomic


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
    """The job cluster's ``distributed.Client``, made the default client; from then
    on ``Client()`` with no address in this process connects to the job's cluster too.

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
    return client_of(get_cluster())


def client_of(cluster: Any) -> Any:
    """A client on dask-gateway's ``cluster``, made the default (see :func:`get_client`)."""
    client = cluster.get_client(set_as_default=True)
    make_client_default_to(cluster)
    return client


def make_client_default_to(cluster: Any) -> None:
    """Point ``Client()`` with no address at a gateway ``cluster``: dask config carries
    its scheduler address and TLS credentials (``scheduler-address``,
    ``distributed.comm.tls.*``, read by ``distributed.Client``). A ``LocalCluster()``
    stays local: it uses none of these keys.

    The gateway hands the credentials over in memory; dask config needs files, so they
    are written readable by this user only, in the job's private directory (which
    its driver removes at the end).
    """
    import dask

    folder = os.environ.get("KBATCH_DASK_PRIVATE_DIR") or tempfile.mkdtemp(prefix="kbatch-tls-")
    cert = os.path.join(folder, f"{cluster.name}.crt")
    key = os.path.join(folder, f"{cluster.name}.pem")
    write_atomic(cert, cluster.security.tls_cert.encode(), 0o600)
    write_atomic(key, cluster.security.tls_key.encode(), 0o600)
    dask.config.set(
        {
            "scheduler-address": cluster.scheduler_address,
            "distributed.comm.tls.ca-file": cert,  # the cluster's certificate is its own CA
            "distributed.comm.tls.client.cert": cert,
            "distributed.comm.tls.client.key": key,
        }
    )


def warm_client() -> None:
    """Do now, while the cluster starts, the slowest part of a process's first Dask client's
    connection: the versions of its packages (read from their metadata, and cached), which
    it sends to the scheduler. Most of the time a first client takes to connect on a busy machine."""
    with contextlib.suppress(Exception):  # a Dask without them: the client reads what it reads
        from distributed.versions import get_versions

        get_versions()
