"""``kbatch doctor`` finds each value through the code submitting uses: change
what that code sees (or the code itself) and both answers change together."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dask.config
import pytest
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fixtures import fake_apiserver, kube_env  # noqa: F401

from kbatch_dask import backends
from kbatch_dask.backends import Detected, get_backend
from kbatch_dask.backends.kubernetes import pod_settings
from kbatch_dask.backends.kubernetes.backend import KubernetesBackend
from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.doctor.probes import diagnose
from kbatch_dask.doctor.report import Check
from kbatch_dask.gateway import GatewaySettings, health
from kbatch_dask.spec import JobSpec, current_user


def doctor() -> dict[str, Check]:
    return {c.name: c for c in diagnose()}


def kube_doctor() -> dict[str, Check]:
    return {c.name: c for c in diagnose("kubernetes")}


@pytest.fixture
def kube_session(
    home: Path,
    kube_env: Path,  # noqa: F811
    fake_apiserver: FakeApiServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This process pointed at the fake API server, with an image for jobs."""
    from kubernetes.config import kube_config

    # The client reads $KUBECONFIG once, when first imported (perhaps by an earlier test).
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kube_env))
    monkeypatch.setenv("JUPYTER_IMAGE_SPEC", "pangeo/pangeo-notebook:2026.1")


def submitted(tmp_path: Path) -> dict[str, Any]:
    """The Job a Kubernetes submission from here would create."""
    script = tmp_path / "train.py"
    script.write_text("print('train')\n")
    spec = JobSpec(script=str(script), name="train", user=current_user(), workdir=str(tmp_path), output="%j.out")
    return KubernetesBackend().manifests(spec, {}, "k3x9q").job


def test_being_in_a_pod_moves_submit_and_doctor_to_kubernetes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert isinstance(get_backend(), LocalBackend)
    assert doctor()["backend"].message == (
        "local (kbatch.backend is auto, and this is not a Kubernetes pod with a service account)"
    )

    service_account = tmp_path / "serviceaccount"
    service_account.mkdir()
    monkeypatch.setattr(backends, "SERVICE_ACCOUNT_DIR", str(service_account))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    from kubernetes.config import kube_config

    # No kubeconfig: doctor stops at "no Kubernetes credentials" (the client read $KUBECONFIG on import).
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "no-kubeconfig"))
    assert isinstance(get_backend(), KubernetesBackend)
    assert doctor()["backend"].message == (
        "kubernetes (kbatch.backend is auto, and this is a Kubernetes pod with a service account)"
    )


def test_the_state_directory_is_the_local_backends(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert LocalBackend().home == str(home)
    assert doctor()["state directory"].message == f"{home} ($KBATCH_DASK_HOME) is writable"

    monkeypatch.delenv("KBATCH_DASK_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert LocalBackend().home == str(tmp_path / "data" / "kbatch-dask")
    assert doctor()["state directory"].message == f"{tmp_path / 'data' / 'kbatch-dask'} ($XDG_DATA_HOME) is writable"


def test_the_gateway_is_the_one_the_backend_gives_jobs(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    down = GatewaySettings("http://127.0.0.1:9", None, "http://127.0.0.1:9", "basic")
    monkeypatch.setattr(LocalBackend, "gateway", lambda self, start=False: down)
    gateway = doctor()["gateway"]
    assert gateway.status == "fail"
    assert gateway.message == f"http://127.0.0.1:9 (gateway.address) does not answer: {health(down.address, 5)}"


def test_the_namespace_file_moves_submit_and_doctor_together(
    kube_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service_account = tmp_path / "serviceaccount"
    service_account.mkdir()
    monkeypatch.setattr(backends, "SERVICE_ACCOUNT_DIR", str(service_account))
    assert submitted(tmp_path)["metadata"]["namespace"] == "default"
    assert kube_doctor()["namespace"].message == "default (the kubeconfig context 'fake')"

    (service_account / "namespace").write_text("jhub\n")
    assert submitted(tmp_path)["metadata"]["namespace"] == "jhub"
    assert kube_doctor()["namespace"].message == "jhub (the pod's service account)"


def test_changing_image_detection_changes_submit_and_doctor(
    kube_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert submitted(tmp_path)["spec"]["template"]["spec"]["containers"][0]["image"] == "pangeo/pangeo-notebook:2026.1"
    assert kube_doctor()["image"].message == "pangeo/pangeo-notebook:2026.1 ($JUPYTER_IMAGE_SPEC)"

    monkeypatch.setattr(pod_settings, "detect_image", lambda *args: Detected("site/image:2", "a site rule"))
    assert submitted(tmp_path)["spec"]["template"]["spec"]["containers"][0]["image"] == "site/image:2"
    assert kube_doctor()["image"].message == "site/image:2 (a site rule)"


def test_the_home_volume_is_one_jobs_mount(
    kube_session: None,
    tmp_path: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOSTNAME", "jupyter-alice")
    assert "workingDir" not in submitted(tmp_path)["spec"]["template"]["spec"]["containers"][0]
    volume = kube_doctor()["home volume"]
    assert volume.status == "warn" and "jupyter-alice" in volume.message  # the pod is not there to read

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
                        "volumeMounts": [{"name": "home", "mountPath": str(tmp_path)}],
                    }
                ],
                "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
            },
        },
    )
    assert submitted(tmp_path)["spec"]["template"]["spec"]["containers"][0]["workingDir"] == str(tmp_path)
    assert kube_doctor()["home volume"].message == f"home at {tmp_path} is mounted in jobs"


def test_the_cloud_identity_jobs_get_is_what_doctor_reports(
    kube_session: None,
    tmp_path: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_dir = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
    monkeypatch.setenv("HOSTNAME", "jupyter-alice")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/analyst")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", f"{token_dir}/token")
    token = {"serviceAccountToken": {"audience": "sts.amazonaws.com", "path": "token"}}
    fake_apiserver.create(
        "pods",
        "default",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "jupyter-alice"},
            "spec": {
                "serviceAccountName": "analyst",
                "containers": [
                    {
                        "name": "notebook",
                        "image": "pangeo/pangeo-notebook:2026.1",
                        "volumeMounts": [{"name": "aws-iam-token", "mountPath": token_dir}],
                    }
                ],
                "volumes": [{"name": "aws-iam-token", "projected": {"sources": [token]}}],
            },
        },
    )

    def job_and_env() -> tuple[dict[str, Any], set[str]]:
        script = tmp_path / "train.py"
        script.write_text("print('train')\n")
        spec = JobSpec(script=str(script), name="train", user=current_user(), workdir=str(tmp_path), output="%j.out")
        exported = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        manifests = KubernetesBackend().manifests(spec, exported, "k3x9q")
        return manifests.job["spec"]["template"]["spec"], set(manifests.secret["data"])

    pod_spec, env = job_and_env()
    assert pod_spec["serviceAccountName"] == "analyst" and {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"} <= env
    assert "aws-iam-token" in [v["name"] for v in pod_spec["volumes"]]
    identity = kube_doctor()["cloud identity"]
    assert (identity.status, identity.message) == (
        "ok", "jobs run as the notebook's service account analyst, with its cloud identity",
    )  # fmt: skip

    with dask.config.set({"kbatch.kubernetes.service-account": "kbatch-dask-driver"}):
        pod_spec, env = job_and_env()
        identity = kube_doctor()["cloud identity"]
    assert pod_spec["serviceAccountName"] == "kbatch-dask-driver" and not env & {
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    }
    assert "aws-iam-token" not in [v["name"] for v in pod_spec["volumes"]]
    assert identity.status == "warn" and "not the notebook's analyst" in identity.message
    assert "not copied: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN" in identity.message
