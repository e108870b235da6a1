"""The PersistentVolumeClaims a notebook mounts, seen from its jobs: who else may
mount each (its access modes), what a job does about one other nodes cannot
mount (``kbatch.kubernetes.rwo-home``), and why a job's pod waits to attach one.

Zero to JupyterHub's default home is a ``ReadWriteOnce`` claim: attachable to
one node at a time, so a job's pod on another node hangs in
``ContainerCreating`` ("Multi-Attach error") until the notebook stops. Pure
functions; the claims are read by :mod:`.pod_settings`, the events by the backend.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kbatch_dask.errors import BadInput, KbatchError

RWO_HOME_POLICIES = ("pin", "without", "refuse")
SHARED_MODES = ("ReadWriteMany", "ReadOnlyMany")  # attachable to many nodes at once
# Where the job's pod must run to share a ReadWriteOnce claim: the notebook's node,
# by name (its kubernetes.io/hostname label need not equal it, and reading Nodes
# takes a cluster-wide permission users do not have).
NODE_NAME_FIELD = "metadata.name"
ATTACH_FAILED = "FailedAttachVolume"  # the attach/detach controller's event reason


@dataclass(frozen=True)
class Claim:
    """A PersistentVolumeClaim the notebook container mounts; ``access_modes`` is
    None when the claim could not be read, and ``why_not`` says why."""

    volume: str  # the volume's name in the pod spec
    name: str
    mount_path: str
    access_modes: tuple[str, ...] | None
    why_not: str | None = None

    @property
    def sharing(self) -> str:
        """Which pods may mount it besides the notebook: ``any`` (ReadWriteMany,
        ReadOnlyMany), ``node`` (ReadWriteOnce: pods on the notebook's node; also
        assumed when unknown, as z2jh's default storage is) or ``none``
        (ReadWriteOncePod).

        >>> Claim("home", "claim-a", "/home/jovyan", ("ReadWriteOncePod",)).sharing
        'none'
        """
        modes = self.access_modes or ()
        if any(mode in modes for mode in SHARED_MODES):
            return "any"
        if "ReadWriteOncePod" in modes and "ReadWriteOnce" not in modes:
            return "none"
        return "node"

    def describe(self) -> str:
        """The claim, its access mode and what that means for a second pod."""
        if self.access_modes is None:
            return f"{self.name} (access mode unknown: {self.why_not}; assumed ReadWriteOnce, z2jh's default)"
        modes = ", ".join(self.access_modes) or "no access modes"
        meaning = {
            "any": "any node can mount it",
            "node": "only pods on the notebook's node can mount it",
            "none": "no other pod can mount it while the notebook runs, not even on its node",
        }[self.sharing]
        return f"{self.name} ({modes}: {meaning})"


@dataclass(frozen=True)
class ClaimPlan:
    """What a job does about the notebook's claims that cannot be mounted on any
    node: run on ``node`` (None: anywhere), without the claims ``dropped``."""

    node: str | None = None
    dropped: tuple[Claim, ...] = ()
    warnings: tuple[str, ...] = ()

    def drops(self, volume: str) -> bool:
        return any(c.volume == volume for c in self.dropped)


def pin_to_node(affinity: Mapping[str, Any] | None, node: str) -> dict[str, Any]:
    """``affinity`` with a required node affinity to ``node`` added to each of its
    required terms (they are ORed, so each must carry it), or as the one term.

    >>> pin_to_node(None, "node-a")["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    {'nodeSelectorTerms': [{'matchFields': [{'key': 'metadata.name', 'operator': 'In', 'values': ['node-a']}]}]}
    """
    field = {"key": NODE_NAME_FIELD, "operator": "In", "values": [node]}
    pinned = copy.deepcopy(dict(affinity or {}))
    node_affinity = pinned.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [{**t, "matchFields": [*(t.get("matchFields") or []), field]} for t in terms]
    return pinned


def plan_claims(claims: Iterable[Claim], policy: str, node: str | None) -> ClaimPlan:
    """What a job does about ``claims`` that cannot be mounted on any node, as
    ``kbatch.kubernetes.rwo-home`` (``policy``) says; ``node``: the notebook's.

    - ``pin``: the job runs on the notebook's node, where a ReadWriteOnce claim
      can be mounted by both; a ReadWriteOncePod claim cannot be shared at all,
      so the job runs without it, saying so.
    - ``without``: the job runs anywhere, without those claims, saying so: its
      output is in its pod's log (``kbatch logs``).
    - ``refuse``: BadInput; nothing is submitted.

    >>> rwo = Claim("home", "claim-a", "/home/jovyan", ("ReadWriteOnce",))
    >>> plan_claims([rwo], "pin", "node-a").node
    'node-a'
    """
    if policy not in RWO_HOME_POLICIES:
        allowed = ", ".join(RWO_HOME_POLICIES)
        raise BadInput(f"config kbatch.kubernetes.rwo-home = {policy!r}: expected one of {allowed}")
    unshared = [c for c in claims if c.sharing != "any"]
    if not unshared:
        return ClaimPlan()
    if policy == "refuse":
        raise BadInput(
            f"your volume {unshared[0].describe()}, and kbatch.kubernetes.rwo-home is 'refuse': no job is submitted "
            "from this session; an admin can give you a ReadWriteMany home volume, or set rwo-home to pin or without"
        )
    dropped = tuple(c for c in unshared if c.sharing == "none" or policy == "without")
    warnings = tuple(
        f"the job runs without {c.mount_path}: your volume {c.describe()} (kbatch.kubernetes.rwo-home: {policy}); "
        "the job sees none of its files and writes its output only to its log: read it with `kbatch logs JOB`"
        for c in dropped
    )
    # No node known (a pod not yet bound): nothing to pin to; the claims stay.
    pinned = len(dropped) < len(unshared)
    return ClaimPlan(node if pinned else None, dropped, warnings)


def waiting_to_attach(pod: Mapping[str, Any]) -> bool:
    """True while the pod's container waits in ``ContainerCreating`` (where a
    volume that cannot be attached keeps it)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(((s.get("state") or {}).get("waiting") or {}).get("reason") == "ContainerCreating" for s in statuses)


def attach_errors(events: Iterable[Mapping[str, Any]], pods: Iterable[str]) -> dict[str, str]:
    """The latest ``FailedAttachVolume`` message of each of ``pods``, from Events.

    >>> event = {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "FailedAttachVolume",
    ...          "message": 'Multi-Attach error for volume "pvc-1"', "lastTimestamp": "2026-01-01T00:00:00Z"}
    >>> attach_errors([event], ["p"])
    {'p': 'Multi-Attach error for volume "pvc-1"'}
    """
    wanted, found = set(pods), {}

    def when(event: Mapping[str, Any]) -> str:
        # RFC 3339 times in UTC sort as text.
        return str(event.get("lastTimestamp") or event.get("eventTime") or "")

    for event in sorted(events, key=when):
        involved = event.get("involvedObject") or {}
        if event.get("reason") == ATTACH_FAILED and involved.get("kind") == "Pod" and involved.get("name") in wanted:
            found[str(involved["name"])] = str(event.get("message") or "")
    return found


def read_attach_errors(
    pods: Iterable[Mapping[str, Any]], list_events: Callable[[str], Iterable[Mapping[str, Any]]]
) -> dict[str, str]:
    """:func:`attach_errors` of the ``pods`` waiting in ContainerCreating, from the
    events ``list_events(field_selector)`` returns: one request, made only when
    such a pod exists; nothing when events may not be read (the reason then
    stays ContainerCreating)."""
    waiting = {str(p["metadata"]["name"]) for p in pods if waiting_to_attach(p)}
    if not waiting:
        return {}
    try:
        events = list_events(f"involvedObject.kind=Pod,reason={ATTACH_FAILED}")
    except KbatchError:
        return {}
    return attach_errors(events, waiting)
