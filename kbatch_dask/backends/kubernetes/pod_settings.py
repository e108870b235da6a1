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
- **working directory**: the submit directory when it lies on a copied volume.

:func:`settings_from_pod` is pure; :func:`detect` takes the one I/O it needs
(reading the pod) as a function, so this module never imports ``kubernetes``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kbatch_dask.backends.kubernetes.manifests import PodSettings
from kbatch_dask.errors import BadInput
from kbatch_dask.spec.environment import is_denied

SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
NOTEBOOK_CONTAINER = "notebook"  # what zero-to-jupyterhub calls it
# Volumes never copied: the pod's own API credentials and secrets (a job gets
# its credentials through its own Secret), and data about the notebook pod.
SKIPPED_VOLUME_TYPES = ("projected", "secret", "downwardAPI")
SKIPPED_VOLUME_PREFIXES = ("kube-api-access-", "default-token-")
# Environment variable names every container runtime accepts.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ReadPod = Callable[[str, str], "Mapping[str, Any] | None"]


def detect_namespace(
    configured: str | None, context_namespace: str | None, sa_file: str = SERVICE_ACCOUNT_NAMESPACE
) -> str:
    """The namespace jobs go to.

    >>> detect_namespace("jobs", None), detect_namespace(None, None, "/nonexistent")
    ('jobs', 'default')
    """
    if configured:
        return configured
    try:
        with open(sa_file) as f:
            found = f.read().strip()
        if found:
            return found
    except OSError:
        pass
    return context_namespace or "default"


def detect_image(
    option: str | None, environ: Mapping[str, str], configured: str | None, pod_image: str | None = None
) -> str:
    """The job's image; BadInput when there is no way to tell.

    >>> detect_image(None, {"JUPYTER_IMAGE_SPEC": "pangeo/ml:2026.1"}, None)
    'pangeo/ml:2026.1'
    """
    for candidate in (option, environ.get("JUPYTER_IMAGE_SPEC"), environ.get("JUPYTER_IMAGE"), configured, pod_image):
        if candidate:
            return candidate
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


def _copied_volume(volume: Mapping[str, Any]) -> bool:
    name = str(volume.get("name", ""))
    return not name.startswith(SKIPPED_VOLUME_PREFIXES) and not any(t in volume for t in SKIPPED_VOLUME_TYPES)


def on_mount(path: str, mounts: Iterable[Mapping[str, Any]]) -> bool:
    """True when ``path`` lies on one of the volume ``mounts``.

    >>> on_mount("/home/jovyan/work", [{"name": "home", "mountPath": "/home/jovyan"}])
    True
    """
    for mount in mounts:
        root = str(mount.get("mountPath", "")).rstrip("/")
        if root and (path == root or path.startswith(root + "/")):
            return True
    return False


def settings_from_pod(pod: Mapping[str, Any] | None) -> dict[str, Any]:
    """The pieces of a notebook pod a job copies, as :class:`PodSettings` fields.

    Only volumes the notebook container mounts are copied, never its service
    account token, secrets or downward-API volumes.
    """
    if not pod:
        return {}
    spec = pod.get("spec") or {}
    container = notebook_container(pod) or {}
    volumes = {v["name"]: v for v in spec.get("volumes") or [] if _copied_volume(v)}
    mounts = [m for m in container.get("volumeMounts") or [] if m.get("name") in volumes]
    used = {m["name"] for m in mounts}
    return {
        "volumes": tuple(v for name, v in volumes.items() if name in used),
        "volume_mounts": tuple(mounts),
        "node_selector": dict(spec.get("nodeSelector") or {}),
        "tolerations": tuple(spec.get("tolerations") or ()),
        "affinity": spec.get("affinity") or None,
        "security_context": spec.get("securityContext") or None,
        "container_security_context": container.get("securityContext") or None,
        "image_pull_secrets": tuple(spec.get("imagePullSecrets") or ()),
    }


def detect(
    *,
    namespace: str,
    image_option: str | None,
    configured_image: str | None,
    template: Mapping[str, Any] | None,
    workdir: str,
    environ: Mapping[str, str],
    read_pod: ReadPod | None,
) -> PodSettings:
    """The :class:`PodSettings` of a job submitted from this session.

    ``read_pod(namespace, name)`` returns the pod as a dict, or None when it
    cannot be read (no such pod, no permission, not in a cluster).
    """
    pod = None
    hostname = environ.get("HOSTNAME")
    if read_pod and hostname:
        pod = read_pod(namespace, hostname)
    container = notebook_container(pod) if pod else None
    image = detect_image(image_option, environ, configured_image, container.get("image") if container else None)
    pieces = settings_from_pod(pod)
    template = dict(template or {})
    mounts = [*pieces.get("volume_mounts", ()), *_template_mounts(template)]
    return PodSettings(
        namespace=namespace,
        image=image,
        working_dir=workdir if on_mount(workdir, mounts) else None,
        template=template,
        **pieces,
    )


def job_environment(environment: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The variables a Kubernetes job gets: the exported ``environment``, plus
    the session's ``DASK_GATEWAY__*`` settings whatever ``--export`` said (the
    driver must reach the same gateway), minus names a container cannot take.

    >>> job_environment({"A": "1", "bad.name": "x"}, {"DASK_GATEWAY__ADDRESS": "http://gw"})
    {'A': '1', 'DASK_GATEWAY__ADDRESS': 'http://gw'}
    """
    env = {k: v for k, v in environment.items() if _ENV_NAME.match(k)}
    for key, value in environ.items():
        if key.startswith("DASK_GATEWAY__") and key not in env and not is_denied(key):
            env[key] = value
    return env


def output_on_volume(path: str | None, settings: PodSettings) -> str | None:
    """``path`` if the job's pod writes it to a volume the session sees too, else None."""
    if not path:
        return None
    mounts = [*settings.volume_mounts, *_template_mounts(settings.template)]
    return path if on_mount(os.path.normpath(path), mounts) else None


def _template_mounts(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The driver's volume mounts an admin's pod template adds."""
    return [m for c in (template.get("containers") or [])[:1] for m in c.get("volumeMounts") or []]
