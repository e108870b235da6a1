"""The Kubernetes client's one line for an API server that cannot be reached:
a timeout names the setting and the probable NetworkPolicy, a refusal does not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.kube.fake_apiserver import FakeApiServer

from kbatch_dask.backends.kubernetes.client import KubeAPI, Timeouts
from kbatch_dask.errors import KubeError


@pytest.fixture
def closed_port_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A kubeconfig for 127.0.0.1 on a port nothing listens on: held bound (not
    listening) for the test, so no other server of a busy test run can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        server = FakeApiServer()
        server.port = sock.getsockname()[1]  # never started: the kubeconfig only
        path = server.kubeconfig(tmp_path / "kubeconfig")
        monkeypatch.setenv("KUBECONFIG", str(path))
        for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            monkeypatch.delenv(key, raising=False)
        yield server.url


def test_a_refused_connection_says_unreachable_without_blaming_a_timeout(closed_port_kubeconfig: str) -> None:
    api = KubeAPI(timeouts=Timeouts(connect=1, read=1))
    with pytest.raises(KubeError) as info:
        api.list_jobs("default", "a=b", 10)
    message = str(info.value)
    assert message.startswith(f"the Kubernetes API at {closed_port_kubeconfig} is unreachable")
    assert "within" not in message and "NetworkPolicy" not in message
