"""Kubernetes' prevention of privilege escalation through RBAC writes, in RBAC mode.

The verb is not enough to write RBAC objects
(https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping):

* creating or updating a **RoleBinding** or **ClusterRoleBinding** is allowed
  only when the caller may ``bind`` the role it refers to (verb ``bind`` on
  ``roles`` or ``clusterroles`` of ``rbac.authorization.k8s.io``, that name, in
  the binding's namespace), or already holds every permission of that role
  where the binding grants it (the binding's namespace; everywhere for a
  ClusterRoleBinding). A binding to a role that does not exist is refused
  with the role's 404 unless the caller may ``bind`` it;
* creating or updating a **Role** or **ClusterRole** is allowed only with
  ``escalate`` on it, or holding every permission it grants.

As ``pkg/registry/rbac/{rolebinding,clusterrolebinding,role,clusterrole}/policybased``
and ``rbac/validation.ConfirmNoEscalation`` do: a rule is held when each of its
(group, resource, verb, name) combinations is matched by a rule the caller has,
``*`` only by ``*`` (so holding ``get`` does not cover a rule granting ``*``).
Not simulated: PATCH of RBAC objects (checked by the real server like an
update), ``system:masters`` (which skips the check), nonResourceURLs rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .rbac import bound_rules, rule_allows
from .resources import CLUSTERROLE, CLUSTERROLEBINDING, RBAC_GROUP, ROLE, ROLEBINDING, ResourceType
from .store import ApiError, JsonObj, Store

BINDINGS = (ROLEBINDING, CLUSTERROLEBINDING)
ROLES = (ROLE, CLUSTERROLE)
#: may the caller do (verb, resource of rbac.authorization.k8s.io, name) in a namespace (None: cluster)?
Authorizer = Callable[[str, str, str, "str | None"], bool]


def checked(rtype: ResourceType) -> bool:
    """Whether writing ``rtype`` goes through the escalation check."""
    return rtype in BINDINGS or rtype in ROLES


def confirm_no_escalation(
    store: Store, user: str, may: Authorizer, rtype: ResourceType, namespace: str | None, body: Any
) -> tuple[str, str] | None:
    """Raise Kubernetes' 403 (or a missing role's 404) when writing ``body`` would give
    ``user`` more than they hold. Returns the ``(verb, resource)`` that allowed it when
    that was ``bind`` or ``escalate`` (None: the caller held the permissions)."""
    obj = body if isinstance(body, dict) else {}
    name = str((obj.get("metadata") or {}).get("name") or "")
    scope = namespace if rtype in (ROLEBINDING, ROLE) else None
    if rtype in BINDINGS:
        ref = obj.get("roleRef") or {}
        resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
        role_name = str(ref.get("name") or "")
        if may("bind", resource, role_name, scope):
            return ("bind", resource)
        rules = _referenced_rules(store, resource, role_name, scope)
    else:
        if may("escalate", rtype.plural, name, scope):
            return ("escalate", rtype.plural)
        rules = list(obj.get("rules") or [])
    missing = _not_held(rules, list(bound_rules(store, user, scope)))
    if missing:
        raise ApiError(
            403,
            "Forbidden",
            f'{rtype.qualified} "{name}" is forbidden: user "{user}" is attempting to grant RBAC permissions '
            f"not currently held:\n" + "\n".join(missing),
            {"group": RBAC_GROUP, "kind": rtype.plural, "name": name},
        )
    return None


def _referenced_rules(store: Store, resource: str, name: str, namespace: str | None) -> list[JsonObj]:
    role = store.find(CLUSTERROLE, "", name) if resource == "clusterroles" else store.find(ROLE, namespace or "", name)
    if role is None:
        raise ApiError(404, "NotFound", f'{resource}.{RBAC_GROUP} "{name}" not found', {"kind": resource, "name": name})
    return list(role.get("rules") or [])


def _not_held(rules: list[JsonObj], held: list[JsonObj]) -> list[str]:
    """Each combination of ``rules`` no rule of ``held`` matches, as Kubernetes lists them."""
    missing = []
    for rule in rules:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    for name in rule.get("resourceNames") or [None]:
                        if not any(rule_allows(h, verb, group, resource, name) for h in held):
                            missing.append(_describe(group, resource, verb, name))
    return missing


def _describe(group: str, resource: str, verb: str, name: str | None) -> str:
    names = f', ResourceNames:["{name}"]' if name else ""
    return f'{{APIGroups:["{group}"], Resources:["{resource}"]{names}, Verbs:["{verb}"]}}'
