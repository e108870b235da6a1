"""The Kubernetes objects of a job: golden dicts, strict schema validation for
every Kubernetes version we support, quantities, names and size limits."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes.utils import parse_quantity

from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.slugs import is_dns_label, safe_slug
from kbatch_dask.errors import BadInput
from kbatch_dask.procs import python_m
from kbatch_dask.spec import JobSpec, Workers

from .versions import K8S_VERSIONS

kubernetes_validate = pytest.importorskip("kubernetes_validate")

SUBMITTED = "2026-11-21T21:40:00+00:00"


def make_spec(**changes: Any) -> JobSpec:
    values: dict[str, Any] = {
        "script": "/home/jovyan/train.py",
        "name": "train",
        "user": "jovyan",
        "workdir": "/home/jovyan",
        "output": "~/kbatch-%j.out",
        "args": ("--epochs", "3"),
        "workers": Workers(2, 2),
        "env": (("SECRET_TOKEN", "s3cr3t"),),
    }
    values.update(changes)
    return JobSpec(**values)


POD = m.PodSettings(
    namespace="hub",
    image="pangeo/ml-notebook:2026.1",
    volumes=({"name": "home", "persistentVolumeClaim": {"claimName": "claim-jovyan"}},),
    volume_mounts=({"name": "home", "mountPath": "/home/jovyan"},),
    node_selector={"hub.jupyter.org/node-purpose": "user"},
    tolerations=({"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"},),
    security_context={"fsGroup": 100},
    container_security_context={"runAsUser": 1000},
    working_dir="/home/jovyan",
)
OPTIONS = m.JobOptions(ttl_seconds=7 * 86400, termination_grace=90, cpus=1, memory=2 * 2**30)


def build(spec: JobSpec | None = None, pod: m.PodSettings = POD, **kw: Any) -> m.Manifests:
    spec = spec or make_spec()
    kw.setdefault("env", {"PATH": "/usr/bin", "SECRET_TOKEN": "s3cr3t"})
    kw.setdefault("script", "print('hi')\n")
    kw.setdefault("output", "/home/jovyan/kbatch-k3x9q.out")
    return m.build_manifests(spec, "k3x9q", pod, OPTIONS, submitted=SUBMITTED, **kw)


GOLDEN_JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "kbatch-jovyan-k3x9q",
        "namespace": "hub",
        "labels": {
            "app.kubernetes.io/managed-by": "kbatch-dask",
            "kbatch-dask.io/user": "jovyan",
            "kbatch-dask.io/job-id": "k3x9q",
        },
        "annotations": {
            "kbatch-dask.io/name": "train",
            "kbatch-dask.io/user": "jovyan",
            "kbatch-dask.io/script": "/home/jovyan/train.py",
            "kbatch-dask.io/args": '["--epochs", "3"]',
            "kbatch-dask.io/submitted": SUBMITTED,
            "kbatch-dask.io/workers": "2",
            "kbatch-dask.io/output": "/home/jovyan/kbatch-k3x9q.out",
            "kbatch-dask.io/workdir": "/home/jovyan",
        },
    },
    "spec": {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": 604800,
        "podFailurePolicy": {
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
        },
        "podReplacementPolicy": "Failed",
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/managed-by": "kbatch-dask",
                    "kbatch-dask.io/user": "jovyan",
                    "kbatch-dask.io/job-id": "k3x9q",
                    "hub.jupyter.org/network-access-hub": "true",
                },
                "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
            },
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 90,
                "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
                "tolerations": [
                    {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
                ],
                "securityContext": {"fsGroup": 100},
                "volumes": [
                    {"name": "home", "persistentVolumeClaim": {"claimName": "claim-jovyan"}},
                    {"name": "kbatch-dask-job", "configMap": {"name": "kbatch-jovyan-k3x9q"}},
                ],
                "containers": [
                    {
                        "name": "driver",
                        "image": "pangeo/ml-notebook:2026.1",
                        "command": python_m("python", "kbatch_dask.driver"),
                        "args": ["--kubernetes", "/etc/kbatch-dask/job", "--output", "/home/jovyan/kbatch-k3x9q.out"],
                        "workingDir": "/home/jovyan",
                        "envFrom": [{"secretRef": {"name": "kbatch-jovyan-k3x9q"}}],
                        "env": [
                            {"name": "KBATCH_DASK_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {
                                "name": "KBATCH_DASK_NAMESPACE",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                            },
                        ],
                        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
                        "volumeMounts": [
                            {"name": "home", "mountPath": "/home/jovyan"},
                            {"name": "kbatch-dask-job", "mountPath": "/etc/kbatch-dask/job", "readOnly": True},
                        ],
                        "securityContext": {"runAsUser": 1000},
                    }
                ],
            },
        },
    },
}


def test_job_golden() -> None:
    assert build().job == GOLDEN_JOB


def test_secret_golden_holds_every_environment_value() -> None:
    secret = build().secret
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "kbatch-jovyan-k3x9q", "namespace": "hub", "labels": GOLDEN_JOB["metadata"]["labels"]},
        "type": "Opaque",
        "data": {"PATH": base64.b64encode(b"/usr/bin").decode(), "SECRET_TOKEN": base64.b64encode(b"s3cr3t").decode()},
    }


def test_config_map_holds_spec_job_and_script_but_no_env_values() -> None:
    cm = build().config_map
    assert cm["metadata"] == {
        "name": "kbatch-jovyan-k3x9q",
        "namespace": "hub",
        "labels": GOLDEN_JOB["metadata"]["labels"],
    }
    assert set(cm["data"]) == {"spec.json", "job.json", "train.py"}
    assert cm["data"]["train.py"] == "print('hi')\n"
    assert json.loads(cm["data"]["job.json"]) == {
        "id": "k3x9q",
        "job_name": "kbatch-jovyan-k3x9q",
        "script": "train.py",
    }
    spec = JobSpec.from_dict(json.loads(cm["data"]["spec.json"]))
    assert spec.env == () and spec.args == ("--epochs", "3") and str(spec.workers) == "2"
    assert "s3cr3t" not in json.dumps(cm)


def test_no_environment_value_appears_in_the_job() -> None:
    job = json.dumps(build().job)
    assert "s3cr3t" not in job and "/usr/bin" not in job
    container = build().job["spec"]["template"]["spec"]["containers"][0]
    assert all("value" not in e for e in container["env"])


def test_options_that_change_the_job() -> None:
    spec = make_spec(
        time_limit=3600, retries=2, gpus=1, cpus=0.5, memory=1_500_000_000, comment="try 3", error="%x.err"
    )
    job = build(spec, error="/home/jovyan/train.err", suspend=True).job
    assert job["spec"]["suspend"] is True
    # --time is the driver's, per attempt; the Job's deadline a backstop: (time + margin) x attempts.
    assert job["spec"]["activeDeadlineSeconds"] == (3600 + OPTIONS.start_margin) * 3
    assert job["spec"]["backoffLimit"] == 2
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1500M"},
        "limits": {"memory": "1500M", "nvidia.com/gpu": "1"},
    }
    assert container["args"][-2:] == ["--error", "/home/jovyan/train.err"]
    assert job["metadata"]["annotations"]["kbatch-dask.io/comment"] == "try 3"
    assert job["metadata"]["annotations"]["kbatch-dask.io/time-limit"] == "3600"


def test_output_off_volume_is_not_passed_and_no_workdir_without_volume() -> None:
    pod = m.PodSettings(namespace="default", image="img")
    job = build(pod=pod, output=None).job
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--kubernetes", "/etc/kbatch-dask/job"]
    assert "workingDir" not in container
    assert "kbatch-dask.io/output" not in job["metadata"]["annotations"]


def test_service_account_is_used_when_configured() -> None:
    options = m.JobOptions(service_account="kbatch-dask-driver")
    job = m.build_job(make_spec(), "k3x9q", POD, options, submitted=SUBMITTED)
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "kbatch-dask-driver"
    assert pod_spec["automountServiceAccountToken"] is True


def test_the_notebooks_service_account_unless_one_is_configured() -> None:
    pod = m.PodSettings(namespace="hub", image="img", service_account="analyst", automount_token=False)
    notebooks = m.build_job(make_spec(), "k3x9q", pod, m.JobOptions(), submitted=SUBMITTED)["spec"]["template"]["spec"]
    assert (notebooks["serviceAccountName"], notebooks["automountServiceAccountToken"]) == ("analyst", False)
    options = m.JobOptions(service_account="kbatch-dask-driver")
    configured = m.build_job(make_spec(), "k3x9q", pod, options, submitted=SUBMITTED)["spec"]["template"]["spec"]
    assert (configured["serviceAccountName"], configured["automountServiceAccountToken"]) == (
        "kbatch-dask-driver",
        True,
    )


def test_a_kueue_queue_labels_the_job_created_suspended_for_kueue_to_resume() -> None:
    options = m.JobOptions(queue_name="team-a")
    job = m.build_job(make_spec(), "k3x9q", POD, options, submitted=SUBMITTED)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]


def test_admin_template_is_merged_over_the_pod_spec() -> None:
    template = {
        "nodeSelector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists"}],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [{"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
        "priorityClassName": "batch-low",
    }
    pod = m.PodSettings(namespace="hub", image="img", node_selector={"a": "b"}, template=template)
    pod_spec = build(pod=pod).job["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"a": "b", "pool": "batch"}
    assert pod_spec["tolerations"] == [{"key": "batch", "operator": "Exists"}]
    assert [v["name"] for v in pod_spec["volumes"]] == ["kbatch-dask-job", "scratch"]
    assert pod_spec["priorityClassName"] == "batch-low"
    (container,) = pod_spec["containers"]
    assert [v["name"] for v in container["volumeMounts"]] == ["kbatch-dask-job", "scratch"]
    assert container["image"] == "img"


def test_owned_by_points_at_the_created_job() -> None:
    job = {**GOLDEN_JOB, "metadata": {**GOLDEN_JOB["metadata"], "uid": "1234-abcd"}}
    owned = m.owned_by(build().secret, job)
    assert owned["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "kbatch-jovyan-k3x9q",
            "uid": "1234-abcd",
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]


def test_a_function_job_ships_its_pickle_as_binary_data_and_says_where_its_result_goes() -> None:
    spec = make_spec(script="/tmp/kbatch-payload-x/train.kbatch-function.pkl", args=())
    manifests = build(spec, script=b"\x80\x05pickle\x00", result="/home/jovyan/.kbatch-k3x9q.result")
    cm = manifests.config_map
    assert cm["binaryData"] == {"train.kbatch-function.pkl": base64.b64encode(b"\x80\x05pickle\x00").decode()}
    assert "train.kbatch-function.pkl" not in cm["data"]
    container = manifests.job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--result", "/home/jovyan/.kbatch-k3x9q.result"]
    assert manifests.job["metadata"]["annotations"]["kbatch-dask.io/result"] == "/home/jovyan/.kbatch-k3x9q.result"
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(cm, version, strict=True)
    with pytest.raises(BadInput, match=r"function and its arguments pickle to 2\.0 MiB"):
        build(spec, script=b"x" * (2 * 2**20))


def test_a_script_over_one_mib_is_refused_with_what_to_do() -> None:
    with pytest.raises(BadInput, match=r"2\.0 MiB.*home volume"):
        build(script="x" * (2 * 2**20))


def test_an_environment_over_one_mib_is_refused() -> None:
    with pytest.raises(BadInput, match="--export"):
        build(env={"BIG": "x" * (2**20 + 1)})


@pytest.mark.parametrize(
    "user",
    ["jovyan", "Alice@Example.com", "bob.smith", "ünïcode-ñame", "a" * 200, "-x-", "x--y", "123", "UPPER"],
)
def test_names_and_labels_are_dns_safe_for_any_user(user: str) -> None:
    manifests = build(make_spec(user=user))
    name = manifests.job["metadata"]["name"]
    assert is_dns_label(name)
    assert is_dns_label(manifests.job["metadata"]["labels"]["kbatch-dask.io/user"])
    for version in K8S_VERSIONS[-1:]:
        for obj in manifests.all():
            kubernetes_validate.validate(obj, version, strict=True)


def test_slugs_never_collide() -> None:
    users = ["alice", "Alice", "alice-", "alice--x", "alice---7c1f3ea2", "ALICE", "alicé", "alice.x", "alice_x"]
    slugs = [safe_slug(u) for u in users]
    assert len(set(slugs)) == len(users)


def _variants() -> dict[str, m.Manifests]:
    full = make_spec(time_limit=60, retries=3, gpus=2, cpus=2.5, memory=3 * 2**30, comment="c", error="e")
    template = {
        "containers": [{"volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
        "volumes": [{"name": "s", "emptyDir": {}}],
    }
    return {
        "default": build(),
        "full": build(full, error="/home/jovyan/e", suspend=True),
        "bare pod": build(pod=m.PodSettings(namespace="default", image="img"), output=None),
        "template": build(pod=m.PodSettings(namespace="default", image="img", template=template)),
        "no cluster": build(make_spec(workers=None, args=())),
        "cloud identity": build(pod=IDENTITY_POD),
        "kueue": m.Manifests(
            m.build_job(make_spec(), "k3x9q", POD, m.JobOptions(queue_name="team-a"), submitted=SUBMITTED),
            *build().all()[1:],
        ),
    }


# As copied from an IRSA notebook pod with z2jh's cloud-metadata guard.
IDENTITY_POD = m.PodSettings(
    namespace="hub",
    image="img",
    service_account="analyst",
    automount_token=True,
    volumes=({"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},),
    volume_mounts=({"name": "aws-iam-token", "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"},),
    init_containers=(
        {
            "name": "block-cloud-metadata",
            "image": "quay.io/jupyterhub/k8s-network-tools:4.2.0",
            "command": ["iptables", "--append", "OUTPUT", "--destination", "169.254.169.254", "--jump", "DROP"],
            "securityContext": {"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}},
        },
    ),
)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", list(_variants()))
def test_manifests_validate_strictly(version: str, variant: str) -> None:
    for obj in _variants()[variant].all():
        kubernetes_validate.validate(obj, version, strict=True)
    owned = m.owned_by(_variants()[variant].secret, {"metadata": {"name": "x", "uid": "u"}})
    kubernetes_validate.validate(owned, version, strict=True)


@pytest.mark.parametrize("variant", list(_variants()))
def test_quantities_parse(variant: str) -> None:
    container = _variants()[variant].job["spec"]["template"]["spec"]["containers"][0]
    for kind in ("requests", "limits"):
        for resource, value in container.get("resources", {}).get(kind, {}).items():
            assert isinstance(value, str)
            assert parse_quantity(value) > 0, (resource, value)


@pytest.mark.parametrize("n", [1, 999, 1000, 1024, 1536 * 2**20, 4 * 2**30, 1_500_000_000, 12_345_678])
def test_memory_quantity_is_exact(n: int) -> None:
    assert parse_quantity(m.memory_quantity(n)) == n


@pytest.mark.parametrize("cpus", [0.1, 0.25, 0.5, 1, 1.5, 2, 16, 0.001])
def test_cpu_quantity_is_exact(cpus: float) -> None:
    assert float(parse_quantity(m.cpu_quantity(cpus))) == pytest.approx(cpus)
