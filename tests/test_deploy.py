"""deploy/: the kustomization renders (``kubectl kustomize``), every object it
renders validates strictly for each Kubernetes version we support, and the
service's Role grants exactly what the service's code calls: the rendered
Roles loaded into the fake API server in RBAC mode (nothing allowed but what
they grant), one job runs end to end through the service with them, and every
verb they grant was used (or is one of the few named below that only a rare
path calls). The z2jh fragment deploy/z2jh-values.yaml is validated against
the chart's schema by tests/test_deploy_values.py, with every file of deploy/."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from backends.kubernetes.versions import K8S_VERSIONS
from conftest import ROOT, wait_for
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import REPO
from fakes.kube.notebook import NAMESPACE, home_claim, notebook_pod
from fakes.kube.resources import POD, PVC

kubernetes_validate = pytest.importorskip("kubernetes_validate")
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (it renders the kustomization)")

DEPLOY = ROOT / "deploy"
KINDS = {"Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles",
         "ClusterRoleBinding": "clusterrolebindings"}  # fmt: skip
#: Granted, but only called on a rare path: the undo of a submission whose Secret or
#: ConfigMap could not be created, and the events read when a job's pod cannot attach a volume.
RARELY_CALLED = {("delete", "configmaps"), ("delete", "secrets"), ("list", "events")}
#: The driver's: reading its own Job and pod, when it asks whether its pod was replaced or the job is over.
DRIVER_RARELY_CALLED = {("get", "jobs"), ("get", "pods")}


def render(path: Path) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    out = subprocess.run([KUBECTL, "kustomize", str(path)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def shared() -> list[dict[str, Any]]:
    return render(DEPLOY)


@pytest.fixture(scope="module")
def per_user(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """deploy/ with the per-user component, as its kustomization.yaml says to add it."""
    folder = tmp_path_factory.mktemp("per-user")
    shutil.copytree(DEPLOY, folder / "deploy")
    kustomization = folder / "deploy" / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + "components:\n  - per-user\n")
    return render(folder / "deploy")


def test_the_kustomization_renders_the_service_its_rbac_and_the_job_network_policy(
    shared: list[dict[str, Any]],
) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in shared)
    assert kinds == [
        ("Deployment", "kbatch-dask"),
        ("NetworkPolicy", "kbatch-dask-jobs"),
        ("Role", "kbatch-dask"),
        ("Role", "kbatch-dask-driver"),
        ("RoleBinding", "kbatch-dask"),
        ("RoleBinding", "kbatch-dask-driver"),
        ("Service", "kbatch-dask"),
        ("ServiceAccount", "kbatch-dask"),
        ("ServiceAccount", "kbatch-dask-driver"),
    ]
    assert {o["metadata"].get("namespace") for o in shared} == {"jhub"}
    (deployment,) = [o for o in shared if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert pod["serviceAccountName"] == "kbatch-dask"
    assert {"JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SERVICE_PREFIX"} <= env


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_rendered_object_validates_strictly(
    shared: list[dict[str, Any]], per_user: list[dict[str, Any]], version: str
) -> None:
    for obj in [*shared, *per_user]:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']} is invalid for Kubernetes {version}: {exc}")


def test_the_per_user_component_adds_the_cluster_roles(per_user: list[dict[str, Any]]) -> None:
    added = sorted((o["kind"], o["metadata"]["name"]) for o in per_user if o["kind"].startswith("Cluster"))
    assert added == [
        ("ClusterRole", "kbatch-dask-jobs"),
        ("ClusterRole", "kbatch-dask-namespaces"),
        ("ClusterRoleBinding", "kbatch-dask-namespaces"),
    ]


def load_rbac(server: FakeApiServer, objects: list[dict[str, Any]], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] in KINDS:
            obj = json.loads(json.dumps(obj).replace('"jhub"', json.dumps(namespace)))
            scoped = obj["kind"] in ("Role", "RoleBinding")
            server.create(KINDS[obj["kind"]], namespace if scoped else "", obj)


def granted(objects: list[dict[str, Any]], role: str) -> set[tuple[str, str]]:
    (found,) = [o for o in objects if o["kind"] in ("Role", "ClusterRole") and o["metadata"]["name"] == role]
    return {(verb, resource) for rule in found["rules"] for resource in rule["resources"] for verb in rule["verbs"]}


def called(server: FakeApiServer, user: str) -> set[tuple[str, str]]:
    """(verb, resource) of each request ``user`` made: ``pods/log`` for a log."""
    verbs = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}
    found = set()
    for request in server.requests():
        if request.user != user:
            continue
        parts = request.path.strip("/").split("/")
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        if rest[0] == "namespaces" and len(rest) >= 3:
            rest = rest[2:]
        named = len(rest) > 1
        verb = verbs.get(request.method) or ("get" if named else "list")
        found.add((verb, "/".join(rest[::2]) if len(rest) > 2 else rest[0]))
    return found


@pytest.fixture
def rbac_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeApiServer, str]]:
    """A fake cluster in RBAC mode with deploy/'s Roles, the service's kubeconfig in
    $KUBECONFIG, and alice's server (home on a claim) running in the hub's namespace."""
    with FakeApiServer(rbac=True) as server:
        home = tmp_path / "alice"
        home.mkdir()
        load_rbac(server, render(DEPLOY), NAMESPACE)
        account = f"system:serviceaccount:{NAMESPACE}:kbatch-dask"
        path = server.kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE, token=server.issue_token(account))
        monkeypatch.setenv("KUBECONFIG", str(path))
        for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            monkeypatch.delenv(key, raising=False)
        pod = notebook_pod("jupyter-alice", home)
        pod["metadata"]["labels"]["hub.jupyter.org/username"] = "alice"
        pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "claim-alice"
        server.store.insert(PVC, home_claim("claim-alice", ("ReadWriteMany",)))
        server.store.insert(POD, pod)
        with FakeKubelet(server, root=tmp_path / "kubelet", extra_env={"PYTHONPATH": str(REPO)}) as kubelet:
            kubelet.map_volume("claim-alice", home)
            yield server, account


def test_a_service_job_runs_end_to_end_with_exactly_the_deployed_roles(
    rbac_cluster: tuple[FakeApiServer, str], shared: list[dict[str, Any]]
) -> None:
    import dask.config

    from kbatch_dask import settings
    from kbatch_dask.backends.kubernetes.client import KubeAPI
    from kbatch_dask.records import JobState
    from kbatch_dask.service import submission
    from kbatch_dask.service.app import namespace
    from kbatch_dask.service.jobs import Caller, JobService
    from kbatch_dask.service.namespaces import Namespaces
    from kbatch_dask.service.policy import Policy

    server, account = rbac_cluster
    (deployment,) = [o for o in shared if o["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    with dask.config.set({"kbatch.kubernetes.service-account": env["DASK_KBATCH__KUBERNETES__SERVICE_ACCOUNT"]}):
        config = settings.load()
    api = KubeAPI()
    jobs = JobService(api, config, Namespaces(api, config.service, namespace(config, api)), Policy())
    alice = Caller("alice")
    script = {"name": "hello.py", "content": base64.b64encode(b"print('hello from the job')\n").decode()}
    body = json.dumps({"spec": {"dask_workers": "0", "chdir": str(Path.home())}, "script": script}).encode()

    job = jobs.submit(alice, submission.parse(body))
    wait_for(lambda: jobs.get(alice, job.id).state.is_terminal(), timeout=90, what="the job to end")
    assert jobs.get(alice, job.id).state is JobState.SUCCEEDED
    assert "hello from the job" in "".join(
        jobs.logs(alice, job.id, user=None, follow=False, stream="output", tail=None)
    )
    assert [r.id for r in jobs.list(alice)] == [job.id]
    sleeper = {"name": "sleeper.py", "content": base64.b64encode(b"import time\ntime.sleep(600)\n").decode()}
    body = json.dumps({"spec": {"dask_workers": "0", "chdir": str(Path.home())}, "script": sleeper}).encode()
    running = jobs.submit(alice, submission.parse(body))
    wait_for(lambda: jobs.get(alice, running.id).state is JobState.RUNNING, timeout=60, what="the job to run")
    assert jobs.cancel(alice, running.id).id == running.id
    api.close()

    refused = [r for r in server.requests() if r.status == 403]
    assert refused == [], "the deployed roles lack what the service or its driver called"
    assert called(server, account) | RARELY_CALLED == granted(shared, "kbatch-dask")
    driver = f"system:serviceaccount:{NAMESPACE}:kbatch-dask-driver"
    assert called(server, driver) | DRIVER_RARELY_CALLED == granted(shared, "kbatch-dask-driver")
