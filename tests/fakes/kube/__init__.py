"""Test doubles for the Kubernetes backend: a fake API server and a fake kubelet.

No real API server can run on the test machines, so the backend is tested
against :class:`FakeApiServer` (real HTTP on 127.0.0.1, the real ``kubernetes``
client and kubectl work against it) and :class:`FakeKubelet` (runs each Job's
pod as a local process). ``fake_apiserver.py`` and ``fake_kubelet.py`` say what
they simulate and where they differ from Kubernetes (``rbac.py``: the RBAC
mode's evaluation); ``fixtures.py`` has the pytest fixtures, ``roles.py`` loads
the Roles docs/kubernetes.md recommends. Typical use::

    with FakeApiServer() as server, FakeKubelet(server, volumes={"claim-alice": home}) as kubelet:
        server.kubeconfig(tmp_path / "kubeconfig", namespace="ns")   # for the code under test
        server.deny("patch", "batch", "jobs", caller="pod")          # RBAC: the driver may not patch
        server.rbac = True                                           # or: deny all but what stored Roles grant
        kubelet.hold("job-b", "ImagePullBackOff")                    # job-b's pod stays Pending
        kubelet.remove_node("fake-node-2")                           # its pods are garbage-collected
        server.compact(); server.drop_watches()                      # watches: 410 on resume, connections cut
        ...                                                          # the code under test creates Jobs
        job = kubelet.wait_for_job("job-a", "ns")                    # Complete or Failed
        assert len(server.requests("GET", "/jobs")) <= 1             # API traffic, from the request log
"""

from .fake_apiserver import FakeApiServer, RecordedRequest
from .fake_kubelet import FakeKubelet, job_outcome

__all__ = ["FakeApiServer", "FakeKubelet", "RecordedRequest", "job_outcome"]
