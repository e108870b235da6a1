"""The service's jobs against the fake Kubernetes API server: per-user
namespaces (created once with the service's label and RoleBinding, the jobs
there, isolation between users, names that are not DNS labels, a namespace that
is not the service's) and the admin's pod template over the server pod's
settings. The service's :class:`JobService` is driven directly, as its handlers
drive it, without a hub (tests/e2e/service/ has the HTTP and hub side)."""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import pytest
from conftest import wait_for
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE, notebook_pod
from fakes.kube.resources import POD

from kbatch_dask import settings
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.errors import BadInput, JobNotFound, KubeError
from kbatch_dask.service import submission
from kbatch_dask.service.app import namespace
from kbatch_dask.service.archive import DirectoryArchive
from kbatch_dask.service.cache import JobCache
from kbatch_dask.service.history import History, Recorder
from kbatch_dask.service.jobs import Caller, JobService, ListQuery
from kbatch_dask.service.namespaces import Namespaces
from kbatch_dask.service.policy import Policy

MANAGED = "app.kubernetes.io/managed-by=kbatch-dask"
ODD_NAME = "Alice.Smith@Example.org"  # a hub name, not a DNS label


def body() -> bytes:
    script = {"name": "hello.py", "content": base64.b64encode(b"print('hello')\n").decode()}
    return json.dumps({"spec": {"dask_workers": "0", "chdir": "/tmp"}, "script": script}).encode()


def start_server(server: FakeApiServer, user: str, home: Path) -> None:
    """``user``'s running server pod in the hub's namespace, as z2jh labels it."""
    from kbatch_dask.backends.kubernetes.slugs import safe_slug

    pod = copy.deepcopy(notebook_pod(f"jupyter-{safe_slug(user)}", home))
    pod["metadata"]["labels"]["hub.jupyter.org/username"] = safe_slug(user, max_length=63)
    pod["spec"]["serviceAccountName"] = "user-identity"
    server.store.insert(POD, pod)


def make_service(folder: Path, **overrides: Any) -> JobService:
    with dask.config.set({f"kbatch.service.{k}": v for k, v in overrides.items()}):
        config = settings.load()
    api = KubeAPI()
    namespaces = Namespaces(api, config.service, namespace(config, api))  # refuses a bad mode or template
    # As the service runs it: a per-user mode's cache watches every namespace at once.
    cache = JobCache(KubeAPI(), "" if namespaces.per_user else namespaces.hub).start()
    wait_for(lambda: cache.up, what="the cache's first list")
    records = Recorder(History(f"sqlite:///{folder}/records.sqlite"))
    return JobService(api, config, namespaces, Policy(), cache, DirectoryArchive(str(folder / "archive")), records)


def listed(service: JobService, caller: Caller, everyone: bool = False) -> list[dict[str, Any]]:
    """The jobs ``GET /jobs`` answers ``caller``, as JSON."""
    return list(json.loads(service.list_json(caller, ListQuery(everyone=everyone)).body)["jobs"])


@pytest.fixture
def per_user(fake_apiserver: FakeApiServer, kube_env: Path, tmp_path: Path) -> Iterator[JobService]:  # noqa: F811
    for user in ("alice", "bob", ODD_NAME, "carol"):
        start_server(fake_apiserver, user, tmp_path)
    service = make_service(tmp_path, **{"namespace-mode": "per-user"})
    yield service
    service.cache.stop()
    service.api.close()


def core(server: FakeApiServer) -> Any:
    from kubernetes import client

    return client.CoreV1Api(server.client())


def namespace_creations(server: FakeApiServer) -> int:
    return len([r for r in server.requests("POST", "/api/v1/namespaces") if r.path == "/api/v1/namespaces"])


def jobs_in(server: FakeApiServer, namespace: str) -> list[dict[str, Any]]:
    return server.objects("jobs", namespace, MANAGED)


def test_a_users_first_job_creates_their_namespace_once_with_its_binding(
    per_user: JobService,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    first = per_user.submit(Caller("alice"), submission.parse(body()))
    second = per_user.submit(Caller("alice"), submission.parse(body()))
    assert namespace_creations(fake_apiserver) == 1  # created once, not per job
    created = core(fake_apiserver).read_namespace("kbatch-alice")
    assert created.metadata.labels["app.kubernetes.io/managed-by"] == "kbatch-dask"
    (binding,) = fake_apiserver.objects("rolebindings", "kbatch-alice")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "kbatch-dask-jobs",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kbatch-dask", "namespace": NAMESPACE}]
    # The jobs are there, none in the hub's namespace.
    ids = sorted(j["metadata"]["labels"]["kbatch-dask.io/job-id"] for j in jobs_in(fake_apiserver, "kbatch-alice"))
    assert ids == sorted([first.id, second.id]) and jobs_in(fake_apiserver, NAMESPACE) == []


def test_a_per_user_job_keeps_what_moves_across_namespaces_only(
    per_user: JobService,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    per_user.submit(Caller("alice"), submission.parse(body()))
    (job,) = jobs_in(fake_apiserver, "kbatch-alice")
    pod = job["spec"]["template"]["spec"]
    # The server's node selector and security context come along; its home claim,
    # service account and secrets live in the hub's namespace and cannot.
    assert pod["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    assert pod["securityContext"] == {"fsGroup": 100}
    assert not any("persistentVolumeClaim" in v for v in pod.get("volumes") or [])
    assert pod.get("serviceAccountName") != "user-identity"


def test_users_are_isolated_across_their_namespaces(
    per_user: JobService,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    job = per_user.submit(Caller("alice"), submission.parse(body()))
    with pytest.raises(JobNotFound):
        per_user.get(Caller("bob"), job.id)
    with pytest.raises(JobNotFound):
        per_user.cancel(Caller("bob"), job.id)
    assert listed(per_user, Caller("bob")) == []
    # Reading made no namespace for bob; an admin sees alice's job across namespaces.
    assert namespace_creations(fake_apiserver) == 1
    assert [j["id"] for j in listed(per_user, Caller("root", admin=True), everyone=True)] == [job.id]
    assert per_user.get(Caller("alice"), job.id).id == job.id


def test_a_name_that_is_not_a_dns_label_gets_a_slugged_namespace(
    per_user: JobService,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    job = per_user.submit(Caller(ODD_NAME), submission.parse(body()))
    (space,) = [n for n in core(fake_apiserver).list_namespace().items if n.metadata.name.startswith("kbatch-alice-")]
    assert space.metadata.name == per_user.namespaces.of(ODD_NAME)
    assert space.metadata.name.startswith("kbatch-alice-smith-example-org---") and len(space.metadata.name) <= 63
    assert [j["metadata"]["labels"]["kbatch-dask.io/job-id"] for j in jobs_in(fake_apiserver, space.metadata.name)] == [
        job.id
    ]
    assert per_user.get(Caller(ODD_NAME), job.id).user == ODD_NAME
    with pytest.raises(JobNotFound):
        per_user.get(Caller("alice"), job.id)  # a look-alike name is another user


def test_a_namespace_that_is_not_the_services_is_never_used(
    per_user: JobService,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    core(fake_apiserver).create_namespace({"metadata": {"name": "kbatch-carol"}})
    with pytest.raises(KubeError, match="namespace 'kbatch-carol' exists and is not kbatch-dask's"):
        per_user.submit(Caller("carol"), submission.parse(body()))
    assert jobs_in(fake_apiserver, "kbatch-carol") == [] and listed(per_user, Caller("carol")) == []


def test_a_bad_namespace_template_is_refused_at_start(
    fake_apiserver: FakeApiServer,  # noqa: F811
    kube_env: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    with pytest.raises(BadInput, match=re.escape("namespace-template = 'Jobs_{username}'")):
        make_service(tmp_path, **{"namespace-mode": "per-user", "namespace-template": "Jobs_{username}"})
    with pytest.raises(BadInput, match="namespace-mode = 'mine'"):
        make_service(tmp_path, **{"namespace-mode": "mine"})


def test_the_admins_pod_template_wins_over_the_server_pod_and_the_kubernetes_template(
    fake_apiserver: FakeApiServer,  # noqa: F811
    kube_env: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    start_server(fake_apiserver, "alice", tmp_path)
    template = {
        "nodeSelector": {"hub.jupyter.org/node-purpose": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "shared", "nfs": {"server": "nfs.example", "path": "/shared"}}],
        "containers": [{"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}],
    }
    kube_template = {"priorityClassName": "low", "nodeSelector": {"zone": "a"}}
    with dask.config.set({"kbatch.kubernetes.pod-template": kube_template}):
        service = make_service(tmp_path, **{"pod-template": template})
    # A client that asks for more pod-spec than the options is refused by name (test_submission.py);
    # what it may ask, it asks through validated options, which the template still overrides.
    service.submit(Caller("alice"), submission.parse(body()))
    (job,) = jobs_in(fake_apiserver, NAMESPACE)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"hub.jupyter.org/node-purpose": "batch", "zone": "a"}  # not the server's "user"
    assert pod["priorityClassName"] == "low" and pod["tolerations"] == template["tolerations"]
    assert {"name": "shared", "nfs": {"server": "nfs.example", "path": "/shared"}} in pod["volumes"]
    (driver,) = [c for c in pod["containers"] if c["name"] == "driver"]
    assert {"name": "shared", "mountPath": "/shared"} in driver["volumeMounts"]
    assert [c["name"] for c in pod["containers"]] == ["driver"]  # the template's container merged into the driver
    service.cache.stop()
    service.api.close()


def test_a_drivers_event_reads_its_job_in_its_own_namespace_only(
    per_user: JobService,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    """Not every user's namespace per event: the watch cache says where the job is."""
    job = per_user.submit(Caller("alice"), submission.parse(body()))
    wait_for(lambda: per_user.cache.namespace_of(job.id) == "kbatch-alice", what="the job in the cache")
    before = len(fake_apiserver.requests())
    assert per_user.driver_events.job(job.id, "not-its-credential") is None
    calls = [r.path for r in fake_apiserver.requests()[before:] if r.query.get("watch") not in ("true", "1")]
    assert calls == ["/apis/batch/v1/namespaces/kbatch-alice/jobs"], calls
