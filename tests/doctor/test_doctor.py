"""``kbatch doctor``: the pure checks, and the command against what it can stage
here (a gateway that is down, a fake Kubernetes API server denying a verb).
The hub checks run against a real JupyterHub in tests/e2e/hub/test_doctor_hub.py."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import kbatch
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, kube_env  # noqa: F401

from kbatch_dask.doctor import checks as doctor
from kbatch_dask.doctor import kube_checks as kube
from kbatch_dask.doctor import report
from kbatch_dask.doctor.kube_checks import PERMISSIONS
from kbatch_dask.doctor.report import Check
from kbatch_dask.errors import GatewayError, HubError
from kbatch_dask.gateway import GatewaySettings


def doctor_json(*args: str, **kw: Any) -> tuple[int, dict[str, Check]]:
    proc = kbatch("doctor", "-o", "json", *args, **kw)
    report = json.loads(proc.stdout)
    assert report["ok"] == (proc.returncode == 0), proc.stdout
    return proc.returncode, {c["name"]: Check(**c) for c in report["checks"]}


# -- pure checks ---------------------------------------------------------------


def test_render_marks_each_line_and_gives_fixes_for_failures() -> None:
    checks = [
        Check("backend", "ok", "local"),
        Check("gateway", "fail", "down", "start it"),
        Check("links", "warn", "relative", "set it"),
        Check("job tokens", "skip", "not on a hub", "never shown"),
    ]
    assert report.render(checks).splitlines() == [
        "✓ backend: local",
        "✗ gateway: down",
        "  fix: start it",
        "! links: relative",
        "  fix: set it",
        "- job tokens: not on a hub",
    ]
    ascii_text = report.render(checks, unicode=False)
    assert ascii_text.isascii() and "[FAIL] gateway: down" in ascii_text and "[ok] backend: local" in ascii_text
    assert not report.passed(checks) and report.passed(checks[:1] + checks[2:])


def test_backend_says_why() -> None:
    assert doctor.check_backend("local", "kbatch.backend is local").message == "local (kbatch.backend is local)"
    unknown = doctor.check_backend("slurm", "--backend slurm")
    assert unknown.status == "fail" and "auto, local, kubernetes or hub" in (unknown.fix or "")


def test_kubernetes_jobs_need_a_configured_gateway() -> None:
    check = doctor.check_gateway("kubernetes", None, None)
    assert check.status == "fail" and "DASK_GATEWAY__ADDRESS" in (check.fix or "")
    assert doctor.check_gateway("local", None, None).status == "ok"  # the embedded one starts on demand


def test_gateway_line_names_the_gateway() -> None:
    configured = GatewaySettings("http://gw:8000", None, "http://gw:8000", "basic")
    assert doctor.check_gateway("local", configured, None).message == "http://gw:8000 answers (gateway.address)"
    down = doctor.check_gateway("local", configured, "Connection refused")
    assert (
        down.status == "fail" and down.message == "http://gw:8000 (gateway.address) does not answer: Connection refused"
    )
    embedded = GatewaySettings("http://127.0.0.1:5", None, "http://127.0.0.1:5", "basic", embedded=True)
    assert (
        doctor.check_gateway("local", embedded, None).message == "the embedded Dask-Gateway runs at http://127.0.0.1:5"
    )


def test_gateway_auth_fixes_name_the_auth_type() -> None:
    refused = GatewayError("HTTP 401 Unauthorized")
    refused.status = 401  # type: ignore[attr-defined]
    hub = doctor.check_gateway_auth("jupyterhub", refused)
    assert hub.status == "fail" and "access:services!service=dask-gateway" in (hub.fix or "")
    assert "gateway.auth.kwargs" in (doctor.check_gateway_auth("basic", refused).fix or "")
    assert doctor.check_gateway_auth("jupyterhub", None, has_hub_token=False).status == "fail"


def test_missing_worker_options_are_a_warning() -> None:
    assert doctor.check_cluster_options(["worker_cores", "worker_memory", "image"], None).status == "ok"
    check = doctor.check_cluster_options(["image"], None)
    assert check.status == "warn" and "worker_cores and worker_memory" in (check.fix or "")


def test_job_token_check() -> None:
    base: dict[str, Any] = {
        "under_hub": True,
        "gateway_auth": "jupyterhub",
        "enabled": True,
        "error": None,
        "scopes": ["access:services!service=dask-gateway", "tokens!user"],
    }
    assert doctor.check_job_tokens(**{**base, "under_hub": False}).status == "skip"
    assert doctor.check_job_tokens(**{**base, "gateway_auth": "basic"}).status == "skip"
    assert doctor.check_job_tokens(**{**base, "enabled": False}).status == "warn"
    assert doctor.check_job_tokens(**base).status == "ok"
    refused = doctor.check_job_tokens(**{**base, "error": HubError("HTTP 403: no permissions", 403)})
    assert refused.status == "fail" and "c.Spawner.server_token_scopes" in (refused.fix or "")
    unusable = doctor.check_job_tokens(**{**base, "gateway_error": GatewayError("HTTP 401")})
    assert unusable.status == "fail" and "kbatch.hub.token-scopes" in (unusable.fix or "")


def test_a_denied_optional_verb_is_a_warning() -> None:
    jobs, pods = PERMISSIONS[0], PERMISSIONS[3]
    assert kube.check_permission(jobs, "jhub", dict.fromkeys(jobs.verbs, True)).status == "ok"
    denied = kube.check_permission(jobs, "jhub", {**dict.fromkeys(jobs.verbs, True), "delete": False})
    assert denied.status == "fail" and denied.message == "may not delete jobs.batch in namespace jhub"
    assert denied.fix == "an admin must grant delete on jobs.batch in namespace jhub"
    assert kube.check_permission(pods, "jhub", {"get": False, "list": True}).status == "warn"
    assert kube.check_permission(pods, "jhub", {"get": False, "list": False}).status == "fail"


@pytest.mark.parametrize(
    ("resource", "verb", "consequence"),
    [
        ("pods", "get", "jobs copy nothing from the notebook pod"),
        ("configmaps", "get", "kbatch resubmit cannot read a job's script snapshot"),
        ("persistentvolumeclaims", "get", "the home claim is taken as ReadWriteOnce"),
        ("events", "list", "kbatch show cannot say why a pod waits to attach its volume"),
    ],
)
def test_each_denied_optional_verb_warns_of_its_own_consequence(resource: str, verb: str, consequence: str) -> None:
    (permission,) = [p for p in PERMISSIONS if p.resource == resource]
    check = kube.check_permission(permission, "jhub", {**dict.fromkeys(permission.verbs, True), verb: False})
    assert check.status == "warn" and check.message.startswith(f"may not {verb} {resource} in namespace jhub: ")
    assert consequence in check.message, check.message


def test_dashboard_links_need_an_absolute_public_address() -> None:
    relative = doctor.check_dashboard_links("/services/dask-gateway")
    assert relative.status == "warn" and "kbatch.hub.public-url" in (relative.fix or "")
    absolute = doctor.check_dashboard_links("https://hub.example.org/services/dask-gateway/")
    assert absolute.message == "absolute (https://hub.example.org/services/dask-gateway/clusters/...)"


def test_home_volume() -> None:
    mounts = [{"name": "home", "mountPath": "/home/jovyan"}]
    assert kube.check_home_volume("/home/jovyan", mounts, None).status == "ok"
    check = kube.check_home_volume("/home/jovyan", [], "403 Forbidden")
    assert check.status == "warn" and "403 Forbidden" in check.message and "pod-template" in (check.fix or "")


def test_home_claims_say_their_access_mode_and_what_it_means_for_jobs() -> None:
    from kbatch_dask.backends.kubernetes.pod_settings import Claim

    rwo = Claim("home", "claim-alice", "/home/jovyan", ("ReadWriteOnce",))
    rwx = Claim("home", "claim-alice", "/home/jovyan", ("ReadWriteMany",))
    rwop = Claim("home", "claim-alice", "/home/jovyan", ("ReadWriteOncePod",))
    unread = Claim("home", "claim-alice", "/home/jovyan", None, "403 Forbidden")

    (shared,) = kube.check_home_claims([rwx], "pin", "node-a")
    assert (shared.name, shared.status) == ("volume /home/jovyan", "ok") and "any node" in shared.message
    (pinned,) = kube.check_home_claims([rwo], "pin", "node-a")
    assert pinned.status == "ok" and "ReadWriteOnce" in pinned.message and "node node-a" in pinned.message
    (without,) = kube.check_home_claims([rwo], "without", "node-a")
    assert (
        without.status == "warn" and "`kbatch logs JOB`" in without.message and "ReadWriteMany" in (without.fix or "")
    )
    (once_pod,) = kube.check_home_claims([rwop], "pin", "node-a")
    assert once_pod.status == "warn" and "not even on its node" in once_pod.message
    (refused,) = kube.check_home_claims([rwo], "refuse", "node-a")
    assert refused.status == "fail"
    (unknown,) = kube.check_home_claims([unread], "pin", "node-a")
    assert unknown.status == "warn" and "403 Forbidden" in unknown.message
    assert "get persistentvolumeclaims" in (unknown.fix or "")


def test_dashboard_placeholder_fails_naming_the_bokeh_the_scheduler_needs() -> None:
    url = "http://gw/clusters/a/status"
    placeholder = "<p>Dask needs bokeh>=3.1.0 for the dashboard.</p><p>Install with pip: ...</p>"
    check = doctor.check_dashboard(url, placeholder, None)
    assert check.status == "fail" and "placeholder" in check.message
    assert (check.fix or "").startswith('pip install "bokeh>=3.1.0" in the image of the gateway\'s schedulers')
    page = '<title>Dask Diagnostic UI</title><script src="static/js/bokeh.min.js?v=1"></script>'
    assert doctor.check_dashboard(url, page, None).status == "ok"
    assert doctor.check_dashboard(url, None, "Connection refused").status == "fail"
    assert doctor.check_dashboard(url, "<html>502 Bad Gateway</html>", None).status == "fail"
    assert doctor.check_dashboard(None, None, None).status == "skip"


# -- the command -----------------------------------------------------------------


def test_all_well_on_a_laptop(home: Path) -> None:
    code, checks = doctor_json()
    assert code == 0
    assert checks["backend"].message.startswith("local")
    assert checks["state directory"].message == f"{home} ($KBATCH_DASK_HOME) is writable"
    assert checks["job tokens"].status == "skip"


def test_gateway_down(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASK_GATEWAY__ADDRESS", "http://127.0.0.1:9")
    code, checks = doctor_json()
    assert code == 1
    assert checks["gateway"].status == "fail" and "does not answer" in checks["gateway"].message
    assert "DASK_GATEWAY__ADDRESS" in (checks["gateway"].fix or "")

    proc = kbatch("doctor", env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    [at] = [i for i, x in enumerate(lines) if x.startswith("✗ gateway: http://127.0.0.1:9")]
    assert lines[at + 1].startswith("  fix: check gateway.address")

    proc = kbatch("doctor", env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.stdout.isascii() and "[FAIL] gateway:" in proc.stdout


def test_state_directory_not_writable(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("KBATCH_DASK_HOME", str(blocker / "home"))
    code, checks = doctor_json()
    assert code == 1 and checks["state directory"].status == "fail"
    assert "KBATCH_DASK_HOME" in (checks["state directory"].fix or "")


@pytest.fixture
def kube_session(home: Path, kube_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A notebook-like session on the fake API server, with a running gateway."""
    started = kbatch("gateway", "start", check=True)
    assert "running" in started.stdout
    from kbatch_dask.backends.local import embedded_gateway as embedded
    from kbatch_dask.spec import current_user

    server = embedded.status(str(home), current_user())
    assert server is not None
    for key, value in server.dask_config_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUPYTER_IMAGE_SPEC", "pangeo/pangeo-notebook:2026.1")
    monkeypatch.setenv("HOSTNAME", "jupyter-alice")


def test_kubernetes_all_allowed(kube_session: None, fake_apiserver: FakeApiServer) -> None:  # noqa: F811
    fake_apiserver.create(
        "pods",
        "default",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "jupyter-alice"},
            "spec": {
                "containers": [
                    {
                        "name": "notebook",
                        "image": "pangeo/pangeo-notebook:2026.1",
                        "volumeMounts": [{"name": "home", "mountPath": str(Path.home())}],
                    }
                ],
                "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
            },
        },
    )
    code, checks = doctor_json("--backend", "kubernetes")
    assert code == 0, checks
    assert checks["namespace"].message == "default (the kubeconfig context 'fake')"
    assert checks["image"].message == "pangeo/pangeo-notebook:2026.1 ($JUPYTER_IMAGE_SPEC)"
    assert checks["home volume"].status == "ok"
    assert {c.status for name, c in checks.items() if name.startswith("permission")} == {"ok"}
    reviews = fake_apiserver.requests("POST", "selfsubjectaccessreviews")
    assert len(reviews) == sum(len(p.verbs) for p in PERMISSIONS)


def test_kubernetes_missing_verb_is_reported_with_its_fix(
    kube_session: None,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    fake_apiserver.deny("create", "batch", "jobs")
    fake_apiserver.deny("get", "", "pods")
    code, checks = doctor_json("--backend", "kubernetes")
    assert code == 1
    jobs = checks["permission jobs.batch"]
    assert jobs.status == "fail" and jobs.message == "may not create jobs.batch in namespace default"
    assert jobs.fix == "an admin must grant create on jobs.batch in namespace default"
    # Reading the notebook pod is optional: a warning, and the home volume is then unknown.
    assert checks["permission pods"].status == "warn"
    assert checks["home volume"].status == "warn" and "403" in checks["home volume"].message

    proc = kbatch("doctor", "--backend", "kubernetes", env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert "✗ permission jobs.batch: may not create jobs.batch in namespace default" in proc.stdout
    assert "fix: an admin must grant create on jobs.batch" in proc.stdout


def test_kubernetes_reports_the_home_claims_access_mode(
    kube_session: None,
    fake_apiserver: FakeApiServer,  # noqa: F811
) -> None:
    from fakes.kube.notebook import home_claim
    from fakes.kube.resources import PVC

    fake_apiserver.store.insert(PVC, home_claim("claim-alice", ("ReadWriteOnce",)))
    notebook = {
        "metadata": {"name": "jupyter-alice", "namespace": "default"},
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "notebook", "image": "pangeo/pangeo-notebook:2026.1",
                            "volumeMounts": [{"name": "home", "mountPath": str(Path.home())}]}],
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
        },
    }  # fmt: skip
    fake_apiserver.create("pods", "default", notebook)
    _, checks = doctor_json("--backend", "kubernetes")
    claim = checks[f"volume {Path.home()}"]
    assert claim.status == "ok", claim
    assert claim.message.startswith("claim-alice (ReadWriteOnce: only pods on the notebook's node can mount it)")
    assert "jobs run on the notebook's node node-a" in claim.message

    env = {**os.environ, "DASK_KBATCH__KUBERNETES__RWO_HOME": "without"}
    _, checks = doctor_json("--backend", "kubernetes", env=env)
    assert checks[f"volume {Path.home()}"].status == "warn"
    assert checks["home volume"].status == "warn"  # jobs do not mount it then
