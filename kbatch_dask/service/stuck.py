"""Jobs that can never start: failed fast instead of holding a user's quota.

A driver pod pending longer than ``kbatch.service.start-timeout`` for a reason
that waiting does not cure — its image cannot be pulled or named, or no node
can take it — ends its job ``FAILED`` with that reason: the service records
the end on the Job (the annotations a driver's ``finished`` event writes),
revokes the job's hub token and deletes the Job (its pods, Secret and
ConfigMap go with it). Found from the watch cache's Jobs and pods, so looking
costs no API request; only an end found makes some.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.status import latest_pod, parse_time, pending_reason
from kbatch_dask.errors import KubeError
from kbatch_dask.records import JobState
from kbatch_dask.spec.units import format_duration

log = logging.getLogger("kbatch_dask.service.stuck")

# Waiting reasons that waiting does not cure (kubelet's image-pull errors; the
# scheduler's). ContainerCreating, a volume's attach and CrashLoop are not here.
FATAL = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "Unschedulable"})


@dataclass(frozen=True)
class Stuck:
    """A Job whose pod will not start, and why."""

    job: Mapping[str, Any]
    reason: str


def stuck(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], now: datetime, timeout: float) -> str | None:
    """Why ``job`` can never start, if its latest pod has been pending for a fatal
    reason for more than ``timeout`` seconds since that pod was made (a retry's
    pod starts its own wait; a suspended, queued Job has none)."""
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return None
    pod = latest_pod(pods)
    if pod is None or (pod.get("status") or {}).get("phase") != "Pending":
        return None
    reason = pending_reason(pod, {})
    made = parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
    if reason is None or made is None or reason.split(":", 1)[0] not in FATAL:
        return None
    if (now - made).total_seconds() <= timeout:
        return None
    message = _waiting_message(pod)
    waited = format_duration(int(timeout))
    return f"{reason}{': ' + message if message else ''} (pending over kbatch.service.start-timeout, {waited})"


def _waiting_message(pod: Mapping[str, Any]) -> str:
    """The kubelet's or scheduler's own words about the wait, if any."""
    status = pod.get("status") or {}
    for container in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("message"):
            return str(waiting["message"])
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("message"):
            return str(condition["message"])
    return ""


def find(
    jobs: Iterable[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]], now: datetime, timeout: float
) -> list[Stuck]:
    """The stuck ones among ``(Job, its pods)`` pairs."""
    found = []
    for job, pods in jobs:
        reason = stuck(job, pods, now, timeout)
        if reason:
            found.append(Stuck(job, reason))
    return found


def fail(api: KubeAPI, found: Stuck) -> bool:
    """Record the end on the Job and delete it (Foreground: its pods go first, so
    the queue shows the job FAILED until it is gone); False if it went meanwhile."""
    meta = found.job.get("metadata") or {}
    namespace, name = str(meta["namespace"]), str(meta["name"])
    patch = {"metadata": {"annotations": {names.ANN_STATE: JobState.FAILED.value, names.ANN_REASON: found.reason}}}
    try:
        api.patch_job(namespace, name, patch)
        api.delete_job(namespace, name, "Foreground")
    except KubeError as exc:
        if exc.status == 404:
            return False
        raise
    user = (meta.get("annotations") or {}).get(names.ANN_USER)
    job_id = (meta.get("labels") or {}).get(names.LABEL_JOB_ID)
    log.info("job %s can never start, failed: %s", job_id, found.reason, extra={"user": user, "job": job_id})
    return True
