"""The fake's RBAC mode, checked with the real ``kubernetes`` client: nothing is
allowed by default, and Roles, ClusterRoles and their bindings grant what
Kubernetes' evaluation would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .fake_apiserver import FakeApiServer

NS = "ns"
NOTEBOOK = f"system:serviceaccount:{NS}:notebook"
LIST_JOBS = {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]}


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer(rbac=True) as server:
        yield server


def as_user(server: FakeApiServer, user: str) -> client.ApiClient:
    return server.client(token=server.issue_token(user))


def role(name: str, *rules: dict[str, Any], cluster: bool = False) -> dict[str, Any]:
    kind = "ClusterRole" if cluster else "Role"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "rules": list(rules),
    }


def binding(name: str, role_name: str, subject: dict[str, str], *, cluster_role: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name},
        "subjects": [subject],
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole" if cluster_role else "Role",
            "name": role_name,
        },
    }


def grant(server: FakeApiServer, *rules: dict[str, Any], namespace: str = NS, account: str = "notebook") -> None:
    server.create("roles", namespace, role(account, *rules))
    subject = {"kind": "ServiceAccount", "name": account, "namespace": NS}
    server.create("rolebindings", namespace, binding(account, account, subject))


def job(name: str) -> dict[str, Any]:
    container = {"name": "c", "image": "busybox", "command": ["true"]}
    template = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    return {"metadata": {"name": name}, "spec": {"template": template}}


def status_of(call: Any, *args: Any) -> int:
    try:
        call(*args)
    except ApiException as exc:
        return int(exc.status)
    return 200


def test_nothing_is_allowed_by_default_and_the_refusal_reads_like_kubernetes(server: FakeApiServer) -> None:
    batch = client.BatchV1Api(as_user(server, NOTEBOOK))
    with pytest.raises(ApiException) as refused:
        batch.create_namespaced_job(NS, job("j"))
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"] == (
        f'jobs.batch is forbidden: User "{NOTEBOOK}" cannot create resource "jobs" in API group "batch" '
        f'in the namespace "{NS}"'
    )
    core = client.CoreV1Api(as_user(server, NOTEBOOK))
    assert status_of(core.list_namespaced_pod, NS) == 403
    assert server.objects("jobs") == []


def test_a_role_grants_exactly_its_verbs_resources_and_groups(server: FakeApiServer) -> None:
    grant(
        server,
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "list"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    )
    api = as_user(server, NOTEBOOK)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    assert status_of(batch.create_namespaced_job, NS, job("j")) == 200
    assert status_of(batch.list_namespaced_job, NS) == 200
    assert status_of(batch.read_namespaced_job, "j", NS) == 403  # get is not granted
    assert status_of(batch.delete_namespaced_job, "j", NS) == 403
    assert status_of(batch.create_namespaced_job, "other", job("j2")) == 403  # another namespace
    assert status_of(core.list_namespaced_pod, NS) == 403  # pods/log is not pods
    # Another service account of the same namespace has none of it.
    assert status_of(client.BatchV1Api(as_user(server, f"system:serviceaccount:{NS}:x")).list_namespaced_job, NS) == 403


def test_wildcards_and_resource_names(server: FakeApiServer) -> None:
    grant(
        server,
        {"apiGroups": ["*"], "resources": ["configmaps"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["mine"]},
        {"apiGroups": [""], "resources": ["*/log"], "verbs": ["get"]},
    )
    server.create("secrets", NS, {"metadata": {"name": "mine"}})
    server.create("secrets", NS, {"metadata": {"name": "hub"}})
    core = client.CoreV1Api(as_user(server, NOTEBOOK))
    assert status_of(core.create_namespaced_config_map, NS, {"metadata": {"name": "c"}}) == 200
    assert status_of(core.delete_namespaced_config_map, "c", NS) == 200
    assert status_of(core.read_namespaced_secret, "mine", NS) == 200
    assert status_of(core.read_namespaced_secret, "hub", NS) == 403
    assert status_of(core.list_namespaced_secret, NS) == 403  # a named rule never grants a list
    # */log grants the log subresource (a 400: the pod does not run), not the pods.
    server.create("pods", NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    assert status_of(core.read_namespaced_pod_log, "p", NS) == 400
    assert status_of(core.read_namespaced_pod, "p", NS) == 403


def test_cluster_roles_bound_in_a_namespace_or_everywhere_and_group_subjects(server: FakeApiServer) -> None:
    server.create("clusterroles", "", role("job-reader", LIST_JOBS, cluster=True))
    group = {"kind": "Group", "name": f"system:serviceaccounts:{NS}"}
    server.create("rolebindings", NS, binding("readers", "job-reader", group, cluster_role=True))
    batch = client.BatchV1Api(as_user(server, f"system:serviceaccount:{NS}:anyone"))
    assert status_of(batch.list_namespaced_job, NS) == 200
    assert status_of(batch.list_namespaced_job, "elsewhere") == 403
    everywhere = {
        **binding("all", "job-reader", {"kind": "User", "name": "alice"}, cluster_role=True),
        "kind": "ClusterRoleBinding",
    }
    server.create("clusterrolebindings", "", everywhere)
    assert status_of(client.BatchV1Api(as_user(server, "alice")).list_namespaced_job, "elsewhere") == 200


def test_access_and_rules_reviews_answer_from_the_roles(server: FakeApiServer) -> None:
    grant(server, {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "patch"]})
    auth = client.AuthorizationV1Api(as_user(server, NOTEBOOK))

    def allowed(verb: str) -> bool:
        attributes = {"namespace": NS, "verb": verb, "group": "batch", "resource": "jobs"}
        return bool(auth.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}}).status.allowed)

    assert (allowed("patch"), allowed("delete")) == (True, False)
    review = auth.create_self_subject_rules_review({"spec": {"namespace": NS}})
    assert not review.status.incomplete
    rules = [(r.verbs, r.api_groups, r.resources) for r in review.status.resource_rules]
    assert (["get", "patch"], ["batch"], ["jobs"]) in rules


def test_roles_are_served_over_http_and_rbac_can_be_switched_on(server: FakeApiServer) -> None:
    server.rbac = False
    rbac = client.RbacAuthorizationV1Api(server.client())
    rbac.create_namespaced_role(NS, role("notebook", LIST_JOBS))
    subject = {"kind": "ServiceAccount", "name": "notebook"}  # namespace: the binding's
    rbac.create_namespaced_role_binding(NS, binding("notebook", "notebook", subject))
    assert [r.metadata.name for r in rbac.list_namespaced_role(NS).items] == ["notebook"]
    server.rbac = True
    batch = client.BatchV1Api(as_user(server, NOTEBOOK))
    assert status_of(batch.list_namespaced_job, NS) == 200
    assert status_of(batch.create_namespaced_job, NS, job("j")) == 403
    assert status_of(rbac.list_namespaced_role, NS) == 403  # the test's own token holds no Role now


def test_deny_rules_still_apply_in_rbac_mode(server: FakeApiServer) -> None:
    grant(server, LIST_JOBS)
    server.deny("list", "batch", "jobs")
    assert status_of(client.BatchV1Api(as_user(server, NOTEBOOK)).list_namespaced_job, NS) == 403
