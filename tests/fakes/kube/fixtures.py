"""pytest fixtures for the fake Kubernetes API server and kubelet.

Import them where needed, e.g. in ``tests/conftest.py``::

    from fakes.kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401

* ``fake_apiserver`` — a started :class:`FakeApiServer` (one per test).
* ``fake_kubelet`` — a started :class:`FakeKubelet` on that server, with the
  repository on ``PYTHONPATH`` of every pod; stopped (and its processes killed)
  after the test, failing the test if the kubelet hit errors.
* ``kube_env`` — the test process pointed at the server: ``KUBECONFIG`` set to a
  kubeconfig for it (namespace ``default``), in-cluster variables removed.
  Returns the kubeconfig path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .fake_apiserver import FakeApiServer
from .fake_kubelet import FakeKubelet

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def fake_apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server


@pytest.fixture
def fake_kubelet(fake_apiserver: FakeApiServer, tmp_path: Path) -> Iterator[FakeKubelet]:
    root = tmp_path / "kubelet"
    root.mkdir()
    with FakeKubelet(fake_apiserver, root=root, extra_env={"PYTHONPATH": str(REPO)}) as kubelet:
        yield kubelet


@pytest.fixture
def kube_env(fake_apiserver: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = fake_apiserver.kubeconfig(tmp_path / "kubeconfig", namespace="default")
    monkeypatch.setenv("KUBECONFIG", str(path))
    for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        monkeypatch.delenv(key, raising=False)
    return path
