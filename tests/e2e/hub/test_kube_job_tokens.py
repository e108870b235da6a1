"""A Kubernetes job's token: in its Secret only, surviving its session's token.

The real JupyterHub and hub-authenticated gateway of this package, the fake
Kubernetes API server, and the fake kubelet running the driver pod as a local
process (its environment is exactly what the Job gives it: the Secret)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from conftest import kbatch, wait_for, write_script
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE, notebook_session

from kbatch_dask.backends.kubernetes.manifests import job_name

from .conftest import SESSION_SCOPES, Session

pytestmark = pytest.mark.gateway

MANAGED = "app.kubernetes.io/managed-by=kbatch-dask"
SCRIPT = """\
import dask.bag as db
from dask.distributed import get_client

get_client().wait_for_workers(1, timeout=60)
print("total", db.range(100, npartitions=4).sum().compute(), flush=True)
"""


def test_kubernetes_job_token_lives_in_its_secret(
    hub_session: Session,
    fake_apiserver: FakeApiServer,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kube_env: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    session = hub_session
    session_token = session.login(SESSION_SCOPES)["token"]
    observer = session.admin_token()
    home = Path(os.environ["HOME"])
    env = notebook_session(fake_apiserver, fake_kubelet, home)
    script = write_script(home / "train.py", SCRIPT)

    session.gate.close()
    proc = kbatch("--backend", "kubernetes", "--parsable", "--dask-workers", "1", "-t", "10:00", str(script), env=env)
    assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1]
    name = job_name(session.user, job_id)

    # The token is a value of the Secret, and appears in no other object.
    [secret] = fake_apiserver.objects("secrets", NAMESPACE, MANAGED)
    job_token = base64.b64decode(secret["data"]["JUPYTERHUB_API_TOKEN"]).decode()
    assert job_token != session_token and session.hub.token_works(job_token)
    assert "KBATCH_DASK_HUB_TOKEN_ID" in secret["data"]
    plain = json.dumps(
        fake_apiserver.objects("jobs", NAMESPACE, MANAGED) + fake_apiserver.objects("configmaps", NAMESPACE, MANAGED)
    )
    assert job_token not in plain and session_token not in plain

    # The user's server stops while the driver cannot reach the gateway yet.
    wait_for(lambda: session.gate.dropped > 0, timeout=60, what="the driver pod to try the gateway")
    session.stop_server()
    session.gate.open()
    job = fake_kubelet.wait_for_job(name, timeout=120)
    annotations = job["metadata"]["annotations"]
    assert annotations["kbatch-dask.io/state"] == "SUCCEEDED", annotations
    cluster = annotations["kbatch-dask.io/cluster"]
    wait_for(
        lambda: session.gateway.clusters(observer)[cluster]["status"] == "STOPPED",
        timeout=20,
        what=f"cluster {cluster} to stop",
    )

    # Deleted when the job ended, and never shown.
    assert not session.hub.token_works(job_token)
    shown = [
        kbatch("queue", "--backend", "kubernetes", "--all", "-o", "json", env=env).stdout,
        kbatch("show", "--backend", "kubernetes", job_id, "-o", "yaml", env=env).stdout,
        logs := kbatch("logs", "--backend", "kubernetes", job_id, env=env).stdout,
    ]
    assert "total 4950" in logs
    assert not [text for text in shown if job_token in text]
