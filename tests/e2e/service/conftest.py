"""One kbatch-dask service per module, on the session's real JupyterHub (where
it is registered as the external service ``kbatch-dask``) and hub-authenticated
Dask-Gateway, driving a fake Kubernetes API server whose fake kubelet runs the
job pods as local processes. Two hub users, alice and bob, each with a running
server pod (z2jh labels, home on a PVC backed by a local directory) and a token
as their server would hold it."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import REPO
from fakes.kube.notebook import NAMESPACE, notebook_pod
from fakes.kube.resources import POD

from e2e.hub.conftest import hub_gateway, jupyterhub  # noqa: F401
from e2e.hub.servers import KBATCH_SERVICE, Hub, HubGateway, _start, _stop, _wait_healthy, http

PREFIX = f"/services/{KBATCH_SERVICE}/"
# A server token without tokens!user: the service mints the jobs' gateway tokens.
USER_SCOPES = [f"access:services!service={KBATCH_SERVICE}", "access:services!service=dask-gateway"]
ALLOWED_IMAGES = '["@server", "pangeo/*"]'
MAX_CPUS = "2"
MAX_WORKERS = "2"


@dataclass
class Service:
    hub: Hub
    server: FakeApiServer
    kubelet: FakeKubelet
    url: str  # with the prefix, as kbatch.service.url
    workdir: Path
    env: dict[str, str] = field(repr=False)
    proc: subprocess.Popen[bytes] | None = None

    def api(self, path: str) -> str:
        return f"{self.url}api/v1{path}"

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return self.server.objects(kind, NAMESPACE, "app.kubernetes.io/managed-by=kbatch-dask")

    @property
    def log(self) -> Path:
        return self.workdir / "service.log"

    def start(self) -> None:
        """Start the service process; returns once ``/health`` answers."""
        self.proc = _start([sys.executable, "-m", "kbatch_dask.service"], self.workdir, "service.log", self.env)
        _wait_healthy(self.api("/health"), self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


@dataclass
class User:
    name: str
    home: Path
    token: str
    env: dict[str, str]

    def http(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        return http(method, url, self.token, body)


def _clean_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "DASK_GATEWAY__", "KUBECONFIG"))}


@pytest.fixture(scope="module")
def service_settings() -> dict[str, str]:
    """Settings a test module adds to the service's environment (override it in the module)."""
    return {}


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory,
    jupyterhub: Hub,  # noqa: F811
    hub_gateway: HubGateway,  # noqa: F811
    service_settings: dict[str, str],
) -> Iterator[Service]:
    workdir = tmp_path_factory.mktemp("kbatch-service")
    with (
        FakeApiServer() as server,
        FakeKubelet(server, root=workdir, extra_env={"PYTHONPATH": str(REPO)}) as kubelet,
    ):
        kubeconfig = server.kubeconfig(workdir / "kubeconfig", namespace=NAMESPACE)
        env = {
            **_clean_environ(),
            "JUPYTERHUB_API_TOKEN": jupyterhub.service_token,
            "JUPYTERHUB_API_URL": jupyterhub.api_url,
            "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{jupyterhub.service_port}",
            "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            # The web page's OAuth: the browser goes to the hub's own port (no proxy in these tests).
            "JUPYTERHUB_HOST": f"http://127.0.0.1:{jupyterhub.port}",
            "JUPYTERHUB_CLIENT_ID": f"service-{KBATCH_SERVICE}",
            "JUPYTERHUB_OAUTH_CALLBACK_URL": f"http://127.0.0.1:{jupyterhub.service_port}{PREFIX}oauth_callback",
            "KUBECONFIG": str(kubeconfig),
            # The gateway the jobs use (the service checks that there is one, and passes it on).
            "DASK_GATEWAY__ADDRESS": hub_gateway.address,
            "DASK_GATEWAY__PROXY_ADDRESS": hub_gateway.proxy_address,
            "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            "DASK_KBATCH__SERVICE__ALLOWED_IMAGES": ALLOWED_IMAGES,
            "DASK_KBATCH__SERVICE__LIMITS__MAX_CPUS": MAX_CPUS,
            "DASK_KBATCH__SERVICE__LIMITS__MAX_DASK_WORKERS": MAX_WORKERS,
            "DASK_KBATCH__SERVICE__MAX_BODY_SIZE": "100000",
            "DASK_KBATCH__KUBERNETES__TERMINATION_GRACE": "20",
            "DASK_KBATCH__DRIVER__KILL_GRACE": "2",
            **service_settings,
        }
        url = f"http://127.0.0.1:{jupyterhub.service_port}{PREFIX}"
        running = Service(jupyterhub, server, kubelet, url, workdir, env)
        running.start()
        try:
            yield running
        finally:
            running.stop()


def make_user(service: Service, name: str, home: Path) -> User:
    hub = service.hub
    if http("GET", f"{hub.api_url}/users/{name}", hub.admin_token)[0] == 404:
        hub.admin("POST", f"/users/{name}")
    token = str(hub.new_token(name, USER_SCOPES)["token"])
    pod = copy.deepcopy(notebook_pod(f"jupyter-{name}", home))
    pod["metadata"]["labels"]["hub.jupyter.org/username"] = name
    pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = f"claim-{name}"
    service.server.store.insert(POD, pod)
    service.kubelet.map_volume(f"claim-{name}", home)
    env = {
        **_clean_environ(),
        "HOME": str(home),
        "KBATCH_DASK_HOME": str(home / ".kbatch-dask"),
        "JUPYTERHUB_API_URL": hub.api_url,
        "JUPYTERHUB_USER": name,
        "JUPYTERHUB_API_TOKEN": token,
        "DASK_KBATCH__SERVICE__URL": service.url,
    }
    return User(name, home, token, env)


@pytest.fixture(scope="module")
def alice(service: Service, tmp_path_factory: pytest.TempPathFactory, hub_gateway: HubGateway) -> User:  # noqa: F811
    user = make_user(service, "alice", tmp_path_factory.mktemp("alice"))
    user.env.update(_gateway_env(hub_gateway))
    return user


@pytest.fixture(scope="module")
def bob(service: Service, tmp_path_factory: pytest.TempPathFactory, hub_gateway: HubGateway) -> User:  # noqa: F811
    user = make_user(service, "bob", tmp_path_factory.mktemp("bob"))
    user.env.update(_gateway_env(hub_gateway))
    return user


def _gateway_env(gateway: HubGateway) -> dict[str, str]:
    """A daskhub notebook's gateway settings."""
    return {
        "DASK_GATEWAY__ADDRESS": gateway.address,
        "DASK_GATEWAY__PROXY_ADDRESS": gateway.proxy_address,
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }


def run(user: User, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real ``kbatch`` as ``user`` in their home, through the service (``--backend auto``)."""
    from conftest import kbatch

    return kbatch(*args, env=user.env, cwd=user.home, timeout=timeout)
