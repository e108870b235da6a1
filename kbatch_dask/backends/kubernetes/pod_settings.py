"""What a Kubernetes job takes from the notebook session it is submitted from.

Inside a JupyterHub pod the user should not have to spell out their image,
namespace, home volume or scheduling constraints: a job's pod looks like the
notebook pod it came from.

- **namespace**: config ``kbatch.kubernetes.namespace``, else the service
  account's namespace file, else the kubeconfig context's, else ``default``;
- **image**: ``--image``, else ``$JUPYTER_IMAGE_SPEC``, else ``$JUPYTER_IMAGE``,
  else config ``kbatch.kubernetes.image``, else the notebook container's image,
  else a :class:`BadInput` saying how to choose one;
- **volumes and their mounts, node selector, affinity, tolerations, security
  contexts, image pull secrets**: copied from the notebook pod's own spec
  (read by its name, ``$HOSTNAME``) when it can be read; an admin's pod-spec
  fragment (``kbatch.kubernetes.pod-template``) is merged over them, and is
  all there is when the pod cannot be read;
- **cloud identity**: IRSA and GKE / Azure Workload Identity bind it to the
  pod's service account, so the job runs as the notebook's service account
  (unless ``kbatch.kubernetes.service-account`` names another) and gets its
  projected service-account-token volumes (IRSA's ``aws-iam-token``), which
  are bound to that account; Secret and downward-API volumes (z2jh's
  ``singleuser.extraFiles``) are not copied;
- **environment**: no variable whose value is a path on a volume of the
  notebook the job's pod lacks (``AWS_WEB_IDENTITY_TOKEN_FILE`` without its
  token, ``AWS_ROLE_ARN`` with it, a key file of ``extraFiles``);
- **init containers**: z2jh's ``block-cloud-metadata`` only (it keeps user
  code off the cloud metadata server; other init containers may need the
  notebook's volumes or do the notebook's setup, and are an admin's to add
  through the pod template);
- **working directory**: the submit directory when it lies on a copied volume;
- **claims that cannot follow the job to any node** (a home volume that is
  ``ReadWriteOnce``, z2jh's default, or ``ReadWriteOncePod``): config
  ``kbatch.kubernetes.rwo-home`` says whether the job is pinned to the
  notebook's node (``pin``), runs without them (``without``), or is not
  submitted (``refuse``); see :mod:`.claims`.

:func:`read_notebook_pod` takes the one I/O it needs (reading the pod) as a
function, so this module never imports ``kubernetes``; the rest is pure. The
``detect_*`` functions say where each value came from, which ``kbatch doctor``
shows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kbatch_dask import backends
from kbatch_dask.backends import Detected
from kbatch_dask.backends.kubernetes.claims import Claim, ClaimPlan, pin_to_node, plan_claims
from kbatch_dask.backends.kubernetes.manifests import PodSettings
from kbatch_dask.errors import BadInput, KbatchError
from kbatch_dask.spec.environment import is_denied

NOTEBOOK_CONTAINER = "notebook"  # what zero-to-jupyterhub calls it
# Volumes never copied: the pod's own API credentials and secrets (a job gets
# its credentials through its own Secret), and data about the notebook pod.
SKIPPED_VOLUME_TYPES = ("projected", "secret", "downwardAPI")
SKIPPED_VOLUME_PREFIXES = ("kube-api-access-", "default-token-")
# Where the notebook pod's own credentials are projected: when the pod cannot be
# read, a variable pointing there points at nothing in the job's pod.
POD_SECRETS_DIR = "/var/run/secrets"
# Variables meaningless without the token file their key names (dropped with it).
COMPANIONS = {
    "AWS_WEB_IDENTITY_TOKEN_FILE": ("AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME"),
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": ("AWS_CONTAINER_CREDENTIALS_FULL_URI",),
    "AZURE_FEDERATED_TOKEN_FILE": ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_AUTHORITY_HOST"),
}
# The notebook's init containers a job's pod gets too: z2jh's guard of the cloud
# metadata server (root and NET_ADMIN, allowed in the namespace since the notebook runs it).
COPIED_INIT_CONTAINERS = ("block-cloud-metadata",)
# Environment variable names every container runtime accepts.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Reads a pod (or a claim) by namespace and name; raises KbatchError when it cannot.
ReadPod = Callable[[str, str], "Mapping[str, Any]"]
ReadClaim = Callable[[str, str], "Mapping[str, Any]"]


@dataclass(frozen=True)
class NotebookPod:
    """The notebook pod this session runs in; ``pod`` is None when it could not
    be read, and ``why_not`` says why."""

    pod: Mapping[str, Any] | None
    why_not: str | None = None

    @property
    def image(self) -> str | None:
        container = notebook_container(self.pod) if self.pod else None
        return container.get("image") if container else None


def detect_namespace(
    configured: str | None, context_namespace: str | None, context_name: str | None = None
) -> Detected[str]:
    """The namespace jobs go to, and where that came from.

    >>> detect_namespace("jobs", None)
    Detected(value='jobs', source='kbatch.kubernetes.namespace')
    """
    if configured:
        return Detected(configured, "kbatch.kubernetes.namespace")
    try:
        with open(os.path.join(backends.SERVICE_ACCOUNT_DIR, "namespace")) as f:
            found = f.read().strip()
        if found:
            return Detected(found, "the pod's service account")
    except OSError:
        pass
    if context_namespace:
        context = f"the kubeconfig context {context_name!r}" if context_name else "the kubeconfig context"
        return Detected(context_namespace, context)
    return Detected("default", "no namespace configured")


def detect_image(
    option: str | None, environ: Mapping[str, str], configured: str | None, pod_image: str | None = None
) -> Detected[str]:
    """The job's image, and where that came from; BadInput when there is no way to tell.

    >>> detect_image(None, {"JUPYTER_IMAGE_SPEC": "pangeo/ml:2026.1"}, None)
    Detected(value='pangeo/ml:2026.1', source='$JUPYTER_IMAGE_SPEC')
    """
    for candidate, source in (
        (option, "--image"),
        (environ.get("JUPYTER_IMAGE_SPEC"), "$JUPYTER_IMAGE_SPEC"),
        (environ.get("JUPYTER_IMAGE"), "$JUPYTER_IMAGE"),
        (configured, "kbatch.kubernetes.image"),
        (pod_image, "the notebook container's image"),
    ):
        if candidate:
            return Detected(candidate, source)
    raise BadInput(
        "no container image for the job: pass --image IMAGE, or set JUPYTER_IMAGE_SPEC, "
        "or ask an admin to set kbatch.kubernetes.image"
    )


def notebook_container(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's notebook container: the one named ``notebook``, else the first."""
    containers = (pod.get("spec") or {}).get("containers") or []
    for container in containers:
        if container.get("name") == NOTEBOOK_CONTAINER:
            return dict(container)
    return dict(containers[0]) if containers else None


def is_identity_token(volume: Mapping[str, Any]) -> bool:
    """A projected volume of service-account tokens only (IRSA's ``aws-iam-token``,
    Azure's ``azure-identity-token``): the pod's cloud identity, not its API access."""
    sources = (volume.get("projected") or {}).get("sources") or []
    return bool(sources) and all(set(s) == {"serviceAccountToken"} for s in sources)


def _copied_volume(volume: Mapping[str, Any], same_account: bool) -> bool:
    name = str(volume.get("name", ""))
    if name.startswith(SKIPPED_VOLUME_PREFIXES):
        return False
    if is_identity_token(volume):
        return same_account  # a token of the notebook's account, for a pod running as it
    return not any(t in volume for t in SKIPPED_VOLUME_TYPES)


def mount_for(path: str, mounts: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The first of the volume ``mounts`` that ``path`` lies on, None if none.

    >>> mount_for("/home/jovyan/work", [{"name": "home", "mountPath": "/home/jovyan"}])
    {'name': 'home', 'mountPath': '/home/jovyan'}
    """
    for mount in mounts:
        root = str(mount.get("mountPath", "")).rstrip("/")
        if root and (path == root or path.startswith(root + "/")):
            return mount
    return None


def settings_from_pod(
    pod: Mapping[str, Any] | None, service_account: str | None = None, plan: ClaimPlan | None = None
) -> dict[str, Any]:
    """The pieces of a notebook pod a job copies, as :class:`PodSettings` fields;
    ``service_account``: the one configured for jobs, if any; ``plan``: what to do
    about its claims (those left out, the job pinned to the notebook's node).

    Only volumes the notebook container mounts are copied, never its API
    token, secrets or downward-API volumes; its identity tokens only when the
    job runs as the notebook's service account.
    """
    if not pod:
        return {"unshared_paths": (POD_SECRETS_DIR,)}
    plan = plan or ClaimPlan()
    spec = pod.get("spec") or {}
    container = notebook_container(pod) or {}
    account = spec.get("serviceAccountName") or None
    same_account = service_account is None or service_account == account
    every = {v["name"]: v for v in spec.get("volumes") or []}
    volumes = {name: v for name, v in every.items() if _copied_volume(v, same_account) and not plan.drops(str(name))}
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") in volumes]
    used = {m["name"] for m in mounts}
    unshared = [
        str(m.get("mountPath"))
        for m in container.get("volumeMounts") or []
        if m.get("name") not in used and not str(m.get("name", "")).startswith(SKIPPED_VOLUME_PREFIXES)
    ]
    affinity = spec.get("affinity") or None
    return {
        "init_containers": tuple(
            c
            for c in spec.get("initContainers") or []
            if c.get("name") in COPIED_INIT_CONTAINERS
            and all(m.get("name") in used for m in c.get("volumeMounts") or [])
        ),
        "service_account": account,
        "automount_token": spec.get("automountServiceAccountToken"),
        "unshared_paths": tuple(unshared),
        "volumes": tuple(v for name, v in volumes.items() if name in used),
        "volume_mounts": tuple(mounts),
        "node_selector": dict(spec.get("nodeSelector") or {}),
        "tolerations": tuple(spec.get("tolerations") or ()),
        "affinity": pin_to_node(affinity, plan.node) if plan.node else affinity,
        "security_context": spec.get("securityContext") or None,
        "container_security_context": container.get("securityContext") or None,
        "image_pull_secrets": tuple(spec.get("imagePullSecrets") or ()),
    }


def notebook_claims(pod: NotebookPod, read_claim: ReadClaim) -> tuple[Claim, ...]:
    """The PersistentVolumeClaims the notebook container mounts, each read with
    ``read_claim`` for its access modes (the bound volume's, else those asked for)."""
    if not pod.pod:
        return ()
    namespace = str((pod.pod.get("metadata") or {}).get("namespace") or "")
    volumes = {
        str(v["name"]): str(v["persistentVolumeClaim"].get("claimName", ""))
        for v in (pod.pod.get("spec") or {}).get("volumes") or []
        if "persistentVolumeClaim" in v
    }
    claims: list[Claim] = []
    for mount in (notebook_container(pod.pod) or {}).get("volumeMounts") or []:
        volume = str(mount.get("name", ""))
        if volume not in volumes or any(c.volume == volume for c in claims):
            continue
        name, path = volumes[volume], str(mount.get("mountPath", ""))
        try:
            claim = read_claim(namespace, name)
        except KbatchError as exc:
            claims.append(Claim(volume, name, path, None, str(exc)))
            continue
        modes = (claim.get("status") or {}).get("accessModes") or (claim.get("spec") or {}).get("accessModes")
        claims.append(Claim(volume, name, path, tuple(str(m) for m in modes or ())))
    return tuple(claims)


def notebook_node(pod: NotebookPod) -> str | None:
    """The node the notebook pod runs on, if known."""
    return str(((pod.pod or {}).get("spec") or {}).get("nodeName") or "") or None


@dataclass(frozen=True)
class NotebookSession:
    """The notebook a job is submitted from: its pod, the claims it mounts, and
    ``kbatch.kubernetes.rwo-home`` (``policy``) for those other nodes cannot mount."""

    pod: NotebookPod
    claims: tuple[Claim, ...]
    policy: str

    @property
    def plan(self) -> ClaimPlan:
        """What jobs do about the claims (:func:`plan_claims`; BadInput for ``refuse``)."""
        return plan_claims(self.claims, self.policy, notebook_node(self.pod))


def read_notebook_pod(namespace: str, environ: Mapping[str, str], read_pod: ReadPod) -> NotebookPod:
    """The notebook pod, read by its name (``$HOSTNAME``) with ``read_pod``;
    unread, and why, when there is no such pod, no permission, or no cluster."""
    hostname = environ.get("HOSTNAME")
    if not hostname:
        return NotebookPod(None, "no $HOSTNAME: not in a pod")
    try:
        return NotebookPod(read_pod(namespace, hostname))
    except KbatchError as exc:
        return NotebookPod(None, str(exc))


def job_mounts(
    pod: NotebookPod, template: Mapping[str, Any], service_account: str | None = None, plan: ClaimPlan | None = None
) -> list[Mapping[str, Any]]:
    """The volume mounts a job's driver gets: those copied from the notebook pod
    (less the claims ``plan`` leaves out), then those of the admin's pod template."""
    copied = settings_from_pod(pod.pod, service_account, plan).get("volume_mounts", ())
    return [*copied, *_template_mounts(template)]


def detect(
    *,
    namespace: str,
    image: str,
    template: Mapping[str, Any],
    workdir: str,
    pod: NotebookPod,
    service_account: str | None = None,
    plan: ClaimPlan | None = None,
) -> PodSettings:
    """The :class:`PodSettings` of a job submitted from this session
    (``service_account``: the one configured for jobs, if any; ``plan``: what
    to do about the notebook's claims)."""
    template = dict(template)
    settings = settings_from_pod(pod.pod, service_account, plan)
    shared = [str(m.get("mountPath")) for m in _template_mounts(template)]
    settings["unshared_paths"] = tuple(p for p in settings["unshared_paths"] if p not in shared)
    return PodSettings(
        namespace=namespace,
        image=image,
        working_dir=workdir if mount_for(workdir, job_mounts(pod, template, service_account, plan)) else None,
        template=template,
        **settings,
    )


def unshared_variables(environment: Mapping[str, str], unshared_paths: Iterable[str]) -> list[str]:
    """The variables that point at files of the notebook the job's pod lacks (a
    path under ``unshared_paths``), and those meaningless without them.

    >>> unshared_variables({"AWS_ROLE_ARN": "arn:aws:iam::1:role/r", "AWS_WEB_IDENTITY_TOKEN_FILE":
    ...     "/var/run/secrets/eks.amazonaws.com/serviceaccount/token", "A": "/home/a"}, ["/var/run/secrets"])
    ['AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN']
    """
    mounts = [{"mountPath": path} for path in unshared_paths]
    pointing = [k for k, v in environment.items() if v.startswith("/") and mount_for(os.path.normpath(v), mounts)]
    companions = [c for k in pointing for c in COMPANIONS.get(k, ()) if c in environment]
    return list(dict.fromkeys([*pointing, *companions]))


def job_environment(
    environment: Mapping[str, str], environ: Mapping[str, str], unshared_paths: Iterable[str] = ()
) -> dict[str, str]:
    """The variables a Kubernetes job gets: the exported ``environment``, plus
    the session's ``DASK_GATEWAY__*`` settings whatever ``--export`` said (the
    driver must reach the same gateway), minus names a container cannot take
    and :func:`unshared_variables`.

    >>> job_environment({"A": "1", "bad.name": "x"}, {"DASK_GATEWAY__ADDRESS": "http://gw"})
    {'A': '1', 'DASK_GATEWAY__ADDRESS': 'http://gw'}
    """
    env = {k: v for k, v in environment.items() if _ENV_NAME.match(k)}
    for key, value in environ.items():
        if key.startswith("DASK_GATEWAY__") and key not in env and not is_denied(key):
            env[key] = value
    for key in unshared_variables(env, unshared_paths):
        del env[key]
    return env


def output_on_volume(path: str | None, settings: PodSettings) -> str | None:
    """``path`` if the job's pod writes it to a volume the session sees too, else None."""
    if not path:
        return None
    mounts = [*settings.volume_mounts, *_template_mounts(settings.template)]
    return path if mount_for(os.path.normpath(path), mounts) else None


def _template_mounts(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The driver's volume mounts an admin's pod template adds."""
    return [m for c in (template.get("containers") or [])[:1] for m in c.get("volumeMounts") or []]
