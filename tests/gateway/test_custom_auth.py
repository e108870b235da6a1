"""A gateway with an auth type kbatch does not speak (a custom authenticator and
its client class, as dask-gateway allows): every operation goes through
dask-gateway's client, and a job runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import kbatch, show_json, wait_for, write_script

from kbatch_dask.backends.local.embedded_gateway import free_ports
from kbatch_dask.errors import GatewayError
from kbatch_dask.gateway import ClusterStatus, GatewayClient, GatewaySettings
from kbatch_dask.gateway.transports import DaskGatewayTransport

pytestmark = pytest.mark.gateway

HERE = Path(__file__).resolve().parent
AUTH_TYPE = "token_auth.TokenAuth"
SECRET = "s3cret-for-tests"

CONFIG = """\
c.DaskGateway.address = "127.0.0.1:0"
c.Proxy.address = "127.0.0.1:{http_port}"
c.Proxy.tcp_address = "127.0.0.1:{tcp_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "token_auth.TokenAuthenticator"
c.TokenAuthenticator.secret = {secret!r}
c.LocalBackend.clusters_directory = {workdir!r} + "/clusters"
c.ClusterConfig.scheduler_cmd = [{python!r}, "-m", "dask", "scheduler"]
c.ClusterConfig.worker_cmd = [{python!r}, "-m", "dask", "worker"]
c.ClusterConfig.idle_timeout = 0
"""


@dataclass
class CustomGateway:
    address: str
    proxy_address: str

    def settings(self, secret: str = SECRET) -> GatewaySettings:
        return GatewaySettings(
            self.address, self.proxy_address, self.address, AUTH_TYPE, {"user": "alice", "secret": secret}
        )

    def env(self) -> dict[str, str]:
        """A session configured for this gateway, as daskhub images configure theirs."""
        return {
            "DASK_GATEWAY__ADDRESS": self.address,
            "DASK_GATEWAY__PROXY_ADDRESS": self.proxy_address,
            "DASK_GATEWAY__AUTH__TYPE": AUTH_TYPE,
            "DASK_GATEWAY__AUTH__KWARGS__USER": "alice",
            "DASK_GATEWAY__AUTH__KWARGS__SECRET": SECRET,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        }


@pytest.fixture(scope="module")
def custom_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CustomGateway]:
    workdir = tmp_path_factory.mktemp("custom-auth-gateway")
    http_port, tcp_port = free_ports(2)
    config = CONFIG.format(http_port=http_port, tcp_port=tcp_port, secret=SECRET, workdir=str(workdir),
                           python=sys.executable)  # fmt: skip
    (workdir / "dask_gateway_config.py").write_text(config)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env = {k: v for k, v in env.items() if not k.startswith("DASK_GATEWAY__")}
    with open(workdir / "gateway.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dask_gateway_server", "-f", "dask_gateway_config.py"],
            cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    gateway = CustomGateway(f"http://127.0.0.1:{http_port}", f"gateway://127.0.0.1:{tcp_port}")
    try:
        wait_for(lambda: _healthy(gateway.address) or proc.poll() is not None, timeout=60, what="the gateway")
        assert proc.poll() is None, (workdir / "gateway.log").read_text()
        yield gateway
    finally:
        proc.terminate()
        proc.wait(30)


def _healthy(address: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{address}/api/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture
def on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client auth class importable in this process, as in the job's."""
    monkeypatch.syspath_prepend(str(HERE))


def test_every_operation_goes_through_dask_gateway_for_a_custom_auth(
    custom_gateway: CustomGateway, on_path: None
) -> None:
    client = GatewayClient(custom_gateway.settings())
    assert isinstance(client.transport, DaskGatewayTransport)
    try:
        assert client.cluster_options() == {}
        name = client.create_cluster({})
        try:
            info = client.wait_running(name, timeout=120)
            assert info.status is ClusterStatus.RUNNING and info.dashboard
            client.scale(name, 1)
            client.adapt(name, 0, 2)
            assert client.cluster_info(name) == client.list_clusters()[name]
        finally:
            client.stop_cluster(name)
        wait_for(lambda: client.list_clusters()[name].status is ClusterStatus.STOPPED, what="the cluster to stop")
        client.stop_cluster(name)  # already stopped: still success
        assert client.cluster_info("no-such-cluster") is None
    finally:
        client.close()


def test_a_wrong_secret_is_refused(custom_gateway: CustomGateway, on_path: None) -> None:
    with GatewayClient(custom_gateway.settings(secret="wrong")) as client, pytest.raises(GatewayError) as refused:
        client.list_clusters()
    assert refused.value.status == 401


def test_a_job_runs_on_a_gateway_with_a_custom_auth(
    custom_gateway: CustomGateway, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in custom_gateway.env().items():
        monkeypatch.setenv(key, value)
    script = write_script(
        tmp_path / "job.py",
        "import dask.bag as db\nfrom distributed import get_client\n"
        "get_client().wait_for_workers(1, timeout=60)\n"
        "print('scheduler', get_client().scheduler.address.split(':')[0])\n"
        "print('sum', db.range(100, npartitions=4).sum().compute())\n",
    )
    proc = kbatch("--wait", "--parsable", "-o", str(tmp_path / "job.out"), str(script), "--dask-workers", "1")
    assert proc.returncode == 0, proc.stderr + (tmp_path / "job.out").read_text()
    output = (tmp_path / "job.out").read_text()
    assert "sum 4950" in output and "scheduler gateway" in output, output
    job = show_json(proc.stdout.split()[0])
    assert job["state"] == "SUCCEEDED", job
    cluster = job["dask"]["cluster"]
    with GatewayClient(custom_gateway.settings()) as client:
        # The driver asked for the stop before it recorded the end; the gateway finishes it.
        assert not client.list_clusters()[cluster].status.is_active()
        wait_for(lambda: client.list_clusters()[cluster].status is ClusterStatus.STOPPED, what="the cluster to stop")
