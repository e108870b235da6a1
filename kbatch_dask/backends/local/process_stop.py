"""The embedded gateway's wait for a cluster's process to exit, without its backoff.

dask-gateway-server's local backend stops a cluster by signalling each worker,
then the scheduler, one at a time, and looks whether each has exited after
0.1, 0.3, 0.7, 1.5, 3.1 ... seconds (a doubling backoff): a worker that exits
1.6 s after its SIGINT is seen gone at 3.1 s, and the cluster is STOPPED that
much later. Looked at every :data:`POLL` seconds instead (one ``kill(pid, 0)``
each), a cluster stops as soon as its processes have. The embedded gateway's
config installs it (:func:`install`); it runs in the gateway's process.
"""

from __future__ import annotations

import asyncio
import os

POLL = 0.05


async def wait_is_shutdown(pid: int, timeout: float = 10) -> bool:
    """Whether process ``pid`` has exited within ``timeout`` seconds (the gateway's signature)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(POLL)


def install() -> None:
    """Replace the local backend's wait (``stop_process`` looks it up by name on each call)."""
    from dask_gateway_server.backends import local

    local.wait_is_shutdown = wait_is_shutdown
