"""deploy/: the kustomization renders (``kubectl kustomize``), every object it
renders validates strictly for each Kubernetes version we support, and the
service's Role grants exactly what the service's code calls: the rendered
Roles loaded into the fake API server in RBAC mode (nothing allowed but what
they grant), two jobs run through the service with them, one to its end and
one cancelled (their drivers reporting to the service's own routes over HTTP,
at the Deployment's driver URL), and every verb they grant was used (or is one
of the few named below that only a rare path calls). The jobs' drivers make no
Kubernetes API request at all. The z2jh fragment deploy/z2jh-values.yaml is validated against
the chart's schema by tests/test_deploy_values.py, with every file of deploy/."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from backends.kubernetes.versions import K8S_VERSIONS
from conftest import KUBECTL, ROOT, wait_for
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import REPO
from fakes.kube.notebook import NAMESPACE, home_claim, notebook_pod
from fakes.kube.pod_setup import SERVICE_ACCOUNT_DIR
from fakes.kube.resources import POD, PVC
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

kubernetes_validate = pytest.importorskip("kubernetes_validate")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (it renders the kustomization)")

DEPLOY = ROOT / "deploy"
KINDS = {"Role": "roles", "RoleBinding": "rolebindings", "ClusterRole": "clusterroles",
         "ClusterRoleBinding": "clusterrolebindings"}  # fmt: skip
#: Granted, but only called on a rare path: the undo of a submission whose Secret or
#: ConfigMap could not be created, the events read when a job's pod cannot attach a volume,
#: a queued job's gateway token put in its Secret as it starts (these runs' jobs have no cluster),
#: and a job's ConfigMap read back to resubmit it.
RARELY_CALLED = {
    ("delete", "configmaps"), ("delete", "secrets"), ("list", "events"), ("patch", "secrets"), ("get", "configmaps")
}  # fmt: skip


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
        ("PersistentVolumeClaim", "kbatch-dask-data"),
        ("Role", "kbatch-dask"),
        ("RoleBinding", "kbatch-dask"),
        ("Service", "kbatch-dask"),
        ("ServiceAccount", "kbatch-dask"),
    ]
    assert {o["metadata"].get("namespace") for o in shared} == {"jhub"}
    pod = the(shared, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"] for e in pod["containers"][0]["env"]}
    assert pod["serviceAccountName"] == "kbatch-dask"
    assert {"JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SERVICE_PREFIX"} <= env
    # No account for the jobs: they run as the user's server's (its cloud identity), with no token.
    assert not any(name.startswith("DASK_KBATCH__KUBERNETES__") for name in env)


def the(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def service_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    container = the(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_the_archive_is_on_the_services_own_claim(shared: list[dict[str, Any]]) -> None:
    """Ended jobs' results and logs outlive the service's pod: a claim, not an emptyDir."""
    pod = the(shared, "Deployment")["spec"]["template"]["spec"]
    archive = service_env(shared)["DASK_KBATCH__SERVICE__ARCHIVE__DIRECTORY"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if archive.startswith(m["mountPath"].rstrip("/") + "/")]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = the(shared, "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]  # writable by the service
    assert the(shared, "Deployment")["spec"]["strategy"]["type"] == "Recreate"  # ReadWriteOnce: one pod at a time


def test_job_pods_report_to_the_service_at_its_service(shared: list[dict[str, Any]]) -> None:
    env = service_env(shared)
    url = urlsplit(env["DASK_KBATCH__SERVICE__DRIVER_URL"])
    service = the(shared, "Service")
    (port,) = service["spec"]["ports"]
    assert (url.scheme, url.hostname, url.port) == ("http", service["metadata"]["name"], port["port"])
    assert url.path == env["JUPYTERHUB_SERVICE_PREFIX"]  # the service's routes are under its prefix


def test_the_job_network_policy_reaches_the_service_and_not_the_api_server(shared: list[dict[str, Any]]) -> None:
    template = the(shared, "Deployment")["spec"]["template"]
    labels = template["metadata"]["labels"]
    (container_port,) = template["spec"]["containers"][0]["ports"]
    egress = the(shared, "NetworkPolicy")["spec"]["egress"]
    to_service = [
        rule
        for rule in egress
        if any(p["port"] == container_port["containerPort"] for p in rule.get("ports") or [])
        and any(peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items() for peer in rule["to"])
    ]
    assert to_service, "job pods cannot reach the service's pod at its container port"
    # The API server's ports only by the direct jobs' policy, which the kustomization leaves out.
    ports = {p["port"] for rule in egress for p in rule.get("ports") or []}
    assert not ports & {443, 6443}
    direct = yaml.safe_load((DEPLOY / "job-apiserver-networkpolicy.yaml").read_text())
    assert {p["port"] for rule in direct["spec"]["egress"] for p in rule["ports"]} == {443, 6443}


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


def test_the_per_user_jobs_role_is_the_hub_roles_but_for_the_servers_claims(
    shared: list[dict[str, Any]], per_user: list[dict[str, Any]]
) -> None:
    # What the service calls in a user's namespace is what it calls in the shared one, less
    # reading the servers' home claims, which stay in the hub's namespace, and the watches,
    # which go across namespaces (test_deploy_per_user.py runs it under these roles).
    watches = {("watch", "jobs"), ("watch", "pods")}
    assert granted(per_user, "kbatch-dask-jobs") == granted(shared, "kbatch-dask") - {
        ("get", "persistentvolumeclaims"),
        *watches,
    }
    assert watches <= granted(per_user, "kbatch-dask-namespaces")


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
        watch = request.query.get("watch") in ("true", "1")
        verb = verbs.get(request.method) or ("get" if named else "watch" if watch else "list")
        found.add((verb, "/".join(rest[::2]) if len(rest) > 2 else rest[0]))
    return found


@pytest.fixture
def rbac_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeApiServer, FakeKubelet, str]]:
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
            yield server, kubelet, account


def annotations(server: FakeApiServer, job_id: str) -> dict[str, str]:
    """The annotations of the Job of ``job_id`` (none once it is gone)."""
    jobs = server.objects("jobs", NAMESPACE, f"kbatch-dask.io/job-id={job_id}")
    return dict(jobs[0]["metadata"].get("annotations") or {}) if jobs else {}


@contextlib.contextmanager
def serving(make: Callable[[int], web.Application]) -> Iterator[web.Application]:
    """The application ``make(port)`` serving on 127.0.0.1:port, in a thread of its own."""
    sockets = bind_sockets(0, "127.0.0.1")
    app = make(int(sockets[0].getsockname()[1]))
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = HTTPServer(app)
        server.add_sockets(sockets)
        ready.set()
        loop.run_forever()
        server.stop()
        loop.close()

    thread = threading.Thread(target=run, name="service", daemon=True)
    thread.start()
    ready.wait()
    try:
        yield app
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def test_a_service_job_runs_end_to_end_with_exactly_the_deployed_roles(
    rbac_cluster: tuple[FakeApiServer, FakeKubelet, str],
    shared: list[dict[str, Any]],
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    import dask.config
    from jupyterhub.services.auth import HubAuth

    from kbatch_dask import settings
    from kbatch_dask.backends.kubernetes.client import KubeAPI
    from kbatch_dask.records import JobState
    from kbatch_dask.service import submission
    from kbatch_dask.service.app import Listen, make_app
    from kbatch_dask.service.cache import JobCache
    from kbatch_dask.service.history import History, Recorder
    from kbatch_dask.service.jobs import Caller, JobService

    server, kubelet, account = rbac_cluster
    env = service_env(shared)
    prefix = env["JUPYTERHUB_SERVICE_PREFIX"]
    api = KubeAPI()
    # A hub the service never calls: these jobs have no cluster, so no token is minted;
    # with it the service sweeps for ended jobs' tokens as it does in a deployment.
    hub = HubAuth(api_url="http://127.0.0.1:9/hub/api", api_token="unused")

    def make(port: int) -> web.Application:
        # The Deployment's driver URL, at the address the service listens on here.
        driver_url = urlsplit(env["DASK_KBATCH__SERVICE__DRIVER_URL"])._replace(netloc=f"127.0.0.1:{port}")
        # The Deployment's archive is on its claim; here, a folder of the test's.
        archive = str(tmp_path / "archive")
        with dask.config.set(
            {"kbatch.service.driver-url": driver_url.geturl(), "kbatch.service.archive.directory": archive}
        ):
            config = settings.load()
        cache = JobCache(KubeAPI(), NAMESPACE).start()  # as the service's main starts it
        request.addfinalizer(cache.stop)
        wait_for(lambda: cache.up, what="the watch cache's first list")
        records = Recorder(History(f"sqlite:///{tmp_path}/records-{port}.sqlite"))
        return make_app(config, api, Listen("127.0.0.1", port, prefix), cache, records, hub_auth=hub)

    alice = Caller("alice")
    script = {"name": "hello.py", "content": base64.b64encode(b"print('hello from the job')\n").decode()}
    body = json.dumps({"spec": {"dask_workers": "0", "chdir": str(Path.home())}, "script": script}).encode()
    sleeper = {
        "name": "sleeper.py",
        "content": base64.b64encode(b"import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n").decode(),
    }
    sleeping = json.dumps({"spec": {"dask_workers": "0", "chdir": str(Path.home())}, "script": sleeper}).encode()
    with serving(make) as app:
        jobs: JobService = app.settings["kbatch_jobs"]
        job = jobs.submit(alice, submission.parse(body))
        wait_for(lambda: jobs.get(alice, job.id).state.is_terminal(), timeout=90, what="the job to end")
        assert jobs.get(alice, job.id).state is JobState.SUCCEEDED
        # The ended job's output, from the archive its driver uploaded to.
        assert b"hello from the job" in b"".join(
            jobs.logs(alice, job.id, user=None, follow=False, stream="output", tail=None)
        )
        assert "hello from the job" in (jobs.archive.get("alice", job.id, "output") or b"").decode()
        assert [j["id"] for j in json.loads(jobs.list_json(alice).body)["jobs"]] == [job.id]
        assert annotations(server, job.id)["kbatch-dask.io/state"] == "SUCCEEDED"  # the driver's event
        running = jobs.submit(alice, submission.parse(sleeping))
        # Its driver has reported its start (so it handles the cancel's SIGTERM) once the Job says so.
        wait_for(lambda: "kbatch-dask.io/started" in annotations(server, running.id), timeout=60, what="its start")
        # A running job's log is its pod's (pods/log); an ended one's comes from the archive.
        wait_for(
            lambda: (
                b"sleeping"
                in b"".join(jobs.logs(alice, running.id, user=None, follow=False, stream="output", tail=None))
            ),
            timeout=30,
            what="the running job's log",
        )
        (pod,) = server.objects("pods", NAMESPACE, f"kbatch-dask.io/job-id={running.id}")
        root = kubelet.pod_root(pod["metadata"]["name"], NAMESPACE)
        assert root.is_dir() and not (root / SERVICE_ACCOUNT_DIR.lstrip("/")).exists()  # mounted only with automount
        assert jobs.cancel(alice, running.id).id == running.id
        # Foreground deletion: the Job is gone once its pod is, after the driver asked the service why it stopped.
        wait_for(
            lambda: not server.objects("jobs", NAMESPACE, f"kbatch-dask.io/job-id={running.id}"),
            timeout=60,
            what="the cancelled job to go",
        )
        assert jobs.driver_events.sweep(jobs.cache.all_jobs()) == 0
    api.close()

    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"  # z2jh's hub admits it
    assert server.requests(from_pods=True) == [], "a service job's driver called the Kubernetes API"
    refused = [r for r in server.requests() if r.status == 403]
    assert refused == [], "the deployed roles lack what the service called"
    assert called(server, account) | RARELY_CALLED == granted(shared, "kbatch-dask")
