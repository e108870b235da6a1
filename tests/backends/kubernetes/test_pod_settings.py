"""What a Kubernetes job takes from the notebook session it is submitted from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kbatch_dask import backends
from kbatch_dask.backends import Detected
from kbatch_dask.backends.kubernetes.claims import Claim, ClaimPlan, pin_to_node, plan_claims
from kbatch_dask.backends.kubernetes.manifests import PodSettings
from kbatch_dask.backends.kubernetes.pod_settings import (
    NotebookPod,
    detect,
    detect_image,
    detect_namespace,
    job_environment,
    notebook_claims,
    output_on_volume,
    read_notebook_pod,
    settings_from_pod,
)
from kbatch_dask.errors import BackendError, BadInput

# The shape of a zero-to-jupyterhub notebook pod.
NOTEBOOK_POD: dict[str, Any] = {
    "metadata": {"name": "jupyter-alice", "namespace": "hub"},
    "spec": {
        "containers": [
            {"name": "sidecar", "image": "busybox", "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
            {
                "name": "notebook",
                "image": "pangeo/ml-notebook:2026.1",
                "volumeMounts": [
                    {"name": "home", "mountPath": "/home/jovyan"},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                    {"name": "gateway-creds", "mountPath": "/etc/creds"},
                    {"name": "kube-api-access-x1y2z", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                ],
                "securityContext": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
            },
        ],
        "volumes": [
            {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "gateway-creds", "secret": {"secretName": "creds"}},
            {"name": "kube-api-access-x1y2z", "projected": {"sources": []}},
        ],
        "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
        "tolerations": [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "securityContext": {"fsGroup": 100},
        "imagePullSecrets": [{"name": "registry"}],
        "serviceAccountName": "notebook",
    },
}


def test_settings_copied_from_the_notebook_pod() -> None:
    assert settings_from_pod(NOTEBOOK_POD) == {
        "volumes": (
            {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ),
        "volume_mounts": ({"name": "home", "mountPath": "/home/jovyan"}, {"name": "dshm", "mountPath": "/dev/shm"}),
        "node_selector": {"hub.jupyter.org/node-purpose": "user"},
        "tolerations": ({"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user"},),
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
        "security_context": {"fsGroup": 100},
        "container_security_context": {"runAsUser": 1000, "allowPrivilegeEscalation": False},
        "image_pull_secrets": ({"name": "registry"},),
        "service_account": "notebook",
        "automount_token": None,
        "unshared_paths": ("/etc/creds",),  # the Secret volume stays the notebook's
        "init_containers": (),
    }


def _detect(environ: dict[str, str], pod: dict[str, Any] | None, **kw: Any) -> PodSettings:
    """As the backend detects: the image from the environment and the pod, then the rest."""
    notebook = NotebookPod(pod)
    values: dict[str, Any] = {
        "namespace": "hub",
        "image": detect_image(None, environ, None, notebook.image).value,
        "template": {},
        "workdir": "/home/jovyan/project",
        "pod": notebook,
    }
    values.update(kw)
    return detect(**values)


def test_the_notebook_pod_is_read_by_hostname() -> None:
    asked: list[tuple[str, str]] = []

    def read_pod(namespace: str, name: str) -> dict[str, Any]:
        asked.append((namespace, name))
        return NOTEBOOK_POD

    assert read_notebook_pod("hub", {"HOSTNAME": "jupyter-alice"}, read_pod) == NotebookPod(NOTEBOOK_POD)
    assert asked == [("hub", "jupyter-alice")]
    assert read_notebook_pod("hub", {}, read_pod) == NotebookPod(None, "no $HOSTNAME: not in a pod")

    def refused(namespace: str, name: str) -> dict[str, Any]:
        raise BackendError("403 Forbidden")

    assert read_notebook_pod("hub", {"HOSTNAME": "jupyter-alice"}, refused) == NotebookPod(None, "403 Forbidden")


def test_detect_in_a_notebook_pod() -> None:
    env = {"HOSTNAME": "jupyter-alice", "JUPYTER_IMAGE_SPEC": "pangeo/ml-notebook:2026.1"}
    settings = _detect(env, NOTEBOOK_POD)
    assert settings.image == "pangeo/ml-notebook:2026.1"
    assert settings.working_dir == "/home/jovyan/project"  # the submit dir is on the home volume
    assert [v["name"] for v in settings.volumes] == ["home", "dshm"]
    assert output_on_volume("/home/jovyan/kbatch-k3x9q.out", settings) == "/home/jovyan/kbatch-k3x9q.out"
    assert output_on_volume("/tmp/out.txt", settings) is None


def test_detect_without_a_readable_pod_uses_the_admin_template() -> None:
    template = {
        "volumes": [{"name": "home", "nfs": {"server": "nfs", "path": "/homes/alice"}}],
        "containers": [{"volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]}],
    }
    settings = _detect({"HOSTNAME": "jupyter-alice", "JUPYTER_IMAGE": "img:1"}, None, template=template)
    assert settings.image == "img:1"
    assert settings.volumes == () and settings.template == template
    assert settings.working_dir == "/home/jovyan/project"  # on the template's volume
    assert output_on_volume("/home/jovyan/x.out", settings) == "/home/jovyan/x.out"


def test_detect_off_any_volume_has_no_working_dir() -> None:
    settings = _detect({"HOSTNAME": "jupyter-alice"}, NOTEBOOK_POD, workdir="/tmp/elsewhere")
    assert settings.working_dir is None
    assert settings.image == "pangeo/ml-notebook:2026.1"  # the notebook container's, as a last resort


@pytest.mark.parametrize(
    ("option", "environ", "configured", "pod_image", "expected"),
    [
        ("cli:1", {"JUPYTER_IMAGE_SPEC": "spec:1", "JUPYTER_IMAGE": "img:1"}, "conf:1", "pod:1", "cli:1"),
        (None, {"JUPYTER_IMAGE_SPEC": "spec:1", "JUPYTER_IMAGE": "img:1"}, "conf:1", "pod:1", "spec:1"),
        (None, {"JUPYTER_IMAGE": "img:1"}, "conf:1", "pod:1", "img:1"),
        (None, {}, "conf:1", "pod:1", "conf:1"),
        (None, {}, None, "pod:1", "pod:1"),
    ],
)
def test_image_precedence(
    option: str | None, environ: dict[str, str], configured: str | None, pod_image: str | None, expected: str
) -> None:
    assert detect_image(option, environ, configured, pod_image).value == expected


def test_image_says_where_it_came_from() -> None:
    assert detect_image("cli:1", {}, None).source == "--image"
    assert detect_image(None, {"JUPYTER_IMAGE": "img:1"}, None).source == "$JUPYTER_IMAGE"
    assert detect_image(None, {}, "conf:1").source == "kbatch.kubernetes.image"
    assert detect_image(None, {}, None, "pod:1") == Detected("pod:1", "the notebook container's image")


def test_no_image_is_a_clear_error() -> None:
    with pytest.raises(BadInput, match="--image"):
        detect_image(None, {}, None, None)


def test_namespace_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "SERVICE_ACCOUNT_DIR", str(tmp_path))
    (tmp_path / "namespace").write_text("from-sa\n")
    assert detect_namespace("configured", "ctx") == Detected("configured", "kbatch.kubernetes.namespace")
    assert detect_namespace(None, "ctx") == Detected("from-sa", "the pod's service account")
    (tmp_path / "namespace").unlink()
    assert detect_namespace(None, "ctx", "kind") == Detected("ctx", "the kubeconfig context 'kind'")
    assert detect_namespace(None, None) == Detected("default", "no namespace configured")


def test_job_environment_keeps_gateway_settings_whatever_export_said() -> None:
    environ = {
        "DASK_GATEWAY__ADDRESS": "http://traefik-dask-gateway",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        "OTHER": "x",
    }
    exported = {"PATH": "/bin", "weird-name": "y"}
    assert job_environment(exported, environ) == {
        "PATH": "/bin",
        "DASK_GATEWAY__ADDRESS": "http://traefik-dask-gateway",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
    }


PIN = {"key": "metadata.name", "operator": "In", "values": ["node-a"]}
RWO = Claim("home", "claim-alice", "/home/jovyan", ("ReadWriteOnce",))
RWOP = Claim("home", "claim-alice", "/home/jovyan", ("ReadWriteOncePod",))
RWX = Claim("home", "claim-alice", "/home/jovyan", ("ReadWriteMany",))


def test_claims_are_read_for_their_access_modes() -> None:
    claims = {
        "claim-alice": {"spec": {"accessModes": ["ReadWriteOnce"]}, "status": {"accessModes": ["ReadWriteMany"]}},
    }

    def read(namespace: str, name: str) -> dict[str, Any]:
        assert namespace == "hub"
        if name not in claims:
            raise BackendError("403 Forbidden")
        return claims[name]

    (home,) = notebook_claims(NotebookPod(NOTEBOOK_POD), read)
    assert (home.volume, home.name, home.mount_path, home.access_modes) == (
        "home", "claim-alice", "/home/jovyan", ("ReadWriteMany",)  # the bound volume's modes win
    )  # fmt: skip
    del claims["claim-alice"]
    (unread,) = notebook_claims(NotebookPod(NOTEBOOK_POD), read)
    assert unread.access_modes is None and unread.sharing == "node"  # z2jh's default assumed
    assert "403 Forbidden" in unread.describe()
    assert notebook_claims(NotebookPod(None, "no $HOSTNAME"), read) == ()


def test_pinning_adds_the_node_to_every_required_term() -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    gpu = {"key": "gpu", "operator": "Exists"}
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [zone]}, {"matchExpressions": [gpu]}]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}],
        }
    }
    pinned = pin_to_node(affinity, "node-a")
    required = pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required["nodeSelectorTerms"] == [
        {"matchExpressions": [zone], "matchFields": [PIN]},
        {"matchExpressions": [gpu], "matchFields": [PIN]},
    ]
    preferred = pinned["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred == [{"weight": 1, "preference": {}}]
    original = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert "matchFields" not in original[0]  # not changed in place


@pytest.mark.parametrize(
    ("claim", "policy", "node", "dropped"),
    [
        (RWX, "pin", "node-a", False),
        (RWX, "without", "node-a", False),
        (RWO, "pin", "node-a", False),
        (RWO, "without", "node-a", True),
        (RWOP, "pin", "node-a", True),
        (RWO, "pin", None, False),
    ],
)
def test_claim_plans(claim: Claim, policy: str, node: str | None, dropped: bool) -> None:
    plan = plan_claims([claim], policy, node)
    pinned = claim.sharing == "node" and policy == "pin" and node is not None
    assert plan.node == ("node-a" if pinned else None)
    assert plan.dropped == ((claim,) if dropped else ())
    assert len(plan.warnings) == int(dropped)
    if dropped:
        assert "/home/jovyan" in plan.warnings[0] and "kbatch logs JOB" in plan.warnings[0]


def test_a_read_write_once_pod_claim_cannot_be_shared_even_on_the_node() -> None:
    (warning,) = plan_claims([RWOP], "pin", "node-a").warnings
    assert "no other pod can mount it while the notebook runs, not even on its node" in warning


def test_refuse_and_a_bad_policy_are_one_clear_line() -> None:
    with pytest.raises(BadInput, match=r"kbatch\.kubernetes\.rwo-home is 'refuse'"):
        plan_claims([RWO], "refuse", "node-a")
    assert plan_claims([RWX], "refuse", "node-a") == ClaimPlan()
    with pytest.raises(BadInput, match=r"rwo-home = 'pinned': expected one of pin, without, refuse"):
        plan_claims([], "pinned", None)


def test_the_plan_is_applied_to_what_is_copied() -> None:
    pod = {**NOTEBOOK_POD, "spec": {**NOTEBOOK_POD["spec"], "nodeName": "node-a"}}
    pinned = settings_from_pod(pod, plan=ClaimPlan(node="node-a"))
    assert "home" in [v["name"] for v in pinned["volumes"]]
    terms = pinned["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [PIN]}]
    without = settings_from_pod(pod, plan=ClaimPlan(dropped=(RWO,)))
    assert "home" not in [v["name"] for v in without["volumes"]]
    assert "home" not in [m["name"] for m in without["volume_mounts"]]
    assert without["affinity"] == NOTEBOOK_POD["spec"]["affinity"]


# IRSA as the EKS pod-identity webhook leaves a notebook pod: a service account
# bound to a role, its projected token, and the variables pointing at it; plus a
# z2jh `singleuser.extraFiles` Secret volume with a key file.
IRSA_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
IRSA_POD: dict[str, Any] = {
    "metadata": {"name": "jupyter-alice", "namespace": "hub"},
    "spec": {
        "serviceAccountName": "analyst",
        "automountServiceAccountToken": True,
        "containers": [
            {
                "name": "notebook",
                "image": "pangeo/ml-notebook:2026.1",
                "volumeMounts": [
                    {"name": "home", "mountPath": "/home/jovyan"},
                    {"name": "aws-iam-token", "mountPath": IRSA_TOKEN_DIR, "readOnly": True},
                    {"name": "files", "mountPath": "/etc/gcp"},
                    {"name": "kube-api-access-x1y2z", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                ],
            }
        ],
        "volumes": [
            {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
            {
                "name": "aws-iam-token",
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": "sts.amazonaws.com",
                                "expirationSeconds": 86400,
                                "path": "token",
                            }
                        }
                    ]
                },
            },
            {"name": "files", "secret": {"secretName": "singleuser", "items": [{"key": "k", "path": "key.json"}]}},
            {
                "name": "kube-api-access-x1y2z",
                "projected": {
                    "sources": [{"serviceAccountToken": {"path": "token"}}, {"configMap": {"name": "kube-root-ca.crt"}}]
                },
            },
        ],
    },
}
IRSA_ENV = {
    "AWS_ROLE_ARN": "arn:aws:iam::111122223333:role/analyst",
    "AWS_WEB_IDENTITY_TOKEN_FILE": f"{IRSA_TOKEN_DIR}/token",
    "AWS_REGION": "us-west-2",
    "GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcp/key.json",
    "DATA": "/home/jovyan/data",
}


def test_a_job_runs_as_the_notebooks_service_account_with_its_identity_token() -> None:
    settings = _detect({}, IRSA_POD)
    assert (settings.service_account, settings.automount_token) == ("analyst", True)
    assert [v["name"] for v in settings.volumes] == ["home", "aws-iam-token"]  # never the API token's
    assert {"name": "aws-iam-token", "mountPath": IRSA_TOKEN_DIR, "readOnly": True} in settings.volume_mounts
    env = job_environment(IRSA_ENV, {}, settings.unshared_paths)
    # The identity goes with the token; the extraFiles key file stays behind, and so does its variable.
    assert env == {k: v for k, v in IRSA_ENV.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}


def test_a_configured_service_account_gets_neither_the_token_nor_the_variables_pointing_at_it() -> None:
    settings = _detect({}, IRSA_POD, service_account="kbatch-dask-driver")
    assert [v["name"] for v in settings.volumes] == ["home"]
    env = job_environment(IRSA_ENV, {}, settings.unshared_paths)
    assert env == {"AWS_REGION": "us-west-2", "DATA": "/home/jovyan/data"}


def test_without_the_notebook_pod_no_variable_points_at_its_projected_credentials() -> None:
    settings = _detect({"JUPYTER_IMAGE_SPEC": "img"}, None)
    assert settings.service_account is None and settings.unshared_paths == ("/var/run/secrets",)
    env = job_environment(IRSA_ENV, {}, settings.unshared_paths)
    assert "AWS_ROLE_ARN" not in env and "AWS_WEB_IDENTITY_TOKEN_FILE" not in env
    assert env["GOOGLE_APPLICATION_CREDENTIALS"] == "/etc/gcp/key.json"  # unknown to be missing: kept


# z2jh's init container guarding the cloud metadata server, and one of singleuser.initContainers.
BLOCK_METADATA = {
    "name": "block-cloud-metadata",
    "image": "quay.io/jupyterhub/k8s-network-tools:4.2.0",
    "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination", "169.254.169.254",
                "--destination-port", "80", "--jump", "DROP"],
    "securityContext": {"runAsUser": 0, "privileged": False, "capabilities": {"add": ["NET_ADMIN"]}},
}  # fmt: skip
PULL_REPO = {"name": "nbgitpuller", "image": "puller", "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]}


def test_only_the_cloud_metadata_guard_of_the_notebooks_init_containers_is_copied() -> None:
    pod = {**NOTEBOOK_POD, "spec": {**NOTEBOOK_POD["spec"], "initContainers": [BLOCK_METADATA, PULL_REPO]}}
    assert settings_from_pod(pod)["init_containers"] == (BLOCK_METADATA,)
