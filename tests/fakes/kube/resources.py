"""The resource types the fake API server serves, and their discovery documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives, what it is called, how deletes default."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    short_names: tuple[str, ...] = ()
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Kubernetes orphans a batch/v1 Job's pods unless the client asks otherwise;
    # code that cancels jobs must send propagationPolicy=Background.
    default_propagation: str = "Background"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def qualified(self) -> str:
        """``jobs.batch`` / ``pods``: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """``Job.batch`` / ``ConfigMap``: how 422 messages name the kind."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


POD = ResourceType("", "v1", "pods", "Pod", "pod", ("po",), subresources=("status", "log"))
JOB = ResourceType("batch", "v1", "jobs", "Job", "job", subresources=("status",), default_propagation="Orphan")
CONFIGMAP = ResourceType("", "v1", "configmaps", "ConfigMap", "configmap", ("cm",))
SECRET = ResourceType("", "v1", "secrets", "Secret", "secret")
EVENT = ResourceType("", "v1", "events", "Event", "event", ("ev",))
PVC = ResourceType(
    "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", "persistentvolumeclaim", ("pvc",),
    subresources=("status",),
)  # fmt: skip
NAMESPACE = ResourceType(
    "", "v1", "namespaces", "Namespace", "namespace", ("ns",), namespaced=False, verbs=("get", "list", "create")
)
SSAR = ResourceType(
    "authorization.k8s.io",
    "v1",
    "selfsubjectaccessreviews",
    "SelfSubjectAccessReview",
    "selfsubjectaccessreview",
    namespaced=False,
    verbs=("create",),
)
SSRR = ResourceType(
    "authorization.k8s.io",
    "v1",
    "selfsubjectrulesreviews",
    "SelfSubjectRulesReview",
    "selfsubjectrulesreview",
    namespaced=False,
    verbs=("create",),
)
# What RBAC mode evaluates (rbac.py); stored and served like any other kind.
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE = ResourceType(RBAC_GROUP, "v1", "roles", "Role", "role")
ROLEBINDING = ResourceType(RBAC_GROUP, "v1", "rolebindings", "RoleBinding", "rolebinding")
CLUSTERROLE = ResourceType(RBAC_GROUP, "v1", "clusterroles", "ClusterRole", "clusterrole", namespaced=False)
CLUSTERROLEBINDING = ResourceType(
    RBAC_GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding", "clusterrolebinding", namespaced=False
)

#: Resources kept in the object store, by plural name.
STORED: dict[str, ResourceType] = {
    r.plural: r for r in (POD, JOB, CONFIGMAP, SECRET, EVENT, PVC, ROLE, ROLEBINDING, CLUSTERROLE, CLUSTERROLEBINDING)
}
#: Every resource, by (group, version, plural).
BY_PATH: dict[tuple[str, str, str], ResourceType] = {
    (r.group, r.version, r.plural): r for r in (*STORED.values(), NAMESPACE, SSAR, SSRR)
}

_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "log": ["get"]}


def group_versions() -> dict[str, list[ResourceType]]:
    """Resources grouped by group/version, core ("v1") first."""
    grouped: dict[str, list[ResourceType]] = {}
    for rtype in BY_PATH.values():
        grouped.setdefault(rtype.api_version, []).append(rtype)
    return grouped


def api_resource_list(group_version: str) -> dict[str, Any] | None:
    """The ``APIResourceList`` for ``/api/v1`` or ``/apis/<group>/<version>``."""
    rtypes = group_versions().get(group_version)
    if rtypes is None:
        return None
    entries: list[dict[str, Any]] = []
    for r in rtypes:
        entry = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind}
        entries.append(
            {**entry, "verbs": list(r.verbs), **({"shortNames": list(r.short_names)} if r.short_names else {})}
        )
        for sub in r.subresources:
            entries.append(
                {"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced, "kind": r.kind}
                | {"verbs": _SUBRESOURCE_VERBS[sub]}
            )
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}


def api_group(name: str) -> dict[str, Any]:
    version = next(r.version for r in BY_PATH.values() if r.group == name)
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> dict[str, Any]:
    names = sorted({r.group for r in BY_PATH.values() if r.group})
    groups = [{k: v for k, v in api_group(n).items() if k not in ("kind", "apiVersion")} for n in names]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
