"""Nodes and volume attachment for the fake kubelet: where a pod may run, and
whether its claims can be attached there.

The parts of Kubernetes that decide this, reduced to what kbatch-dask meets on
a Zero to JupyterHub cluster:

* **Scheduling** (kube-scheduler): a pod's ``spec.nodeName`` wins; else the
  nodes its *required* node affinity allows (``nodeSelectorTerms`` ORed, their
  ``matchExpressions`` on node labels and ``matchFields`` on ``metadata.name``
  ANDed; every node carries ``kubernetes.io/hostname: <name>``), the least
  loaded first (fewest unfinished pods bound to it, then the order given), as
  the default ``LeastAllocated`` scoring spreads pods. ``nodeSelector`` and
  preferred affinity are ignored: the fake's nodes carry no other labels. A
  ``ReadWriteOncePod`` claim in use by another pod makes the pod unschedulable,
  as the scheduler's VolumeRestrictions plugin does.
* **Attachment** (the attach/detach controller): a ``ReadWriteOnce`` claim
  (without ``ReadWriteMany`` / ``ReadOnlyMany``) can be attached to one node at
  a time; a pod on another node waits in ``ContainerCreating`` with a
  ``FailedAttachVolume`` event carrying Kubernetes' "Multi-Attach error"
  message until every pod using it there has finished or gone. Pods on the
  same node share it, as RWO allows.

Access modes are read from the claim's ``status.accessModes`` once bound, else
``spec.accessModes``. A claim with no PersistentVolumeClaim object on the
server has no attach rules here (Kubernetes would keep the pod Pending); tests
that only map a directory keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .resources import POD, PVC
from .store import JsonObj, Store

HOSTNAME_LABEL = "kubernetes.io/hostname"
SHARED_MODES = ("ReadWriteMany", "ReadOnlyMany")


@dataclass(frozen=True)
class Placement:
    """Where the scheduler puts a pod: a node, or None and the scheduler's message."""

    node: str | None
    message: str = ""


def node_labels(name: str) -> dict[str, str]:
    return {HOSTNAME_LABEL: name}


def _expression_holds(expression: Mapping[str, Any], value: str | None) -> bool:
    operator, values = expression.get("operator"), [str(v) for v in expression.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    return False  # Gt/Lt on labels the fake's nodes do not have


def _term_holds(term: Mapping[str, Any], node: str) -> bool:
    labels = node_labels(node)
    fields = {"metadata.name": node}
    return all(_expression_holds(e, labels.get(str(e.get("key")))) for e in term.get("matchExpressions") or []) and all(
        _expression_holds(e, fields.get(str(e.get("key")))) for e in term.get("matchFields") or []
    )


def affinity_allows(spec: Mapping[str, Any], node: str) -> bool:
    """Whether the pod spec's required node affinity lets it run on ``node``."""
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    return not terms or any(_term_holds(term, node) for term in terms)


def claim_names(spec: Mapping[str, Any]) -> list[str]:
    return [
        str(v["persistentVolumeClaim"]["claimName"]) for v in spec.get("volumes") or [] if "persistentVolumeClaim" in v
    ]


def access_modes(claim: Mapping[str, Any]) -> tuple[str, ...]:
    """The claim's access modes: the bound volume's, else the requested ones."""
    status_modes = (claim.get("status") or {}).get("accessModes")
    return tuple(status_modes or (claim.get("spec") or {}).get("accessModes") or ())


def _holders(store: Store, namespace: str, claim: str, pod_name: str) -> list[JsonObj]:
    """Other unfinished pods that use the claim (they hold its attachment)."""
    return [
        p
        for p in store.select(POD, namespace)
        if p["metadata"]["name"] != pod_name
        and claim in claim_names(p.get("spec") or {})
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        and (p.get("spec") or {}).get("nodeName")
    ]


def _load(store: Store, node: str) -> int:
    return sum(
        1
        for p in store.select(POD, None)
        if (p.get("spec") or {}).get("nodeName") == node
        and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
    )


def schedule(store: Store, pod: JsonObj, nodes: Sequence[str]) -> Placement:
    """The node the scheduler binds ``pod`` to, or why there is none."""
    spec, meta = pod.get("spec") or {}, pod["metadata"]
    total = len(nodes)
    preemption = f"preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
    for claim_name in claim_names(spec):
        claim = store.find(PVC, meta["namespace"], claim_name)
        in_use = claim is not None and _holders(store, meta["namespace"], claim_name, meta["name"])
        if in_use and "ReadWriteOncePod" in access_modes(claim or {}):
            return Placement(
                None,
                f"0/{total} nodes are available: {total} node has pod using PersistentVolumeClaim with the same "
                f"name and ReadWriteOncePod access mode. {preemption}",
            )
    allowed = [n for n in nodes if affinity_allows(spec, n)]
    if not allowed:
        return Placement(
            None,
            f"0/{total} nodes are available: {total} node(s) didn't match Pod's node affinity/selector. {preemption}",
        )
    return Placement(min(allowed, key=lambda n: (_load(store, n), nodes.index(n))))


def multi_attach_error(store: Store, pod: JsonObj) -> str | None:
    """Kubernetes' "Multi-Attach error" message when one of the pod's
    ReadWriteOnce claims is attached to another node, else None."""
    meta, node = pod["metadata"], (pod.get("spec") or {}).get("nodeName")
    for claim_name in claim_names(pod.get("spec") or {}):
        claim = store.find(PVC, meta["namespace"], claim_name)
        modes = access_modes(claim) if claim is not None else ()
        if "ReadWriteOnce" not in modes or any(m in modes for m in SHARED_MODES):
            continue
        elsewhere = [
            h for h in _holders(store, meta["namespace"], claim_name, meta["name"]) if h["spec"]["nodeName"] != node
        ]
        if elsewhere:
            volume = (claim or {}).get("spec", {}).get("volumeName") or claim_name
            users = ", ".join(sorted(h["metadata"]["name"] for h in elsewhere))
            return f'Multi-Attach error for volume "{volume}" Volume is already used by pod(s) {users}'
    return None


def pods_on(store: Store, node: str) -> Iterable[JsonObj]:
    """Every pod bound to ``node``, in any namespace."""
    return [p for p in store.select(POD, None) if (p.get("spec") or {}).get("nodeName") == node]
