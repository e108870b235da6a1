"""The pure checks of ``kbatch doctor`` for the Kubernetes backend: the API, the
namespace and its tenancy, the permissions jobs need (and broader ones), the image,
the cloud identity and the home volume. Called by :func:`kbatch_dask.doctor.probes.diagnose`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbatch_dask.doctor.report import FAIL, OK, SKIP, WARN, Check
from kbatch_dask.errors import KbatchError

if TYPE_CHECKING:
    from kbatch_dask.backends.kubernetes.claims import Claim


@dataclass(frozen=True)
class Permission:
    """Verbs the Kubernetes backend uses on one resource (what its Role must grant)."""

    resource: str  # "jobs", "pods/log"
    group: str
    verbs: tuple[str, ...]
    optional: tuple[str, ...] = ()  # the backend manages without these (it says so)
    without: str = ""  # what the backend does without the optional verbs

    @property
    def label(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


PERMISSIONS = (
    Permission("jobs", "batch", ("create", "get", "list", "patch", "delete")),
    Permission(
        "configmaps",
        "",
        ("create", "get", "delete"),
        optional=("get",),
        without="kbatch resubmit cannot read a job's script snapshot",
    ),
    Permission("secrets", "", ("create", "delete")),
    Permission(
        "pods",
        "",
        ("get", "list"),
        optional=("get",),
        without="jobs copy nothing from the notebook pod (volumes, scheduling), only kbatch.kubernetes.pod-template",
    ),
    Permission("pods/log", "", ("get",)),
    Permission(
        "persistentvolumeclaims",
        "",
        ("get",),
        optional=("get",),
        without="the home claim is taken as ReadWriteOnce (kbatch.kubernetes.rwo-home decides where jobs run)",
    ),
    Permission(
        "events",
        "",
        ("list",),
        optional=("list",),
        without="kbatch show cannot say why a pod waits to attach its volume",
    ),
)


def check_kube_api(where: str | None, error: KbatchError | None) -> Check:
    if error is not None:
        return Check(
            "kubernetes API",
            FAIL,
            str(error),
            "run in a pod with a service account (on the hub), or set KUBECONFIG / kbatch.kubernetes.context",
        )
    return Check("kubernetes API", OK, f"reachable as {where}")


def check_namespace(namespace: str, source: str) -> Check:
    return Check("namespace", OK, f"{namespace} ({source})")


def check_permission(permission: Permission, namespace: str, allowed: Mapping[str, bool | None]) -> Check:
    """Whether the session may use ``permission``'s verbs (from SelfSubjectAccessReviews).

    >>> check_permission(PERMISSIONS[0], "jhub", {"create": False, "get": True}).message
    'may not create jobs.batch in namespace jhub'
    """
    name = f"permission {permission.label}"
    denied = [v for v in permission.verbs if allowed.get(v) is False]
    unknown = [v for v in permission.verbs if allowed.get(v) is None]
    if denied:
        message = f"may not {', '.join(denied)} {permission.label} in namespace {namespace}"
        fix = f"an admin must grant {', '.join(denied)} on {permission.label} in namespace {namespace}"
        if set(denied) <= set(permission.optional):
            return Check(name, WARN, f"{message}: {permission.without}", fix)
        return Check(name, FAIL, message, fix)
    if unknown:
        return Check(
            name,
            WARN,
            f"could not check {', '.join(unknown)} on {permission.label}",
            f"ask an admin whether the Role in namespace {namespace} grants them",
        )
    return Check(name, OK, f"may {', '.join(permission.verbs)} {permission.label} in namespace {namespace}")


def check_image(image: str | None, source: str, error: KbatchError | None) -> Check:
    if error is not None or not image:
        return Check(
            "image",
            FAIL,
            str(error or "no image for jobs"),
            "pass --image, or ask an admin to set kbatch.kubernetes.image (the image needs kbatch-dask installed)",
        )
    return Check("image", OK, f"{image} ({source})")


def check_cloud_identity(
    notebook_account: str | None, configured: str | None, dropped: Sequence[str], pod_error: str | None
) -> Check:
    """Whether jobs get the notebook's cloud identity (IRSA, GKE / Azure Workload
    Identity bind it to the pod's service account); ``dropped``: the session's
    variables a job does not get because they point at files its pod lacks.

    >>> check_cloud_identity("analyst", None, [], None).message
    "jobs run as the notebook's service account analyst, with its cloud identity"
    """
    name = "cloud identity"
    lost = f"; not copied: {', '.join(dropped)} (they point at files a job's pod does not have)" if dropped else ""
    if pod_error is not None:
        return Check(
            name,
            WARN if dropped else OK,
            f"the notebook pod could not be read ({pod_error}): jobs run as "
            f"{configured or 'the namespace default service account'}{lost}",
            "an admin can allow `get pods`, so that jobs run as the notebook's service account" if dropped else None,
        )
    if configured and configured != notebook_account:
        return Check(
            name,
            WARN,
            f"jobs run as service account {configured} (kbatch.kubernetes.service-account), not the notebook's "
            f"{notebook_account or 'default'}: a cloud identity bound to it (IRSA, Workload Identity) "
            f"is not theirs{lost}",
            f"an admin can bind the same cloud role to {configured} (eks.amazonaws.com/role-arn, "
            "iam.gke.io/gcp-service-account), or unset kbatch.kubernetes.service-account",
        )
    account = notebook_account or "default"
    return Check(
        name,
        WARN if dropped else OK,
        f"jobs run as the notebook's service account {account}, with its cloud identity{lost}",
    )


def check_home_volume(home: str, mounts: Sequence[Mapping[str, Any]], pod_error: str | None) -> Check:
    """Whether jobs see the home directory (a volume copied from the notebook pod or the admin's template)."""
    from kbatch_dask.backends.kubernetes.pod_settings import mount_for

    name = "home volume"
    mount = mount_for(home, mounts)
    if mount is not None:
        return Check(name, OK, f"{mount.get('name')} at {mount.get('mountPath')} is mounted in jobs")
    why = f" (the notebook pod could not be read: {pod_error})" if pod_error else ""
    return Check(
        name,
        WARN,
        f"{home} is on no volume jobs mount{why}: jobs see neither your files nor write output there",
        "an admin can allow `get pods`, or add the home volume to kbatch.kubernetes.pod-template",
    )


def check_home_claims(claims: Sequence[Claim], policy: str, node: str | None) -> list[Check]:
    """Each claim the notebook mounts: its access mode and what it means for jobs
    (``policy``: ``kbatch.kubernetes.rwo-home``; ``node``: the notebook's)."""
    from kbatch_dask.backends.kubernetes.claims import RWO_HOME_POLICIES

    rows = []
    for claim in claims:
        name, found = f"volume {claim.mount_path}", claim.describe()
        fix = "an admin can give users a ReadWriteMany home volume (NFS, or a CSI driver that shares)"
        if claim.access_modes is None:
            fix = "an admin can allow `get persistentvolumeclaims`, so that kbatch knows the access mode"
        if claim.sharing == "any":
            rows.append(Check(name, OK, f"{found}: jobs mount it on any node"))
        elif policy not in RWO_HOME_POLICIES:
            allowed = ", ".join(RWO_HOME_POLICIES)
            rows.append(Check(name, FAIL, f"{found}; kbatch.kubernetes.rwo-home = {policy!r} is unknown", allowed))
        elif policy == "refuse":
            rows.append(Check(name, FAIL, f"{found}; rwo-home: refuse, so no job can be submitted from here", fix))
        elif policy == "pin" and claim.sharing == "node" and node:
            pinned = (
                f"{found}; jobs run on the notebook's node {node} (rwo-home: pin): they wait there for room, "
                "and the notebook server cannot move to another node while they run"
            )
            known = claim.access_modes is not None
            rows.append(Check(name, OK if known else WARN, pinned, None if known else fix))
        else:
            without = (
                f"{found}; jobs run without it (rwo-home: {policy}): they see none of its files and write "
                "their output only to their log (`kbatch logs JOB`)"
            )
            rows.append(Check(name, WARN, without, fix))
    return rows


#: Grants a notebook's Role never needs, each a way around what kbatch-dask
#: keeps apart: reading Secrets (the hub's among them), a shell in other pods,
#: minting tokens or writing Roles. (group, resource, verbs; "*": any verb.)
RISKY_GRANTS = (
    ("", "secrets", ("get", "list", "watch")),
    ("", "pods/exec", ("*",)),
    ("", "pods/attach", ("*",)),
    ("", "pods/portforward", ("*",)),
    ("", "pods/proxy", ("*",)),
    ("", "serviceaccounts/token", ("create",)),
    ("rbac.authorization.k8s.io", "roles", ("create", "update", "patch", "bind", "escalate")),
    ("rbac.authorization.k8s.io", "rolebindings", ("create", "update", "patch")),
)


def _rule_text(verbs: Sequence[str], groups: Sequence[str], resources: Sequence[str]) -> str:
    def label(resource: str, group: str) -> str:
        return f"{resource}.{group}" if group else resource

    return f"{', '.join(verbs)} {', '.join(label(r, g) for g in groups for r in resources)}"


def broad_grants(rules: Sequence[Mapping[str, Any]]) -> list[str]:
    """The rules of a SelfSubjectRulesReview that grant more than jobs need: any
    ``*``, and the :data:`RISKY_GRANTS` (unless limited to named objects).

    >>> broad_grants([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["secrets", "configmaps"]}])
    ['get, list secrets']
    >>> broad_grants([{"verbs": ["*"], "apiGroups": ["batch"], "resources": ["jobs"]}])
    ['* jobs.batch']
    """
    found: list[str] = []
    for rule in rules:
        verbs = list(rule.get("verbs") or [])
        groups = list(rule.get("apiGroups") or [])
        resources = list(rule.get("resources") or [])
        if "*" in verbs or "*" in groups or "*" in resources:
            found.append(_rule_text(verbs, groups, resources))
            continue
        if rule.get("resourceNames"):
            continue
        for group, resource, risky in RISKY_GRANTS:
            granted = [v for v in verbs if "*" in risky or v in risky]
            if group in groups and resource in resources and granted:
                found.append(_rule_text(granted, [group], [resource]))
    return list(dict.fromkeys(found))


def check_permission_scope(namespace: str, review: Mapping[str, Any] | None) -> Check:
    """Whether this session's rules (a SelfSubjectRulesReview's status) grant more than jobs need."""
    name = "rbac scope"
    if review is None:
        return Check(name, SKIP, "the API server did not answer a SelfSubjectRulesReview")
    rules = list(review.get("resourceRules") or [])
    if review.get("incomplete") and not rules:
        return Check(name, SKIP, f"the API server did not list this session's rules: {review.get('evaluationError')}")
    broad = broad_grants(rules)
    if broad:
        return Check(
            name,
            WARN,
            f"this session may {'; '.join(broad)} in namespace {namespace}: more than jobs need",
            "an admin should narrow the notebook's Role to the one in docs/kubernetes.md § RBAC",
        )
    return Check(name, OK, f"no wildcard, Secret-reading or pod exec/attach grant in namespace {namespace}")


def check_tenancy(
    namespace: str, other_users: Sequence[str], hub_pods: Sequence[str], error: KbatchError | None
) -> Check:
    """Whether the namespace jobs go to is shared: other users' notebook pods, or the hub's own.

    >>> check_tenancy("jhub", ["bob"], ["hub-7f9c"], None).status
    'warn'
    """
    name = "tenancy"
    if error is not None:
        return Check(name, SKIP, f"could not list the notebook and hub pods of namespace {namespace}: {error}")
    shared = []
    if other_users:
        count = len(other_users)
        shared.append(f"notebooks of {count} other user{'s' if count != 1 else ''}")
    if hub_pods:
        shared.append("the hub's own pod")
    if not shared:
        return Check(name, OK, f"namespace {namespace} holds no other user's notebook and not the hub")
    return Check(
        name,
        WARN,
        f"namespace {namespace} is shared ({' and '.join(shared)}): direct mode is not multi-tenant, whoever"
        " may create Jobs here can run them as any service account of the namespace (the hub's included)"
        " and mount any Secret or volume claim in it",
        "direct mode is for single-user clusters and per-user namespaces (KubeSpawner's enable_user_namespaces);"
        " a shared hub should use the kbatch-dask JupyterHub service (docs/service.md, coming)",
    )
