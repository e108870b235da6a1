"""The one Dask-Gateway client of kbatch-dask.

:class:`GatewayClient` chooses its transport once (plain HTTP where we speak
the auth, dask-gateway's client otherwise; see :mod:`.transports`) and offers
every operation kbatch needs on both::

    client = GatewayClient(settings)
    name = client.create_cluster({"worker_cores": 1})
    info = client.wait_running(name, timeout=120)
    client.scale(name, 4)
    client.stop_cluster(name)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kbatch_dask.errors import GatewayError, GatewayUnreachable
from kbatch_dask.gateway import direct_http
from kbatch_dask.gateway.settings import GatewaySettings
from kbatch_dask.gateway.status import ClusterCredentials, ClusterInfo, ClusterStatus
from kbatch_dask.gateway.transports import Transport, connect, transport_for

if TYPE_CHECKING:
    from dask_gateway import Gateway

ALL_STATUSES = ",".join(s.value for s in ClusterStatus)


def health(address: str, timeout: float) -> str | None:
    """Why the gateway at ``address`` is not healthy, None when it is (its
    ``/api/health``, which needs no credentials)."""
    url = f"{address.rstrip('/')}/api/health"
    try:
        if direct_http.direct(url):
            status, reason, _ = direct_http.request("GET", url, {}, timeout=timeout)
            if 200 <= status < 300:
                return None if status == 200 else f"HTTP {status}"
            if status not in direct_http.REDIRECT:  # what urllib's HTTPError says
                return reason or f"HTTP Error {status}: "
        import urllib.request  # here: only a gateway behind https or a proxy needs urllib's HTTP stack

        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", None) or exc)


class GatewayClient:
    """One gateway's API, over the transport its auth type needs."""

    def __init__(self, settings: GatewaySettings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.transport = transport or transport_for(settings)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _info(self, name: str, report: Mapping[str, Any]) -> ClusterInfo:
        """A cluster report of the gateway's API, its dashboard route made a link."""
        route = report.get("dashboard_route")
        dashboard = f"{self.settings.public_address.rstrip('/')}{route}" if route else None
        return ClusterInfo(name, ClusterStatus(report["status"]), dashboard)

    def list_clusters(self, timeout: float = 10.0) -> dict[str, ClusterInfo]:
        """All of this user's clusters the gateway still knows, by name (one request)."""
        data = self.transport.request("GET", f"/api/v1/clusters/?status={ALL_STATUSES}", timeout=timeout) or {}
        return {name: self._info(name, report) for name, report in data.items()}

    def create_cluster(self, options: Mapping[str, Any]) -> str:
        """Ask for a new cluster; returns its name at once (it starts in the background)."""
        try:
            answer = self.transport.request("POST", "/api/v1/clusters/", {"cluster_options": dict(options)})
        except GatewayUnreachable:
            raise
        except GatewayError as exc:
            raise GatewayError(f"the Dask-Gateway refused to create a cluster: {exc}", exc.status) from None
        return str(answer["name"])

    def cluster_info(self, name: str, timeout: float = 10.0) -> ClusterInfo | None:
        """What the gateway says about one cluster now; None if it does not know it."""
        try:
            data = self.transport.request("GET", f"/api/v1/clusters/{name}", timeout=timeout)
        except GatewayError as exc:
            if exc.status == 404:
                return None
            raise
        return self._info(name, data)

    def wait_running(self, name: str, timeout: float) -> ClusterInfo:
        """Wait until the cluster runs, its info with the credentials that connect a client to
        it; GatewayError if it failed or did not start in time."""
        deadline = time.monotonic() + timeout
        while True:
            # ``?wait`` makes the gateway hold the answer until the cluster runs (or a while).
            report = self.transport.request("GET", f"/api/v1/clusters/{name}?wait", timeout=30)
            info = self._info(name, report)
            if info.status is ClusterStatus.RUNNING:
                cert, key = report.get("tls_cert"), report.get("tls_key")
                return dataclasses.replace(info, credentials=ClusterCredentials(cert, key) if cert and key else None)
            if not info.status.is_active():
                raise GatewayError(f"the Dask cluster {name} {info.status.value.lower()} while starting")
            if time.monotonic() > deadline:
                raise GatewayError(f"the Dask cluster {name} did not start within {timeout:.0f} s")
            time.sleep(0.2)

    def cluster_options(self) -> dict[str, dict[str, Any]]:
        """The cluster options the gateway declares, by field name (their specs)."""
        data = self.transport.request("GET", "/api/v1/options") or {}
        return {o["field"]: o.get("spec", {}) for o in data.get("cluster_options", [])}

    def scale(self, name: str, workers: int) -> str | None:
        """Ask for ``workers`` workers; the gateway's message when it gave fewer (its limit), else None."""
        return _capped(self.transport.request("POST", f"/api/v1/clusters/{name}/scale", {"count": workers}))

    def adapt(self, name: str, minimum: int, maximum: int) -> str | None:
        """Make the cluster adaptive; the gateway's message when it lowered the bounds, else None."""
        body = {"minimum": minimum, "maximum": maximum, "active": True}
        return _capped(self.transport.request("POST", f"/api/v1/clusters/{name}/adapt", body))

    def stop_cluster(self, name: str, timeout: float = 10.0) -> None:
        """Stop a cluster; a cluster that is already gone counts as stopped."""
        try:
            self.transport.request("DELETE", f"/api/v1/clusters/{name}", timeout=timeout)
        except GatewayError as exc:
            if exc.status != 404:
                raise

    def dask_gateway(self) -> Gateway:
        """A ``dask_gateway.Gateway`` for what only it does: connecting a Dask client."""
        return connect(self.settings)


def _capped(answer: Any) -> str | None:
    """dask-gateway-server caps a scale or adapt at its ``cluster_max_workers`` and says
    so, with ``ok: false``, rather than refusing it."""
    if isinstance(answer, dict) and answer.get("ok") is False:
        return str(answer.get("msg") or "the gateway gave fewer workers than asked")
    return None
