"""The job's own cluster as the supervisor holds it: its gateway, retried while
unreachable; the check that it still runs; its stop, with the dead-man's switch's
disarm and the job's report around it.

Creating it stays in :mod:`.supervisor`, which interleaves the cluster's start
with the job's record, its signals and the runner's early start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from kbatch_dask.driver.switch import DeadMansSwitch
from kbatch_dask.errors import GatewayError, GatewayUnreachable
from kbatch_dask.gateway import GatewayClient

T = TypeVar("T")


class Interrupted(Exception):
    """SIGTERM/SIGINT arrived before the user's code was started."""


class JobCluster:
    """The gateway and, once created, the cluster of one attempt of a job."""

    def __init__(
        self,
        log: Callable[[str], None],
        stopping: Callable[[], bool],  # the job is stopping: a retry would be for nothing
        cluster_lost_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.log = log
        self.stopping = stopping
        self.cluster_lost_after = cluster_lost_after  # seconds the gateway may not answer before the job stops
        self.clock = clock
        self.sleep = sleep  # between retries of the gateway
        self.gateway: GatewayClient | None = None
        self.name: str | None = None
        self.worker_limit: int | None = None  # the gateway's, once it capped the cluster
        self.switch: DeadMansSwitch | None = None
        self.unreachable_since: float | None = None  # when the gateway stopped answering the checks
        self.released = False

    def retrying(self, call: Callable[[], T], deadline: float) -> T:
        """Retry ``call`` while the gateway is unreachable, with backoff, until ``deadline``."""
        delay = 0.5
        while True:
            try:
                return call()
            except GatewayUnreachable as exc:
                if self.clock() + delay > deadline:
                    raise GatewayError(f"{exc} (gave up retrying)") from None
                if self.stopping():
                    raise Interrupted() from None
                self.log(f"{exc}; retrying in {delay:.1f} s")
                self.sleep(delay)
                delay = min(delay * 2, 10.0)

    def gone(self) -> str | None:
        """Why the job's cluster is no longer usable, or None if it runs. A gateway that
        does not answer is a reason only after ``cluster_lost_after`` seconds: a gateway
        restart is not a reason to stop the job, a gateway (and cluster) gone for good is."""
        if not self.name or not self.gateway:
            return None
        try:
            info = self.gateway.cluster_info(self.name)
        except GatewayUnreachable as exc:
            now = self.clock()
            self.unreachable_since = self.unreachable_since if self.unreachable_since is not None else now
            if now - self.unreachable_since < self.cluster_lost_after:
                return None
            silent = f"{self.cluster_lost_after:g} s (kbatch.driver.cluster-lost-after)"
            return f"the Dask cluster {self.name} is lost: its gateway has not answered for {silent}: {exc}"
        except GatewayError as exc:
            return f"the Dask cluster {self.name} is gone ({exc})"
        self.unreachable_since = None
        if info is None or not info.status.is_active():
            status = info.status.lower() if info else "unknown to the gateway"
            return f"the Dask cluster {self.name} stopped while the job ran ({status})"
        return None

    def release(self) -> None:
        """Stop the job's cluster (once), then disarm the switch. The switch's arming ends first,
        so that its thread does not connect to a stopping cluster; then the job's report."""
        if self.released:
            return
        self.released = True
        if self.switch is not None:
            self.switch.ending()
            self.switch.closing()
        self._stop()
        if self.switch is not None:
            self.switch.disarm()

    def close(self) -> None:
        """Close the gateway, once the job's code's own clusters are stopped through it too."""
        if self.gateway is not None:
            self.gateway.close()

    def _stop(self) -> None:
        if not self.name or not self.gateway:
            return
        for attempt in range(5):
            try:
                self.gateway.stop_cluster(self.name)
                self.log(f"cluster {self.name} stopped")
                return
            except GatewayError as exc:
                self.log(f"stopping cluster {self.name} failed ({exc}); retrying")
                self.sleep(min(2**attempt, 10))
        self.log(f"could not stop cluster {self.name}")
