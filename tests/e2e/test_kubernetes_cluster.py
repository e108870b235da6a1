"""The shared Kubernetes scenarios (``kubernetes_scenarios.py``) against a real
cluster. Opt-in, and careful about where they run:

- ``KBATCH_DASK_TEST_CONTEXT``: the kube context to use. Without it every test
  here is skipped; a context missing from the kubeconfig fails them. Every
  ``kbatch`` call gets it through ``DASK_KBATCH__KUBERNETES__CONTEXT`` and the
  test's own client is built for it, so no other context (not even the current
  one, nor in-cluster credentials) is ever used.
- ``KBATCH_DASK_TEST_IMAGE``: an image with kbatch-dask installed (required).
- ``KBATCH_DASK_TEST_NAMESPACE``: default the context's namespace.
- ``DASK_GATEWAY__*``: a Dask-Gateway reachable from the cluster's pods and
  from here; the scenarios with a Dask cluster are skipped without one.

Jobs the tests create are deleted at the end.

    KBATCH_DASK_TEST_CONTEXT=kind-kbatch KBATCH_DASK_TEST_IMAGE=kbatch-dask:dev pytest -m kubernetes
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import kubernetes_scenarios as scenarios
from e2e.kubernetes_scenarios import MANAGED, Session
from kbatch_dask import config as kbatch_config
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.gateway import ClusterStatus, GatewayClient, configured_gateway
from kbatch_dask.spec import current_user

pytestmark = pytest.mark.kubernetes

CONTEXT = os.environ.get("KBATCH_DASK_TEST_CONTEXT")
TIMEOUT = 600  # image pulls and scheduling on a real cluster


class RealSession(Session):
    def __init__(self, home: Path, env: dict[str, str], api_client: Any, namespace: str) -> None:
        super().__init__(home, env)
        from kubernetes import client

        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.namespace = namespace
        self.selector = f"{MANAGED},kbatch-dask.io/user={safe_slug(current_user())}"

    def objects(self, kind: str) -> list[dict[str, Any]]:
        call = {
            "jobs": self.batch.list_namespaced_job,
            "configmaps": self.core.list_namespaced_config_map,
            "secrets": self.core.list_namespaced_secret,
            "pods": self.core.list_namespaced_pod,
        }[kind]
        response = call(self.namespace, label_selector=self.selector, _preload_content=False)
        return list(json.loads(response.data)["items"])

    def wait_done(self, job_id: str, timeout: float) -> dict[str, Any]:
        scenarios.poll_done(self, job_id, timeout)
        name = self.job_name(job_id)
        deadline = time.monotonic() + 60
        while True:  # the driver's last annotations and the Job's conditions land separately
            response = self.batch.read_namespaced_job(name, self.namespace, _preload_content=False)
            job = dict(json.loads(response.data))
            conditions = {c["type"] for c in job.get("status", {}).get("conditions") or [] if c["status"] == "True"}
            if conditions & {"Complete", "Failed"} or time.monotonic() > deadline:
                return job
            time.sleep(1)

    def cluster_stopped(self, name: str) -> bool:
        settings = configured_gateway()
        assert settings is not None
        with GatewayClient(settings) as client:
            info = client.list_clusters().get(name)
        return info is None or info.status is ClusterStatus.STOPPED

    def evict(self, pod: str) -> None:
        from kubernetes import client

        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=self.namespace))
        self.core.create_namespaced_pod_eviction(pod, self.namespace, body)

    def delete_all(self) -> None:
        for job in self.objects("jobs"):
            self.batch.delete_namespaced_job(
                job["metadata"]["name"], self.namespace, propagation_policy="Background", _preload_content=False
            )


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealSession]:
    if not CONTEXT:
        pytest.skip("set KBATCH_DASK_TEST_CONTEXT to a kube context to run against a real cluster")
    image = os.environ.get("KBATCH_DASK_TEST_IMAGE")
    if not image:
        pytest.skip("set KBATCH_DASK_TEST_IMAGE to an image with kbatch-dask installed")
    from kubernetes import config

    try:
        contexts, _ = config.list_kube_config_contexts()
    except (config.ConfigException, OSError) as exc:
        pytest.fail(f"no usable kubeconfig for context {CONTEXT!r}: {exc}")
    names = [c["name"] for c in contexts]
    if CONTEXT not in names:
        pytest.fail(f"kube context {CONTEXT!r} is not in the kubeconfig (it has {names}); refusing any other")
    (chosen,) = [c for c in contexts if c["name"] == CONTEXT]
    namespace = os.environ.get("KBATCH_DASK_TEST_NAMESPACE") or chosen["context"].get("namespace") or "default"
    env = {
        **os.environ,
        "DASK_KBATCH__KUBERNETES__CONTEXT": CONTEXT,
        "DASK_KBATCH__KUBERNETES__NAMESPACE": namespace,
        "JUPYTER_IMAGE_SPEC": image,
    }
    for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "HOSTNAME"):
        env.pop(key, None)
    home = tmp_path_factory.mktemp("real-cluster")
    session = RealSession(home, env, config.new_client_from_config(context=CONTEXT), namespace)
    try:
        yield session
    finally:
        session.delete_all()


def needs_gateway() -> None:
    if not kbatch_config.gateway_address():
        pytest.skip("set DASK_GATEWAY__ADDRESS (and auth) to a gateway the cluster's pods can reach")


def test_hello_dask(real: RealSession) -> None:
    needs_gateway()
    scenarios.hello_dask(real, timeout=TIMEOUT)


def test_dashboard_then_cancel(real: RealSession) -> None:
    needs_gateway()
    scenarios.dashboard_then_cancel(real, timeout=TIMEOUT)


def test_evicted_job_runs_again_without_using_a_retry(real: RealSession) -> None:
    """Needs the output file on a volume both the pods and this machine see: run
    from a notebook pod, or with the home volume shared (the test reads it)."""
    needs_gateway()
    scenarios.evicted_then_replaced(real, timeout=TIMEOUT)


def test_time_limit(real: RealSession) -> None:
    scenarios.time_limit(real, timeout=TIMEOUT)


def test_time_limit_per_attempt(real: RealSession) -> None:
    """A real pod's scheduling and image pull do not eat --time: TIMEOUT by the driver."""
    scenarios.time_limit_per_attempt(real, timeout=TIMEOUT)


def test_cancel_shows_cancelled_until_the_pod_is_gone(real: RealSession) -> None:
    scenarios.cancel_shows_cancelled_until_the_pod_is_gone(real, timeout=TIMEOUT)


def test_exit_code(real: RealSession) -> None:
    scenarios.exit_code(real, timeout=TIMEOUT)


def test_dry_run(real: RealSession) -> None:
    scenarios.dry_run(real)


@pytest.mark.parametrize("case", ["script over 1 MiB", "no image"])
def test_refusals(real: RealSession, case: str) -> None:
    env = dict(real.env)
    if case == "no image":
        env.pop("JUPYTER_IMAGE_SPEC", None)
        env.pop("JUPYTER_IMAGE", None)
        env["DASK_KBATCH__KUBERNETES__IMAGE"] = ""
    scenarios.refused(real, case, env)


NOTEBOOK = "kbatch-dask-test-notebook"
HOME_CLAIM = "kbatch-dask-test-home"


@pytest.fixture
def notebook(real: RealSession) -> Iterator[tuple[RealSession, str]]:
    """A notebook-like pod on the cluster with a ReadWriteOnce home claim (the
    default StorageClass, as z2jh's default storage); the session submits as if
    from inside it (``HOSTNAME``). Yields the session and the pod's node. The
    scenario shows most on a cluster of several nodes."""
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": HOME_CLAIM},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": NOTEBOOK, "labels": {"component": "singleuser-server"}},
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": real.env["JUPYTER_IMAGE_SPEC"],
                    "command": ["sleep", "3600"],
                    "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                }
            ],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": HOME_CLAIM}}],
            "terminationGracePeriodSeconds": 1,
        },
    }
    real.core.create_namespaced_persistent_volume_claim(real.namespace, claim, _preload_content=False)
    try:
        real.core.create_namespaced_pod(real.namespace, pod, _preload_content=False)
        deadline = time.monotonic() + TIMEOUT
        while True:
            response = real.core.read_namespaced_pod(NOTEBOOK, real.namespace, _preload_content=False)
            found = json.loads(response.data)
            if found["status"].get("phase") == "Running":
                break
            assert time.monotonic() < deadline, f"the notebook pod is still {found['status'].get('phase')}"
            time.sleep(2)
        session = RealSession(real.home, {**real.env, "HOSTNAME": NOTEBOOK}, real.core.api_client, real.namespace)
        yield session, str(found["spec"]["nodeName"])
    finally:
        real.core.delete_namespaced_pod(NOTEBOOK, real.namespace, grace_period_seconds=0, _preload_content=False)
        real.core.delete_namespaced_persistent_volume_claim(HOME_CLAIM, real.namespace, _preload_content=False)


def test_a_read_write_once_home_pins_the_job_to_the_notebooks_node(notebook: tuple[RealSession, str]) -> None:
    session, node = notebook
    scenarios.read_write_once_home_pinned(session, node, timeout=TIMEOUT)


def test_without_the_read_write_once_home_the_output_is_in_the_log(notebook: tuple[RealSession, str]) -> None:
    session, _ = notebook
    scenarios.read_write_once_home_left_out(session, HOME_CLAIM, timeout=TIMEOUT)
