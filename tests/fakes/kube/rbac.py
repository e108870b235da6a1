"""RBAC as Kubernetes evaluates it, over the Roles and bindings in the fake's store.

In RBAC mode (``FakeApiServer(rbac=True)``) a request is allowed only when a
rule of a Role or ClusterRole bound to its user (or one of the user's groups)
matches it; nothing is allowed by default. What is simulated, as in
``k8s.io/kubernetes/pkg/apis/rbac/v1/evaluation_helpers.go``:

* a RoleBinding grants its Role's rules, or a ClusterRole's, in its own
  namespace; a ClusterRoleBinding grants a ClusterRole's everywhere;
* subjects ``ServiceAccount`` (its namespace defaulting to the binding's),
  ``User`` and ``Group``; service accounts are in the groups
  ``system:serviceaccounts`` and ``system:serviceaccounts:<namespace>``, every
  authenticated user in ``system:authenticated``;
* rules match on ``verbs``, ``apiGroups``, ``resources`` (``pods/log`` for a
  subresource; ``*`` is any resource or subresource, ``*/log`` any resource's
  ``log``) and ``resourceNames`` (a rule naming objects never matches a request
  without a name: ``create``, ``list``), each with ``*``.

Not simulated: aggregated ClusterRoles, ``nonResourceURLs`` (the fake serves
discovery to everyone; the escalation checks on writing RBAC objects are
``escalation.py``'s), and the built-in
roles (``system:basic-user`` is implied: the self-reviews are always allowed).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .resources import CLUSTERROLE, CLUSTERROLEBINDING, ROLE, ROLEBINDING
from .store import JsonObj, Store

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

#: What every authenticated user may do (Kubernetes' ``system:basic-user``).
BASIC_USER_RULES: list[JsonObj] = [
    {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    }
]


def groups_of(user: str) -> set[str]:
    """The groups Kubernetes puts ``user`` in.

    >>> sorted(groups_of("system:serviceaccount:jhub:hub"))
    ['system:authenticated', 'system:serviceaccounts', 'system:serviceaccounts:jhub']
    """
    if user == "system:anonymous":
        return {"system:unauthenticated"}
    groups = {"system:authenticated"}
    if user.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = user[len(SERVICE_ACCOUNT_PREFIX) :].split(":", 1)[0]
        groups |= {"system:serviceaccounts", f"system:serviceaccounts:{namespace}"}
    return groups


def _subject_is(subject: Mapping[str, Any], user: str, groups: set[str], binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name", "")
    if kind == "ServiceAccount":
        return user == f"{SERVICE_ACCOUNT_PREFIX}{subject.get('namespace') or binding_namespace}:{name}"
    if kind == "User":
        return bool(user == name)
    if kind == "Group":
        return name in groups
    return False


def _resource_matches(rule_resource: str, resource: str) -> bool:
    if rule_resource in ("*", resource):
        return True
    _, slash, subresource = resource.partition("/")
    return bool(slash) and rule_resource == f"*/{subresource}"


def rule_allows(rule: Mapping[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    """Whether one PolicyRule allows the request (``resource``: ``pods`` or ``pods/log``).

    >>> rule = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}
    >>> rule_allows(rule, "get", "", "pods/log", "p"), rule_allows(rule, "get", "", "pods", "p")
    (True, False)
    """
    names = rule.get("resourceNames") or []
    return (
        any(v in ("*", verb) for v in rule.get("verbs") or [])
        and any(g in ("*", group) for g in rule.get("apiGroups") or [])
        and any(_resource_matches(r, resource) for r in rule.get("resources") or [])
        and (not names or name in names)
    )


def _role_rules(store: Store, ref: Mapping[str, Any], namespace: str) -> list[JsonObj]:
    if ref.get("kind") == "ClusterRole":
        role = store.find(CLUSTERROLE, "", str(ref.get("name", "")))
    else:
        role = store.find(ROLE, namespace, str(ref.get("name", "")))
    return list((role or {}).get("rules") or [])


def bound_rules(store: Store, user: str, namespace: str | None) -> Iterator[JsonObj]:
    """Every rule that applies to ``user`` in ``namespace`` (None: cluster-scoped requests)."""
    groups = groups_of(user)
    yield from BASIC_USER_RULES
    for binding in store.select(CLUSTERROLEBINDING, None):
        if any(_subject_is(s, user, groups, "") for s in binding.get("subjects") or []):
            yield from _role_rules(store, binding.get("roleRef") or {}, "")
    if namespace is None:
        return
    for binding in store.select(ROLEBINDING, namespace):
        if any(_subject_is(s, user, groups, namespace) for s in binding.get("subjects") or []):
            yield from _role_rules(store, binding.get("roleRef") or {}, namespace)


def allows(
    store: Store, user: str, verb: str, group: str, resource: str, namespace: str | None, name: str | None = None
) -> bool:
    """Whether the Roles and bindings in ``store`` let ``user`` make this request."""
    return any(rule_allows(rule, verb, group, resource, name) for rule in bound_rules(store, user, namespace))


__all__ = ["BASIC_USER_RULES", "allows", "bound_rules", "groups_of", "rule_allows"]
