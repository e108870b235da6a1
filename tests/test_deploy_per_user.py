"""deploy/ with its per-user component (``kbatch.service.namespace-mode:
per-user``) run under exactly the Roles it renders (``kubectl kustomize``), on
the fake API server in RBAC mode with Kubernetes' escalation check and no
object in a namespace that does not exist: alice's and bob's first jobs create
their namespaces and the RoleBindings there (allowed by the component's
``bind`` on ``kbatch-dask-jobs``), alice's job runs to its end, bob's is
cancelled, the service's one watch across namespaces sees both, and a service
started again submits into the namespace it finds. Every
verb each role grants was called where that role applies, or is one of the
few named below that only a rare path calls (tests/test_deploy.py does the
same for the shared mode)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import KUBECTL, wait_for
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import REPO
from fakes.kube.notebook import NAMESPACE, home_claim, notebook_pod
from fakes.kube.resources import POD, PVC
from test_deploy import RARELY_CALLED, granted, load_rbac, per_user, service_env, serving  # noqa: F401
from tornado import web

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed (it renders the kustomization)")

USERS = ("alice", "bob")
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:kbatch-dask"

Call = tuple[str | None, str, str]  # (namespace or None for cluster-wide, verb, resource)


def calls(server: FakeApiServer, user: str) -> set[Call]:
    """Each request ``user`` made as (namespace, verb, resource), and the ``bind`` or
    ``escalate`` permission an RBAC write of theirs was allowed by."""
    verbs = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}
    found: set[Call] = set()
    for request in server.requests():
        if request.user != user:
            continue
        parts = request.path.strip("/").split("/")
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        named = len(rest) > 1
        watch = request.query.get("watch") in ("true", "1")
        verb = verbs.get(request.method) or ("get" if named else "watch" if watch else "list")
        found.add((namespace, verb, "/".join(rest[::2]) if len(rest) > 2 else rest[0]))
        if request.escalation is not None:
            found.add((namespace, *request.escalation))
    return found


@pytest.fixture
def per_user_cluster(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    per_user: list[dict[str, Any]],  # noqa: F811
) -> Iterator[tuple[FakeApiServer, FakeKubelet]]:
    """RBAC mode with the per-user rendering's roles, the service's kubeconfig in
    $KUBECONFIG, and alice's and bob's servers running in the hub's namespace."""
    with FakeApiServer(rbac=True, strict_namespaces=True) as server:
        load_rbac(server, per_user, NAMESPACE)
        path = server.kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE, token=server.issue_token(ACCOUNT))
        monkeypatch.setenv("KUBECONFIG", str(path))
        for key in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            monkeypatch.delenv(key, raising=False)
        for user in USERS:
            home = tmp_path / user
            home.mkdir()
            pod = notebook_pod(f"jupyter-{user}", home)
            pod["metadata"]["labels"]["hub.jupyter.org/username"] = user
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = f"claim-{user}"
            server.store.insert(PVC, home_claim(f"claim-{user}", ("ReadWriteMany",)))
            server.store.insert(POD, pod)
        with FakeKubelet(server, root=tmp_path / "kubelet", extra_env={"PYTHONPATH": str(REPO)}) as kubelet:
            yield server, kubelet


def job_of(server: FakeApiServer, job_id: str) -> list[dict[str, Any]]:
    return server.objects("jobs", None, f"kbatch-dask.io/job-id={job_id}")


def test_per_user_jobs_run_with_exactly_the_per_user_roles(
    per_user_cluster: tuple[FakeApiServer, FakeKubelet],
    per_user: list[dict[str, Any]],  # noqa: F811
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
    from kbatch_dask.service.jobs import Caller, JobService, ListQuery

    server, _ = per_user_cluster
    env = service_env(per_user)
    api = KubeAPI()
    hub = HubAuth(api_url="http://127.0.0.1:9/hub/api", api_token="unused")  # never called: no clusters

    def make(port: int) -> web.Application:
        driver_url = urlsplit(env["DASK_KBATCH__SERVICE__DRIVER_URL"])._replace(netloc=f"127.0.0.1:{port}")
        with dask.config.set(
            {
                "kbatch.service.driver-url": driver_url.geturl(),
                "kbatch.service.namespace-mode": "per-user",
                "kbatch.service.archive.directory": str(tmp_path / "archive"),  # the Deployment's is on its claim
            }
        ):
            config = settings.load()
        cache = JobCache(KubeAPI(), "").start()  # every namespace, as the service's main starts it in this mode
        request.addfinalizer(cache.stop)
        wait_for(lambda: cache.up, what="the watch cache's first list")
        records = Recorder(History(f"sqlite:///{tmp_path}/records-{port}.sqlite"))
        listen = Listen("127.0.0.1", port, env["JUPYTERHUB_SERVICE_PREFIX"])
        return make_app(config, api, listen, cache, records, hub_auth=hub)

    def body(name: str, code: bytes) -> submission.Submission:
        script = {"name": name, "content": base64.b64encode(code).decode()}
        return submission.parse(json.dumps({"spec": {"dask_workers": "0", "chdir": "/tmp"}, "script": script}).encode())

    alice, bob, admin = Caller("alice"), Caller("bob"), Caller("root", admin=True)
    with serving(make) as app:
        jobs: JobService = app.settings["kbatch_jobs"]
        done = jobs.submit(alice, body("hello.py", b"print('hello from the job')\n"))
        running = jobs.submit(bob, body("sleeper.py", b"import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"))
        assert [j["metadata"]["namespace"] for j in job_of(server, done.id) + job_of(server, running.id)] == [
            "kbatch-alice",
            "kbatch-bob",
        ]
        for user in USERS:  # each namespace made once, with the service's binding there
            (binding,) = server.objects("rolebindings", f"kbatch-{user}")
            assert binding["roleRef"]["name"] == "kbatch-dask-jobs"
        wait_for(lambda: jobs.get(alice, done.id).state.is_terminal(), timeout=90, what="alice's job to end")
        assert jobs.get(alice, done.id).state is JobState.SUCCEEDED
        assert b"hello from the job" in b"".join(
            jobs.logs(alice, done.id, user=None, follow=False, stream="output", tail=None)
        )
        # One watch across the namespaces: both users' jobs, each seen by its owner only.
        everyone = {
            j["id"]: j["user"] for j in json.loads(jobs.list_json(admin, ListQuery(everyone=True)).body)["jobs"]
        }
        assert everyone == {done.id: "alice", running.id: "bob"}
        assert [j["id"] for j in json.loads(jobs.list_json(bob).body)["jobs"]] == [running.id]
        wait_for(
            lambda: "kbatch-dask.io/started" in job_of(server, running.id)[0]["metadata"].get("annotations", {}),
            timeout=60,
            what="bob's job to start",
        )
        # A running job's log is its pod's (pods/log); an ended one's comes from the archive.
        wait_for(
            lambda: (
                b"sleeping" in b"".join(jobs.logs(bob, running.id, user=None, follow=False, stream="output", tail=None))
            ),
            timeout=30,
            what="bob's running job's log",
        )
        assert jobs.cancel(bob, running.id).id == running.id
        wait_for(lambda: not job_of(server, running.id), timeout=60, what="the cancelled job to go")
        assert jobs.driver_events.sweep(jobs.cache.all_jobs()) == 0
    # A service started again finds alice's namespace there (409, then get: is it the
    # service's?) and its RoleBinding too (409), and submits into it.
    with serving(make) as app:
        jobs = app.settings["kbatch_jobs"]
        again = jobs.submit(alice, body("hello.py", b"print('again')\n"))
        wait_for(lambda: jobs.get(alice, again.id).state.is_terminal(), timeout=90, what="alice's next job to end")
        assert jobs.get(alice, again.id).state is JobState.SUCCEEDED
        assert job_of(server, again.id)[0]["metadata"]["namespace"] == "kbatch-alice"
    api.close()

    assert server.requests(from_pods=True) == [], "a service job's driver called the Kubernetes API"
    refused = [f"{r.method} {r.path} {r.status}" for r in server.requests() if r.status == 403]
    assert refused == [], "the deployed roles lack what the service called"
    made = calls(server, ACCOUNT)
    in_hub = {(verb, resource) for namespace, verb, resource in made if namespace == NAMESPACE}
    in_users = {(v, r) for ns, v, r in made if ns and ns != NAMESPACE and r != "rolebindings" and v != "bind"}
    cluster_wide = {(v, r) for ns, v, r in made if ns is None or r == "rolebindings" or v == "bind"}
    assert in_hub == granted(per_user, "kbatch-dask")
    assert in_users | RARELY_CALLED == granted(per_user, "kbatch-dask-jobs")
    # Listing the namespaces is only for a driver's event about a job the watch cache does not know yet.
    assert cluster_wide | {("list", "namespaces")} == granted(per_user, "kbatch-dask-namespaces")
