"""A job with exactly the permissions docs/kubernetes.md grants: the fake API
server in RBAC mode (nothing allowed but what the docs' Roles grant), the
notebook's and the driver's service accounts as the docs name them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE
from fakes.kube.roles import DRIVER_ACCOUNT, Rules, documented_rbac, load_documented_rbac

from e2e import kubernetes_scenarios as scenarios
from e2e.test_kubernetes import FakeSession, session  # noqa: F401

pytestmark = pytest.mark.gateway


def documented_session(
    session: FakeSession,  # noqa: F811
    tmp_path: Path,
    notebook_rules: Callable[[Rules], Rules] | None = None,
) -> None:
    """Switch the fake to RBAC mode with the docs' Roles; the session uses the notebook's account."""
    server: FakeApiServer = session.server
    token = load_documented_rbac(server, NAMESPACE, notebook_rules)
    server.rbac = True
    kubeconfig = server.kubeconfig(tmp_path / "kubeconfig-notebook", namespace=NAMESPACE, token=token)
    session.env = {
        **session.env,
        "KUBECONFIG": str(kubeconfig),
        "DASK_KBATCH__KUBERNETES__SERVICE_ACCOUNT": DRIVER_ACCOUNT,
    }


def test_the_docs_grant_roles_to_both_service_accounts() -> None:
    roles = {o["metadata"]["name"] for o in documented_rbac() if o["kind"] == "Role"}
    bound = {o["roleRef"]["name"] for o in documented_rbac() if o["kind"] == "RoleBinding"}
    assert roles == bound == {"kbatch-dask-notebook", DRIVER_ACCOUNT}


def test_a_job_submits_runs_and_is_cancelled_with_exactly_the_documented_permissions(
    session: FakeSession,  # noqa: F811
    tmp_path: Path,
) -> None:
    documented_session(session, tmp_path)
    scenarios.dashboard_then_cancel(session)
    refused = [(r.method, r.path, r.user) for r in session.server.requests() if r.status == 403]
    assert refused == []
    driver = {r.user for r in session.server.requests(from_pods=True)}
    assert driver == {f"system:serviceaccount:{NAMESPACE}:{DRIVER_ACCOUNT}"}  # the driver recorded its progress


def test_a_role_without_a_verb_the_backend_needs_is_refused_in_one_line(
    session: FakeSession,  # noqa: F811
    tmp_path: Path,
) -> None:
    def without_patching_jobs(rules: Rules) -> Rules:  # the resume of the suspended Job
        return [
            {**r, "verbs": [v for v in r["verbs"] if v != "patch"]} if "jobs" in r["resources"] else r for r in rules
        ]

    documented_session(session, tmp_path, without_patching_jobs)
    proc = session.run("--backend", "kubernetes", session.write("job.py", "print('hi')\n"), "--dask-workers", "0")
    assert proc.returncode != 0
    assert "refused to patch jobs.batch in namespace 'default' (403 Forbidden" in proc.stderr, proc.stderr
    assert session.objects("jobs") == []
