"""A real JupyterHub and a real Dask-Gateway using its JupyterHub authenticator,
both on 127.0.0.1, plus a gate in front of the gateway that tests can close.

- **JupyterHub** (from PyPI) runs with the dummy authenticator and a proxy class
  that only remembers routes (:data:`HUB_CONFIG`): the tests talk to the hub's
  own API port, so no configurable-http-proxy (npm) is needed. It knows two
  services: ``dask-gateway`` and an admin service the tests use to create users
  and tokens (as the hub does for a notebook server) and to delete them (as it
  does when the server stops). Users hold ``access:services!service=dask-gateway``
  through the ``user`` role, as on a daskhub.
- **dask-gateway-server** (:data:`GATEWAY_CONFIG`) uses ``JupyterHubAuthenticator``
  with ``jupyterhub_service_name = "dask-gateway"``, so tokens need that
  service's access scope; clusters are local processes.
- :class:`Gate` forwards TCP to the gateway's HTTP port, or drops connections
  while closed: a driver that cannot reach the gateway yet, like a pod still
  pending when its user logs off.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kbatch_dask.backends.local.embedded_gateway import free_ports

GATEWAY_SERVICE = "dask-gateway"
ADMIN_SERVICE = "kbatch-test-admin"
KBATCH_SERVICE = "kbatch-dask"  # tests/e2e/service runs it at service_port
START_TIMEOUT = 60.0

HUB_CONFIG = """\
from jupyterhub.proxy import Proxy


class MemoryProxy(Proxy):
    # Routes are only remembered: tests call the hub's API port directly.
    should_start = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.routes = {{}}

    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {{"routespec": routespec, "target": target, "data": data}}

    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)

    async def get_all_routes(self):
        return dict(self.routes)


c.JupyterHub.proxy_class = MemoryProxy
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/cookie_secret"
c.JupyterHub.services = [
    {{"name": "{gateway_service}", "api_token": "{gateway_token}"}},
    {{"name": "{admin_service}", "api_token": "{admin_token}"}},
    # Its web page logs in with OAuth. Behind a proxy the default redirect URI, /services/NAME/oauth_callback,
    # is right; here the browser reaches the service on its own port.
    {{"name": "{kbatch_service}", "api_token": "{service_token}", "url": "http://127.0.0.1:{service_port}",
      "display": True, "oauth_no_confirm": True,
      "oauth_redirect_uri": "http://127.0.0.1:{service_port}/services/{kbatch_service}/oauth_callback"}},
]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service={gateway_service}",
                                 "access:services!service={kbatch_service}"]}},
    # What docs/service.md gives the service: read users (hub admins), make and revoke users' tokens (per-job).
    {{"name": "{kbatch_service}", "scopes": ["read:users", "tokens"], "services": ["{kbatch_service}"]}},
    {{"name": "{admin_service}", "scopes": ["admin:users", "tokens", "read:tokens"], "services": ["{admin_service}"]}},
]
"""

GATEWAY_CONFIG = """\
from dask_gateway_server.options import Float, Integer, Options

c.DaskGateway.address = "127.0.0.1:0"
c.Proxy.address = "127.0.0.1:{http_port}"
c.Proxy.tcp_address = "127.0.0.1:{tcp_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.JupyterHubAuthenticator.jupyterhub_api_url = "{hub_api}"
c.JupyterHubAuthenticator.jupyterhub_api_token = "{gateway_token}"
c.JupyterHubAuthenticator.jupyterhub_service_name = "{gateway_service}"
c.LocalBackend.clusters_directory = "{workdir}/clusters"
c.ClusterConfig.scheduler_cmd = [{python!r}, "-m", "dask", "scheduler"]
c.ClusterConfig.worker_cmd = [{python!r}, "-m", "dask", "worker"]
c.ClusterConfig.cluster_max_workers = 4
c.ClusterConfig.idle_timeout = 0


def _options_handler(options):
    return {{"worker_cores": options.worker_cores, "worker_memory": int(options.worker_memory * 2**30)}}


c.Backend.cluster_options = Options(
    Integer("worker_cores", default=1, min=1, max=2, label="Cores per worker"),
    Float("worker_memory", default=0.5, min=0.25, max=2, label="Memory per worker (GiB)"),
    handler=_options_handler,
)
"""


def http(method: str, url: str, token: str | None = None, body: Any = None, scheme: str = "token") -> tuple[int, Any]:
    """One HTTP request; (status, JSON answer or None). Never raises for HTTP errors."""
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    data = json.dumps(body).encode() if body is not None else None
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw.strip() else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (OSError, ValueError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{url} did not come up; log:\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.1)


def _start(argv: list[str], workdir: Path, log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with (workdir / log_name).open("ab") as log:
        return subprocess.Popen(
            argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
        )


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Hub:
    """A running JupyterHub; :attr:`api_url` is what ``JUPYTERHUB_API_URL`` would be."""

    workdir: Path
    port: int
    admin_token: str = field(repr=False)
    gateway_token: str = field(repr=False)
    service_token: str = field(repr=False)
    service_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hub/api"

    @classmethod
    def start(cls, workdir: Path) -> Hub:
        workdir.mkdir(parents=True, exist_ok=True)
        hub_port, public_port, service_port = free_ports(3)
        hub = cls(workdir, hub_port, *(secrets.token_hex(16) for _ in range(3)), service_port=service_port)
        (workdir / "jupyterhub_config.py").write_text(
            HUB_CONFIG.format(
                hub_port=hub_port,
                public_port=public_port,
                workdir=workdir,
                gateway_service=GATEWAY_SERVICE,
                gateway_token=hub.gateway_token,
                admin_service=ADMIN_SERVICE,
                admin_token=hub.admin_token,
                kbatch_service=KBATCH_SERVICE,
                service_token=hub.service_token,
                service_port=service_port,
            )
        )
        hub.proc = _start([sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"], workdir, "hub.log")
        _wait_healthy(f"{hub.api_url}/", hub.proc, workdir / "hub.log")
        return hub

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    # -- what the hub does for notebook servers, done by the test admin ---------

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = http(method, f"{self.api_url}{path}", self.admin_token, body)
        if status >= 400:
            raise AssertionError(f"hub admin {method} {path}: HTTP {status} {answer}")
        return answer

    def new_user(self) -> str:
        name = f"u{secrets.token_hex(4)}"
        self.admin("POST", f"/users/{name}")
        return name

    def new_token(self, user: str, scopes: list[str], note: str = "notebook server") -> dict[str, Any]:
        """A token for ``user`` as the hub makes one for a notebook server."""
        return dict(self.admin("POST", f"/users/{user}/tokens", {"scopes": scopes, "note": note}))

    def tokens(self, user: str) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"/users/{user}/tokens")["api_tokens"])

    def delete_token(self, user: str, token_id: str) -> None:
        """What the hub does to a server's token when the server stops."""
        self.admin("DELETE", f"/users/{user}/tokens/{token_id}")

    def token_works(self, token: str) -> bool:
        status, _ = http("GET", f"{self.api_url}/user", token)
        return status == 200


@dataclass
class HubGateway:
    """A running dask-gateway-server that authenticates with the hub."""

    workdir: Path
    http_port: int
    tcp_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def proxy_address(self) -> str:
        return f"gateway://127.0.0.1:{self.tcp_port}"

    @classmethod
    def start(cls, workdir: Path, hub: Hub) -> HubGateway:
        (workdir / "clusters").mkdir(parents=True, exist_ok=True)
        http_port, tcp_port = free_ports(2)
        gateway = cls(workdir, http_port, tcp_port)
        (workdir / "dask_gateway_config.py").write_text(
            GATEWAY_CONFIG.format(
                http_port=http_port,
                tcp_port=tcp_port,
                hub_api=hub.api_url,
                gateway_token=hub.gateway_token,
                gateway_service=GATEWAY_SERVICE,
                workdir=workdir,
                python=sys.executable,
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "DASK_GATEWAY__"))}
        gateway.proc = _start(
            [sys.executable, "-m", "dask_gateway_server", "-f", "dask_gateway_config.py"], workdir, "gateway.log", env
        )
        _wait_healthy(f"{gateway.address}/api/health", gateway.proc, workdir / "gateway.log")
        return gateway

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def clusters(self, token: str) -> dict[str, Any]:
        """The clusters of the token's user, as the gateway reports them."""
        status, answer = http(
            "GET", f"{self.address}/api/v1/clusters/?status=PENDING,RUNNING,STOPPING,STOPPED,FAILED", token,
            scheme="jupyterhub",
        )  # fmt: skip
        assert status == 200, (status, answer)
        return dict(answer)

    def accepts(self, token: str) -> bool:
        status, _ = http("GET", f"{self.address}/api/v1/clusters/", token, scheme="jupyterhub")
        return status == 200


class Gate:
    """A TCP forwarder on 127.0.0.1 to ``target_port``; while closed it drops
    every connection at once (the client sees a reset: "unreachable")."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.is_open = threading.Event()
        self.dropped = 0
        self._stopping = False
        threading.Thread(target=self._accept, name="gate", daemon=True).start()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        self.is_open.set()

    def close(self) -> None:
        self.is_open.clear()

    def stop(self) -> None:
        self._stopping = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if not self.is_open.is_set():
                self.dropped += 1
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                conn.close()
                continue
            upstream.settimeout(None)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
