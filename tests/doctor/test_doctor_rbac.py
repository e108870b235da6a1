"""``kbatch doctor`` on the Kubernetes backend, against the fake API server in
RBAC mode with the Roles docs/kubernetes.md grants: a namespace shared with
other users or the hub is one warning (direct mode is not multi-tenant), and a
Role broader than jobs need is reported rule by rule."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import kbatch
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, kube_env  # noqa: F401
from fakes.kube.roles import Rules, load_documented_rbac

from doctor.test_doctor import doctor_json, kube_session  # noqa: F401
from kbatch_dask.doctor import kube_checks as kube

NAMESPACE = "default"
BROADER = [
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
    {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]},
]


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    container = {"name": "c", "image": "pangeo/pangeo-notebook:2026.1"}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"containers": [container]}}


def notebook(name: str, user: str) -> dict[str, Any]:
    return pod(name, {"component": "singleuser-server", "hub.jupyter.org/username": user})


@pytest.fixture
def documented(
    kube_session: None,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> FakeApiServer:
    """A notebook session of alice's, its pod on the server."""
    fake_apiserver.create("pods", NAMESPACE, notebook("jupyter-alice", "alice"))  # this session's pod
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    return fake_apiserver


def as_notebook(
    server: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: Rules | None = None
) -> None:
    """Point the session at the docs' notebook service account (its Role plus ``extra``), RBAC on."""
    token = load_documented_rbac(server, NAMESPACE, lambda rules: [*rules, *(extra or [])])
    server.rbac = True
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig(tmp_path / "kc-notebook", namespace=NAMESPACE, token=token)))


# -- pure checks ---------------------------------------------------------------


def test_broad_grants_name_wildcards_secret_reads_and_pod_exec() -> None:
    assert kube.broad_grants(BROADER) == ["get, list secrets", "create pods/exec", "get *.apps"]
    named = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["mine"]}
    needed = {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["create", "delete"]}
    assert kube.broad_grants([named, needed]) == []


def test_a_shared_namespace_warns_that_direct_mode_is_not_multi_tenant() -> None:
    check = kube.check_tenancy("jhub", ["bob", "carol"], ["hub-7f9c"], None)
    assert check.status == "warn"
    assert check.message.startswith("namespace jhub is shared (notebooks of 2 other users and the hub's own pod)")
    assert "any service account" in check.message and "JupyterHub service" in (check.fix or "")
    assert kube.check_tenancy("jhub", [], [], None).status == "ok"


# -- against the fake ----------------------------------------------------------


def test_the_documented_role_passes_and_a_namespace_of_ones_own_is_not_shared(
    documented: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_notebook(documented, tmp_path, monkeypatch)
    code, checks = doctor_json("--backend", "kubernetes")
    assert {c.status for name, c in checks.items() if name.startswith("permission ")} == {"ok"}, checks
    assert checks["rbac scope"].status == "ok"
    assert checks["tenancy"].status == "ok"
    assert code == 0, checks


def test_other_users_notebooks_or_the_hub_in_the_namespace_are_one_warning(
    documented: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documented.create("pods", NAMESPACE, notebook("jupyter-bob", "bob"))
    documented.create("pods", NAMESPACE, pod("hub-5d8f", {"component": "hub", "app": "jupyterhub"}))
    as_notebook(documented, tmp_path, monkeypatch)
    code, checks = doctor_json("--backend", "kubernetes")
    assert checks["tenancy"].status == "warn"
    assert checks["tenancy"].message.startswith(
        "namespace default is shared (notebooks of 1 other user and the hub's own pod): direct mode is not multi-tenant"
    )
    assert code == 0  # a warning: jobs work
    proc = kbatch("doctor", "--backend", "kubernetes", env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert [line for line in proc.stdout.splitlines() if line.startswith("! tenancy:")] == [
        f"! tenancy: {checks['tenancy'].message}"
    ]


def test_a_role_broader_than_jobs_need_is_reported(
    documented: FakeApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_notebook(documented, tmp_path, monkeypatch, extra=BROADER)
    _, checks = doctor_json("--backend", "kubernetes")
    scope = checks["rbac scope"]
    assert scope.status == "warn"
    assert scope.message == (
        "this session may get, list secrets; create pods/exec; get *.apps in namespace default: more than jobs need"
    )


def test_without_rbac_rules_the_scope_is_not_guessed(kube_session: None) -> None:  # noqa: F811
    _, checks = doctor_json("--backend", "kubernetes")  # the fake in its permissive mode: no rules to list
    assert checks["rbac scope"].status == "skip"
