"""The driver's end of the dead-man's switch (the scheduler's end is :mod:`.deadman`)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import threading
from collections.abc import Callable
from typing import Any

from kbatch_dask.driver import session
from kbatch_dask.driver.metering import Metering
from kbatch_dask.gateway import ClusterInfo, GatewayClient


@dataclasses.dataclass(frozen=True)
class Grace:
    """How long the scheduler waits before it stops the cluster of a driver that looks dead
    (see :mod:`.deadman`): ``closed`` seconds after the driver's connection closed (its
    process died), ``silent`` seconds without its heartbeat on a connection still open (its
    host gone). A stopped or paused driver keeps its connection: only ``silent`` applies."""

    closed: float
    silent: float


GRACE = Grace(closed=0.5, silent=60.0)  # kbatch.yaml's defaults


class DeadMansSwitch:
    """The supervisor's end of the dead-man's switch (see :mod:`.deadman`): a Dask
    client kept connected to the job's cluster, so that its scheduler can tell the
    driver lives. It is armed in a thread while the cluster starts: importing
    dask-gateway and distributed takes about as long as a cluster's start, so the
    two overlap; told that the cluster runs, with its credentials, it connects at
    once. Its client also arms and, at the end, fetches the job's report
    (:mod:`.metering`); with no ``grace`` it does only that, the switch off."""

    def __init__(
        self,
        gateway: GatewayClient,
        cluster: str,
        grace: Grace | None,  # None: the switch off, the client only for the report
        log: Callable[[str], None],
        metering: Metering | None = None,
        told: bool = False,  # the cluster's start is told (:meth:`running`), not waited for
    ) -> None:
        self.grace = grace
        self.log = log
        self.metering = metering
        self._parts: tuple[Any, ...] = ()
        self._running: concurrent.futures.Future[ClusterInfo | None] | None = None
        if told:
            self._running = concurrent.futures.Future()
        self._arming: threading.Thread | None = threading.Thread(
            target=self._arm, args=(gateway, cluster), name="dead-mans-switch", daemon=True
        )
        self._arming.start()

    def running(self, info: ClusterInfo | None) -> None:
        """Tell a switch made ``told`` that its cluster runs (``info``, with the credentials to
        connect), or never will (None): the supervisor waits for the start anyway, and the
        switch connects at once, sparing a request to the gateway and dask-gateway's own wait."""
        if self._running is not None and not self._running.done():
            self._running.set_result(info)

    def _arm(self, gateway_client: GatewayClient, name: str) -> None:
        try:
            if self.grace is not None:
                self.log(f"arming the dead-man's switch on cluster {name}")
            else:
                self.log(f"connecting to cluster {name} for the job's report (the dead-man's switch is off)")
            from kbatch_dask.driver import deadman

            session.warm_client()
            gateway = gateway_client.dask_gateway()  # dask-gateway's import (0.1 s) too, while the cluster starts
            info = self._running.result() if self._running is not None else None
            if self._running is not None and info is None:  # told it never ran
                from kbatch_dask.gateway.transports import close_gateway

                close_gateway(gateway)
                return
            cluster, client = self._connect(gateway, name, info)
            metering = self._start_metering(client)  # on its way while the switch registers: one wait for both
            if self.grace is not None:
                deadman.arm(client, self.grace.closed, self.grace.silent)
                self.log(
                    f"dead-man's switch armed on {name}: the cluster stops {self.grace.closed:g} s after this driver"
                    f" dies, or after {self.grace.silent:g} s without a sign of it on an open connection"
                )
            self._parts = (gateway, cluster, client)
        except Exception as exc:  # the job can run without it; gc is the backstop
            self.log(f"could not arm the dead-man's switch ({type(exc).__name__}: {exc}); continuing without it")
            return
        if metering is not None:
            try:
                metering.wait_armed()
            except Exception as exc:  # the job runs the same without its report
                self.log(f"could not start the job's report ({type(exc).__name__}: {exc}); continuing without it")

    def _connect(self, gateway: Any, name: str, info: ClusterInfo | None) -> tuple[Any, Any]:
        """A Dask client on the running cluster, and dask-gateway's cluster if one was made for it."""
        if info is None or info.credentials is None:
            # Untold (a cluster the job's code made), or a gateway that handed no credentials
            # over: dask-gateway asks for them, waiting for the cluster's start.
            cluster = gateway.connect(name)
            return cluster, cluster.get_client(set_as_default=False)
        from dask_gateway.client import GatewaySecurity
        from distributed import Client

        security = GatewaySecurity(tls_key=info.credentials.tls_key, tls_cert=info.credentials.tls_cert)
        return None, Client(f"{gateway.proxy_address}/{name}", security=security, set_as_default=False)  # type: ignore[no-untyped-call]

    def _start_metering(self, client: Any) -> Metering | None:
        if self.metering is None:
            return None
        try:
            self.metering.arm(client)
        except Exception as exc:
            self.log(f"could not start the job's report ({type(exc).__name__}: {exc}); continuing without it")
            return None
        return self.metering

    def wait_armed(self, timeout: float = 60.0) -> None:
        """Wait for the arming to end, armed or not (the first call waits, up to ``timeout``)."""
        self.running(None)  # not told by now: the cluster never ran
        if self._arming is not None:
            self._arming.join(timeout)
            self._arming = None

    def ending(self) -> None:
        """The job ends, its cluster still runs: the arming ended (armed or not), the job's report collected."""
        self.wait_armed()
        if self._parts and self.metering is not None:
            self.metering.collect(self._parts[2])

    def closing(self) -> None:
        """The cluster's stop is about to be asked for: tell its scheduler to close once its
        workers and clients have left (this switch's client the last, at :meth:`disarm`), so
        that its own stop, after theirs, finds it gone (the gateway stops one after the other).
        Sent, not waited for: the message is on its way before the stop request."""
        if self._parts:
            from kbatch_dask.driver import deadman

            with contextlib.suppress(Exception):  # the cluster already gone: nothing to hasten
                deadman.close_once_stopped(self._parts[2])

    def disarm(self) -> None:
        """Close the handles on the cluster, whose stop has been asked for, then write the job's
        reports from what :meth:`ending` collected: the files and bokeh's work are off the stop's path."""
        if self.metering is not None:
            self.metering.prepare_page()
        self._close()
        if self.metering is not None:
            self.metering.write()

    def _close(self) -> None:
        if not self._parts:
            return
        from kbatch_dask.gateway.transports import close_cluster, close_gateway

        gateway, cluster, client = self._parts
        self._parts = ()
        # The cluster may be gone already (that is why the switch is disarmed): closing
        # the handles on it must not fail the job's end.
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                close_cluster(cluster)
        with contextlib.suppress(Exception):
            close_gateway(gateway)


def switch_factory(grace: Grace | None) -> Callable[..., DeadMansSwitch] | None:
    """What arms a switch of ``grace`` on a cluster the job's code made (None: no switch)."""
    return None if grace is None else functools.partial(DeadMansSwitch, grace=grace)
