"""The one place that knows how to reach the Dask-Gateway.

:func:`resolve` decides which gateway a job uses: the configured one
(``gateway.address`` in dask config, as in daskhub images) or the embedded one.
:func:`connect` builds a ``dask_gateway.Gateway`` (imported only then: it is
slow to import); the queue uses the plain-HTTP :func:`list_clusters` and
:func:`live_workers`, which answer the same questions much faster.
"""

from __future__ import annotations

import base64
import contextlib
import getpass
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kbatch_dask import config
from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.errors import BadInput, GatewayError, GatewayUnreachable

if TYPE_CHECKING:
    from dask_gateway import Gateway

ALL_STATUSES = "PENDING,RUNNING,STOPPING,STOPPED,FAILED"
JUPYTERHUB_TOKEN_REFUSED = (
    "the JupyterHub token is no longer valid or lacks access to the gateway "
    "(a notebook server's token is deleted when the server stops)"
)


@dataclass(frozen=True)
class GatewaySettings:
    """How to reach one gateway; ``env`` points dask-gateway clients at it."""

    address: str
    proxy_address: str | None
    public_address: str
    auth_type: str | None
    auth_kwargs: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    embedded: bool = False


@dataclass(frozen=True)
class ClusterInfo:
    """What the gateway reports about one cluster."""

    name: str
    status: str
    dashboard: str | None


def resolve(home: str, username: str, *, start: bool) -> GatewaySettings | None:
    """The gateway jobs use. With ``start``, an embedded gateway is started if
    needed; without, None is returned when no gateway is running."""
    address = config.gateway_address()
    if address:
        public = config.dask_get("gateway.public-address") or address
        # daskhub's public address is a path on the hub: links must be absolute for a person.
        hub_url = hub_public_url(config.get("hub.public-url"), os.environ)
        return GatewaySettings(
            address=address,
            proxy_address=config.dask_get("gateway.proxy-address"),
            public_address=absolute_address(str(public), hub_url),
            auth_type=config.dask_get("gateway.auth.type"),
            auth_kwargs=config.dask_get("gateway.auth.kwargs") or {},
        )
    server = (
        embedded.ensure_running(home, username, config.get("embedded-gateway", {}) or {})
        if start
        else embedded.status(home, username)
    )
    if server is None:
        return None
    return GatewaySettings(
        address=server.address,
        proxy_address=server.proxy_address,
        public_address=server.address,
        auth_type="basic",
        auth_kwargs={"username": server.username, "password": server.password},
        env=server.dask_config_env(),
        embedded=True,
    )


def hub_public_url(configured: str | None, environ: Mapping[str, str]) -> str | None:
    """The hub's public URL: ``kbatch.hub.public-url``, else ``$JUPYTERHUB_PUBLIC_HUB_URL``
    without its ``hub/``, else the host of ``$JUPYTERHUB_PUBLIC_URL`` (this notebook
    server's URL); None if unknown. JupyterHub sets both variables when its
    ``public_url`` is configured.

    >>> hub_public_url(None, {"JUPYTERHUB_PUBLIC_HUB_URL": "https://hub.example.org/jh/hub/"})
    'https://hub.example.org/jh/'
    >>> hub_public_url(None, {"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/user/alice/"})
    'https://hub.example.org/'
    """
    from urllib.parse import urlsplit

    if configured:
        return configured
    hub_url = environ.get("JUPYTERHUB_PUBLIC_HUB_URL", "").rstrip("/")
    if hub_url:
        return hub_url[: -len("hub")] if hub_url.endswith("/hub") else hub_url + "/"
    server = urlsplit(environ.get("JUPYTERHUB_PUBLIC_URL", ""))
    if server.scheme and server.netloc:
        return f"{server.scheme}://{server.netloc}/"
    return None


def absolute_address(address: str, base: str | None) -> str:
    """``address`` made absolute against the hub's public URL ``base``: a path
    (``/services/dask-gateway``) is on the hub's host, a relative path below
    ``base``; a full URL, or an address with no ``base`` to go by, is unchanged.

    >>> absolute_address("/services/dask-gateway", "https://hub.example.org/jh/")
    'https://hub.example.org/services/dask-gateway'
    >>> absolute_address("services/dask-gateway/", "https://hub.example.org/jh")
    'https://hub.example.org/jh/services/dask-gateway/'
    >>> absolute_address("http://10.0.0.5:8000", "https://hub.example.org/")
    'http://10.0.0.5:8000'
    """
    from urllib.parse import urlsplit

    if not base or urlsplit(address).scheme:
        return address
    parts = urlsplit(base)
    if address.startswith("/"):
        return f"{parts.scheme}://{parts.netloc}{address}"
    return f"{base.rstrip('/')}/{address}"


def get_auth(auth_type: str, **kwargs: Any) -> Any:
    from dask_gateway.auth import BasicAuth, JupyterHubAuth, get_auth

    if auth_type == "basic":
        return BasicAuth(**kwargs)
    if auth_type == "jupyterhub":
        return JupyterHubAuth(**kwargs)
    return get_auth(auth_type)


def connect(settings: GatewaySettings) -> Gateway:
    """A ``dask_gateway.Gateway`` client for ``settings``."""
    from dask_gateway import Gateway

    auth = get_auth(settings.auth_type, **dict(settings.auth_kwargs)) if settings.auth_type else None
    return Gateway(
        address=settings.address,
        proxy_address=settings.proxy_address,
        public_address=settings.public_address,
        auth=auth,
    )


def _auth_header(settings: GatewaySettings) -> dict[str, str] | None:
    """Headers for plain HTTP requests, or None for auth types only dask-gateway speaks."""
    if settings.auth_type in (None, "basic"):
        kw = settings.auth_kwargs
        user = kw.get("username") or getpass.getuser()  # as dask-gateway's BasicAuth
        basic = base64.b64encode(f"{user}:{kw.get('password') or ''}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}
    if settings.auth_type == "jupyterhub":
        token = settings.auth_kwargs.get("api_token") or os.environ.get("JUPYTERHUB_API_TOKEN")
        # dask-gateway-server's JupyterHubAuthenticator reads "jupyterhub <token>".
        return {"Authorization": f"jupyterhub {token}"} if token else None
    return None


def _cluster_info(settings: GatewaySettings, name: str, report: Mapping[str, Any]) -> ClusterInfo:
    """A cluster report of the gateway's API, its dashboard route made a link."""
    route = report.get("dashboard_route")
    dashboard = f"{settings.public_address.rstrip('/')}{route}" if route else None
    return ClusterInfo(name, report["status"], dashboard)


@contextlib.contextmanager
def _dask_gateway(settings: GatewaySettings) -> Iterator[Gateway]:
    """A dask-gateway client, for auth types plain HTTP cannot speak; closed after use."""
    gateway = connect(settings)
    try:
        yield gateway
    finally:
        gateway.close()


def request(settings: GatewaySettings, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """One call to the gateway's HTTP API; the JSON answer (None if empty).

    Connection trouble raises :class:`GatewayUnreachable` (worth retrying); a
    refusal raises :class:`GatewayError` with the gateway's reason.
    """
    headers = _auth_header(settings)
    if headers is None:
        raise GatewayError(f"auth type {settings.auth_type!r} is only supported through dask-gateway")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers = {**headers, "Content-Type": "application/json"}
    url = f"{settings.address.rstrip('/')}{path}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        reason = exc.reason
        answered = False  # the gateway itself answered (JSON), not its proxy
        with contextlib.suppress(Exception):
            reason = json.loads(exc.read()).get("error") or reason
            answered = True
        if _hub_token_refused(settings, exc.code, str(reason)):
            reason = f"{reason}: {JUPYTERHUB_TOKEN_REFUSED}"
        # While the gateway starts, its proxy answers 404 for routes not yet set up.
        elif exc.code >= 500 or (exc.code == 404 and not answered):
            raise GatewayUnreachable(
                f"the Dask-Gateway at {settings.address} failed: HTTP {exc.code} {reason}"
            ) from None
        raise GatewayError(f"the Dask-Gateway refused {method} {path}: HTTP {exc.code} {reason}", exc.code) from None
    except (OSError, ValueError) as exc:
        raise GatewayUnreachable(f"the Dask-Gateway at {settings.address} is unreachable: {exc}") from None
    return json.loads(raw) if raw.strip() else None


def _hub_token_refused(settings: GatewaySettings, status: int, reason: str) -> bool:
    """True when the gateway refused our JupyterHub token (no use retrying). JupyterHub
    >= 5 answers 403 for a deleted token, which dask-gateway-server turns into a 500.

    >>> s = GatewaySettings("http://gw", None, "http://gw", "jupyterhub")
    >>> _hub_token_refused(s, 500, "Permission failure verifying user's JupyterHub API token")
    True
    """
    if settings.auth_type != "jupyterhub":
        return False
    return status == 401 or (status == 500 and "Permission failure verifying" in reason)


def _fallback(settings: GatewaySettings) -> bool:
    return _auth_header(settings) is None


def list_clusters(settings: GatewaySettings, timeout: float = 10.0) -> dict[str, ClusterInfo]:
    """All of this user's clusters the gateway still knows, by name (one request)."""
    if _fallback(settings):
        with _dask_gateway(settings) as gateway:
            reports = gateway.list_clusters(status=ALL_STATUSES.split(","))
        return {r.name: ClusterInfo(r.name, r.status.name, r.dashboard_link) for r in reports}
    data = request(settings, "GET", f"/api/v1/clusters/?status={ALL_STATUSES}", timeout=timeout) or {}
    return {name: _cluster_info(settings, name, report) for name, report in data.items()}


def create_cluster(settings: GatewaySettings, options: Mapping[str, Any]) -> str:
    """Ask for a new cluster; returns its name at once (it starts in the background)."""
    if _fallback(settings):
        with _dask_gateway(settings) as gateway:
            try:
                return str(gateway.submit(**options))
            except ValueError as exc:
                raise GatewayError(str(exc)) from None
    try:
        answer = request(settings, "POST", "/api/v1/clusters/", {"cluster_options": dict(options)})
    except GatewayUnreachable:
        raise
    except GatewayError as exc:
        raise GatewayError(f"the Dask-Gateway refused to create a cluster: {exc}") from None
    return str(answer["name"])


def wait_running(settings: GatewaySettings, name: str, timeout: float) -> ClusterInfo:
    """Wait until the cluster runs; GatewayError if it failed or did not start in time."""
    deadline = time.monotonic() + timeout
    while True:
        data = request(settings, "GET", f"/api/v1/clusters/{name}?wait", timeout=30)
        status = data["status"]
        if status == "RUNNING":
            return _cluster_info(settings, name, data)
        if status in ("STOPPING", "STOPPED", "FAILED"):
            raise GatewayError(f"the Dask cluster {name} {status.lower()} while starting")
        if time.monotonic() > deadline:
            raise GatewayError(f"the Dask cluster {name} did not start within {timeout:.0f} s")


def cluster_info(settings: GatewaySettings, name: str) -> ClusterInfo | None:
    """What the gateway says about one cluster now; None if it does not know it."""
    if _fallback(settings):
        return list_clusters(settings).get(name)
    try:
        data = request(settings, "GET", f"/api/v1/clusters/{name}")
    except GatewayError as exc:
        if exc.status == 404:
            return None
        raise
    return _cluster_info(settings, name, data)


def cluster_options(settings: GatewaySettings) -> dict[str, dict[str, Any]]:
    """The cluster options the gateway declares, by field name (their specs)."""
    if _fallback(settings):
        with _dask_gateway(settings) as gateway:
            options = gateway.cluster_options()
        return {field: {"type": type(options[field]).__name__} for field in options}
    data = request(settings, "GET", "/api/v1/options") or {}
    return {o["field"]: o.get("spec", {}) for o in data.get("cluster_options", [])}


def check_cluster_options(requested: Mapping[str, Any], declared: Mapping[str, Mapping[str, Any]]) -> None:
    """Check requested options against the gateway's declared ones (BadInput if wrong).

    >>> check_cluster_options({"worker_cores": 9}, {"worker_cores": {"type": "int", "min": 1, "max": 4}})
    Traceback (most recent call last):
    ...
    kbatch_dask.errors.BadInput: cluster option worker_cores=9: at most 4 (the gateway's limit)
    """
    for key, value in requested.items():
        if key not in declared:
            allowed = ", ".join(sorted(declared)) or "none"
            raise BadInput(f"cluster option {key!r}: the gateway has no such option; it offers: {allowed}")
        spec = declared[key]
        kind = spec.get("type")
        if kind in ("int", "float"):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (kind == "int" and value != int(value))
            ):
                raise BadInput(
                    f"cluster option {key}={value!r}: expected {'a whole number' if kind == 'int' else 'a number'}"
                )
            if spec.get("min") is not None and value < spec["min"]:
                raise BadInput(f"cluster option {key}={value}: at least {spec['min']} (the gateway's limit)")
            if spec.get("max") is not None and value > spec["max"]:
                raise BadInput(f"cluster option {key}={value}: at most {spec['max']} (the gateway's limit)")
        elif kind == "bool" and not isinstance(value, bool):
            raise BadInput(f"cluster option {key}={value!r}: expected true or false")
        elif kind == "select" and spec.get("options") and value not in spec["options"]:
            choices = ", ".join(map(str, spec["options"]))
            raise BadInput(f"cluster option {key}={value!r}: expected one of {choices}")


def scale(settings: GatewaySettings, name: str, workers: int) -> None:
    request(settings, "POST", f"/api/v1/clusters/{name}/scale", {"count": workers})


def adapt(settings: GatewaySettings, name: str, minimum: int, maximum: int) -> None:
    request(
        settings, "POST", f"/api/v1/clusters/{name}/adapt", {"minimum": minimum, "maximum": maximum, "active": True}
    )


def stop_cluster(settings: GatewaySettings, name: str, timeout: float = 10.0) -> None:
    """Stop a cluster; a cluster that is already gone counts as stopped."""
    if _fallback(settings):
        with _dask_gateway(settings) as gateway:
            gateway.stop_cluster(name)
        return
    try:
        request(settings, "DELETE", f"/api/v1/clusters/{name}", timeout=timeout)
    except GatewayError as exc:
        if exc.status != 404:
            raise


def _counts_url(dashboard: str) -> str:
    base = dashboard[: -len("/status")] if dashboard.endswith("/status") else dashboard.rstrip("/")
    return f"{base}/json/counts.json"


def live_workers(dashboards: Iterable[str], timeout: float = 1.0) -> dict[str, int | None]:
    """Live worker counts from each dashboard's ``json/counts.json``, read
    concurrently; None where the count could not be read in time."""
    links = list(dict.fromkeys(dashboards))
    if not links:
        return {}

    def fetch(link: str) -> int | None:
        try:
            with urllib.request.urlopen(_counts_url(link), timeout=timeout) as resp:
                return int(json.load(resp)["workers"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    with ThreadPoolExecutor(max_workers=min(16, len(links))) as pool:
        return dict(zip(links, pool.map(fetch, links), strict=False))
