"""The fake's RBAC mode refuses privilege escalation as Kubernetes does
(escalation.py): a RoleBinding to a role needs ``bind`` on it or every
permission it grants, a Role needs ``escalate`` or every permission it grants;
and with ``strict_namespaces`` nothing is created in a namespace that does not
exist, while a ClusterRole bound in a namespace created at run time grants its
rules there and nowhere else. Checked with the real ``kubernetes`` client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .fake_apiserver import FakeApiServer
from .test_rbac import LIST_JOBS, NOTEBOOK, NS, as_user, binding, grant, job, role, status_of

SERVICE = f"system:serviceaccount:{NS}:notebook"  # the caller that writes the bindings
JOBS = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]}
WRITE_BINDINGS = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]}
SUBJECT = {"kind": "ServiceAccount", "name": "notebook", "namespace": NS}


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer(rbac=True, strict_namespaces=True) as server:
        server.create("clusterroles", "", role("jobs", JOBS, cluster=True))
        yield server


def grant_more(server: FakeApiServer, name: str, *rules: dict[str, object]) -> None:
    """Another Role of ``rules`` bound to the notebook account in NS."""
    server.create("roles", NS, role(name, *rules))
    server.create("rolebindings", NS, binding(name, name, SUBJECT))


def bind_on(*names: str) -> dict[str, object]:
    return {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles"],
        "verbs": ["bind"],
        "resourceNames": list(names),
    }


def rbac_api(server: FakeApiServer) -> client.RbacAuthorizationV1Api:
    return client.RbacAuthorizationV1Api(as_user(server, NOTEBOOK))


def test_a_binding_to_a_role_whose_permissions_the_caller_lacks_is_refused(server: FakeApiServer) -> None:
    grant(server, WRITE_BINDINGS)
    with pytest.raises(ApiException) as refused:
        rbac_api(server).create_namespaced_role_binding(NS, binding("b", "jobs", SUBJECT, cluster_role=True))
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert message.startswith(
        f'rolebindings.rbac.authorization.k8s.io "b" is forbidden: user "{SERVICE}" is attempting to grant '
        "RBAC permissions not currently held:"
    )
    assert '{APIGroups:["batch"], Resources:["jobs"], Verbs:["create"]}' in message
    assert "b" not in [b["metadata"]["name"] for b in server.objects("rolebindings", NS)]


def test_bind_on_that_role_lets_the_binding_through_and_the_log_says_so(server: FakeApiServer) -> None:
    grant(server, WRITE_BINDINGS, bind_on("other"))
    api = rbac_api(server)
    assert status_of(api.create_namespaced_role_binding, NS, binding("b", "jobs", SUBJECT, cluster_role=True)) == 403
    grant_more(server, "binder", bind_on("jobs"))
    assert status_of(api.create_namespaced_role_binding, NS, binding("b", "jobs", SUBJECT, cluster_role=True)) == 200
    (created,) = server.requests("POST", "/rolebindings")[-1:]
    assert (created.status, created.escalation) == (201, ("bind", "clusterroles"))


def test_holding_every_permission_of_the_role_is_enough_without_bind(server: FakeApiServer) -> None:
    grant(server, WRITE_BINDINGS, {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get"]})
    api = rbac_api(server)
    assert status_of(api.create_namespaced_role_binding, NS, binding("b", "jobs", SUBJECT, cluster_role=True)) == 403
    grant_more(server, "all-batch", {"apiGroups": ["batch"], "resources": ["*"], "verbs": ["*"]})
    assert status_of(api.create_namespaced_role_binding, NS, binding("b", "jobs", SUBJECT, cluster_role=True)) == 200
    assert server.requests("POST", "/rolebindings")[-1].escalation is None


def test_a_binding_to_a_missing_role_is_its_404_unless_the_caller_may_bind_it(server: FakeApiServer) -> None:
    grant(server, WRITE_BINDINGS)
    api = rbac_api(server)
    assert status_of(api.create_namespaced_role_binding, NS, binding("b", "nope", SUBJECT, cluster_role=True)) == 404
    grant_more(server, "binder", bind_on("nope"))
    assert status_of(api.create_namespaced_role_binding, NS, binding("b", "nope", SUBJECT, cluster_role=True)) == 200


def test_a_role_needs_escalate_or_its_permissions(server: FakeApiServer) -> None:
    write_roles = {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]}
    grant(server, write_roles, LIST_JOBS)
    api = rbac_api(server)
    assert status_of(api.create_namespaced_role, NS, role("r", LIST_JOBS)) == 200  # held
    assert status_of(api.create_namespaced_role, NS, role("r2", JOBS)) == 403
    escalate = {**write_roles, "verbs": ["escalate"], "resourceNames": ["r2"]}
    grant_more(server, "escalator", escalate)
    assert status_of(api.create_namespaced_role, NS, role("r2", JOBS)) == 200
    assert server.requests("POST", "/roles")[-1].escalation == ("escalate", "roles")


def test_a_cluster_role_bound_in_a_namespace_created_at_run_time_grants_it_there_only(server: FakeApiServer) -> None:
    namespaces = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]}
    server.create("clusterroles", "", role("maker", namespaces, WRITE_BINDINGS, bind_on("jobs"), cluster=True))
    everywhere = {**binding("maker", "maker", SUBJECT, cluster_role=True), "kind": "ClusterRoleBinding"}
    server.create("clusterrolebindings", "", everywhere)
    api = as_user(server, NOTEBOOK)
    rbac, core, batch = client.RbacAuthorizationV1Api(api), client.CoreV1Api(api), client.BatchV1Api(api)
    # Not before the namespace exists, as in Kubernetes.
    assert (
        status_of(rbac.create_namespaced_role_binding, "new", binding("b", "jobs", SUBJECT, cluster_role=True)) == 404
    )
    core.create_namespace({"metadata": {"name": "new"}})
    assert status_of(batch.create_namespaced_job, "new", job("j")) == 403
    rbac.create_namespaced_role_binding("new", binding("b", "jobs", SUBJECT, cluster_role=True))
    assert status_of(batch.create_namespaced_job, "new", job("j")) == 200
    assert status_of(batch.read_namespaced_job, "j", "new") == 200
    assert status_of(batch.create_namespaced_job, NS, job("j")) == 403  # the binding is in "new" only
