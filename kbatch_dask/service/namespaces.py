"""Where the service's jobs go (``kbatch.service.namespace-mode``).

``shared``: every user's jobs in one namespace, the hub's. ``per-user``: each
user's in ``namespace-template`` (``kbatch-{username}``, the hub name made a
DNS label as kubespawner makes pod names), created on a user's first
submission, as kbatch-proxy does, with the label ``app.kubernetes.io/managed-by:
kbatch-dask`` and a RoleBinding that gives the service's own ServiceAccount the
ClusterRole ``jobs-cluster-role`` there (deploy/per-user/ has both roles).
A namespace that exists without that label is never used: it is someone else's.

In both modes the users' server pods are read in the hub's namespace.
"""

from __future__ import annotations

import threading
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.slugs import DNS_LABEL_MAX, is_dns_label, safe_slug
from kbatch_dask.errors import BadInput, KubeError
from kbatch_dask.settings import Service

MODES = ("shared", "per-user")
USERNAME = "{username}"
ROLE_BINDING = "kbatch-dask"
CONFLICT, NOT_FOUND = 409, 404


class Namespaces:
    """The namespace of each user's jobs; ``hub`` is the shared one (and the servers')."""

    def __init__(self, api: KubeAPI, service: Service, hub: str) -> None:
        if service.namespace_mode not in MODES:
            raise BadInput(
                f"config kbatch.service.namespace-mode = {service.namespace_mode!r}: expected shared or per-user"
            )
        self.api = api
        self.hub = hub
        self.per_user = service.namespace_mode == "per-user"
        self.template = service.namespace_template
        self.service_account = service.service_account
        self.cluster_role = service.jobs_cluster_role
        if self.per_user:
            self._check_template()
        self._ready: set[str] = set()  # created (or found) and bound by this process
        self._found: set[str] = set()  # seen with the service's label
        self._lock = threading.Lock()

    def _check_template(self) -> None:
        key = "config kbatch.service.namespace-template"
        if self.template.count(USERNAME) != 1:
            raise BadInput(f"{key} = {self.template!r}: expected {USERNAME} once, e.g. kbatch-{USERNAME}")
        fixed = self.template.replace(USERNAME, "")
        if not is_dns_label(self.template.replace(USERNAME, "x")) or len(fixed) > DNS_LABEL_MAX - 12:
            raise BadInput(
                f"{key} = {self.template!r}: a namespace is a DNS label (lowercase letters, digits, '-'; "
                f"at most {DNS_LABEL_MAX} characters with the user's name)"
            )

    def of(self, user: str) -> str:
        """The namespace of ``user``'s jobs.

        >>> from kbatch_dask import settings
        >>> import dataclasses
        >>> service = dataclasses.replace(settings.load().service, namespace_mode="per-user")
        >>> spaces = Namespaces(None, service, "jhub")  # type: ignore[arg-type]
        >>> spaces.of("alice"), spaces.of("Alice@example.org")
        ('kbatch-alice', 'kbatch-alice-example-org---fb5b3740')
        """
        if not self.per_user:
            return self.hub
        room = DNS_LABEL_MAX - len(self.template.replace(USERNAME, ""))
        return self.template.replace(USERNAME, safe_slug(user, max_length=room))

    def ensure(self, user: str) -> str:
        """``user``'s namespace, created (with its RoleBinding) the first time; KubeError when
        it exists but is not the service's."""
        namespace = self.of(user)
        if not self.per_user or namespace in self._ready:
            return namespace
        with self._lock:
            if namespace not in self._ready:
                self._create(namespace, user)
                self._ready.add(namespace)
        return namespace

    def exists(self, user: str) -> bool:
        """Whether ``user`` has jobs to read: always in ``shared`` mode; in ``per-user``
        mode once their namespace exists with the service's label."""
        namespace = self.of(user)
        if not self.per_user or namespace in self._ready or namespace in self._found:
            return True
        try:
            found = self.api.get_namespace(namespace)
        except KubeError as exc:
            if exc.status == NOT_FOUND:
                return False
            raise
        if not _ours(found):
            return False  # someone else's namespace holds no jobs of the service
        self._found.add(namespace)
        return True

    def planned(self, user: str) -> list[dict[str, Any]]:
        """What :meth:`ensure` would create for ``user`` now, creating nothing (``--dry-run``):
        their Namespace and its RoleBinding on first use, else nothing; KubeError, as
        :meth:`ensure` raises it, when the namespace exists but is not the service's."""
        namespace = self.of(user)
        if not self.per_user or namespace in self._ready:
            return []
        try:
            found = self.api.get_namespace(namespace)
        except KubeError as exc:
            if exc.status != NOT_FOUND:
                raise
            return [self._namespace(namespace, user), self._role_binding(namespace)]
        if not _ours(found):
            raise _not_ours(namespace)
        return []

    def _namespace(self, namespace: str, user: str) -> dict[str, Any]:
        labels = {names.LABEL_MANAGED_BY: names.MANAGED_BY, names.LABEL_USER: safe_slug(user, max_length=63)}
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}

    def _create(self, namespace: str, user: str) -> None:
        try:
            self.api.create_namespace(self._namespace(namespace, user))
        except KubeError as exc:
            if exc.status != CONFLICT:
                raise
            if not _ours(self.api.get_namespace(namespace)):
                raise _not_ours(namespace) from None
        # Also when the namespace was there: a service stopped between the two calls left none.
        try:
            self.api.create_role_binding(namespace, self._role_binding(namespace))
        except KubeError as exc:
            if exc.status != CONFLICT:
                raise

    def _role_binding(self, namespace: str) -> dict[str, Any]:
        return {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": ROLE_BINDING,
                "namespace": namespace,
                "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY},
            },
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": self.cluster_role},
            "subjects": [{"kind": "ServiceAccount", "name": self.service_account, "namespace": self.hub}],
        }

    def all(self) -> list[str]:
        """Every namespace holding jobs: the shared one, or each the service created."""
        if not self.per_user:
            return [self.hub]
        selector = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
        return sorted(str(ns["metadata"]["name"]) for ns in self.api.list_namespaces(selector))


def _ours(namespace: dict[str, Any]) -> bool:
    return bool(((namespace.get("metadata") or {}).get("labels") or {}).get(names.LABEL_MANAGED_BY) == names.MANAGED_BY)


def _not_ours(namespace: str) -> KubeError:
    return KubeError(
        f"namespace {namespace!r} exists and is not kbatch-dask's (no label "
        f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}): an admin must rename it or label it"
    )


# Volume sources that name no object of the pod's namespace: they work from any namespace.
PORTABLE_VOLUMES = ("emptyDir", "nfs", "hostPath", "downwardAPI", "ephemeral", "image")


def portable_server_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The user's server pod as a job in another namespace can copy it: without the
    volumes that name objects of the hub's namespace (claims, Secrets, ConfigMaps,
    projected sources, CSI with a secret), its service account and image pull
    Secrets, which exist there only. The admin's pod template is what adds volumes
    that every namespace can mount (NFS, CSI without secrets).

    >>> pod = {"spec": {"serviceAccountName": "sa", "volumes": [
    ...     {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
    ...     {"name": "shared", "nfs": {"server": "nfs", "path": "/shared"}}]}}
    >>> portable_server_pod(pod)["spec"]
    {'volumes': [{'name': 'shared', 'nfs': {'server': 'nfs', 'path': '/shared'}}]}
    """
    spec = dict(pod.get("spec") or {})
    spec.pop("serviceAccountName", None)
    spec.pop("serviceAccount", None)
    spec.pop("imagePullSecrets", None)
    spec["volumes"] = [v for v in spec.get("volumes") or [] if _portable(v)]
    return {**pod, "spec": spec}


def _portable(volume: dict[str, Any]) -> bool:
    csi = volume.get("csi")
    if csi is not None:
        return "nodePublishSecretRef" not in csi
    return any(kind in volume for kind in PORTABLE_VOLUMES)
