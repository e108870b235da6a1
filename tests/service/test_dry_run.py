"""A dry run in per-user mode (:meth:`JobService.dry_run`, against the fake API
server): a user's first one shows the Namespace and RoleBinding a submit would
create before the job's objects, and creates neither; a namespace that is not
the service's is refused as a submit refuses it. tests/e2e/service/test_dry_run.py
has the HTTP, hub and CLI side."""

from __future__ import annotations

import pytest
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE

from kbatch_dask.errors import KubeError
from kbatch_dask.service import submission
from kbatch_dask.service.jobs import Caller, JobService

from .test_namespaces import body, core, per_user  # noqa: F401

WRITES = ("POST", "PUT", "PATCH", "DELETE")


def writes(server: FakeApiServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests() if r.method in WRITES]


def test_a_first_dry_run_shows_the_namespace_and_binding_it_would_create(
    per_user: JobService,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    before = writes(fake_apiserver)
    plan = per_user.dry_run(Caller("alice"), submission.parse(body()))
    assert writes(fake_apiserver) == before
    assert "kbatch-alice" not in [n.metadata.name for n in core(fake_apiserver).list_namespace().items]
    kinds = [o["kind"] for o in plan["objects"]]
    assert kinds == ["Namespace", "RoleBinding", "Job", "ConfigMap", "Secret"]
    namespace, binding, job = plan["objects"][:3]
    assert namespace["metadata"] == {
        "name": "kbatch-alice",
        "labels": {"app.kubernetes.io/managed-by": "kbatch-dask", "kbatch-dask.io/user": "alice"},
    }
    assert binding["metadata"]["namespace"] == job["metadata"]["namespace"] == "kbatch-alice"
    assert binding["roleRef"]["name"] == "kbatch-dask-jobs"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kbatch-dask", "namespace": NAMESPACE}]
    assert any("kbatch-alice is created with your first job" in line for line in plan["notes"])

    # Once it exists, only the job's objects remain to create.
    per_user.submit(Caller("alice"), submission.parse(body()))
    again = per_user.dry_run(Caller("alice"), submission.parse(body()))
    assert [o["kind"] for o in again["objects"]] == ["Job", "ConfigMap", "Secret"]


def test_a_dry_run_into_a_namespace_not_the_services_is_refused_as_a_submit(
    per_user: JobService,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    core(fake_apiserver).create_namespace({"metadata": {"name": "kbatch-carol"}})
    message = "namespace 'kbatch-carol' exists and is not kbatch-dask's"
    with pytest.raises(KubeError, match=message):
        per_user.dry_run(Caller("carol"), submission.parse(body()))
    with pytest.raises(KubeError, match=message):
        per_user.submit(Caller("carol"), submission.parse(body()))
