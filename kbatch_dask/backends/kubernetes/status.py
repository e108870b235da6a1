"""Kubernetes Jobs and their pods, as :class:`~kbatch_dask.records.JobRecord`.

Pure functions over the raw JSON of the API (dicts), so that listing a
thousand jobs never builds client models. The state mapping (DESIGN.md §4):

=========================================================  ===========================
what the API says                                          state (reason)
=========================================================  ===========================
Job condition ``Failed`` with reason ``DeadlineExceeded``  TIMEOUT
Job ``Failed``, container terminated ``OOMKilled``         OOM (memory limit of 2Gi exceeded)
Job ``Failed``, the driver recorded its end                the driver's state, reason
Job ``Failed`` while being deleted, nothing recorded       CANCELLED (killed before its driver could say)
Job ``Failed``, container exit code N                      FAILED (exit code N)
Job ``Failed``, pod failed without a container exit        FAILED (pod reason: Evicted)
Job ``Failed``, no pod left, the driver recorded success   SUCCEEDED (the pod went after the end)
Job ``Failed``, no pod left and nothing recorded           LOST (driver pod vanished)
Job condition ``Complete``                                 SUCCEEDED
Job being deleted, the service recorded FAILED            FAILED (its pod could never start)
Job being deleted                                          CANCELLED
Job suspended by the service's admission                  PENDING (waiting for quota, dependency, held)
Job suspended by the admission, its end recorded           that end (CANCELLED: dependency never satisfied)
Job ``Suspended``, labelled for a Kueue LocalQueue         PENDING (waiting for quota)
Job ``Suspended``                                          PENDING (Suspended)
pod not scheduled / container waiting                      PENDING (Unschedulable, ImagePullBackOff, …)
pod waiting on a volume attached to another node           PENDING (FailedAttachVolume: Multi-Attach error …)
pod failed, retries left                                   PENDING (retrying after …)
no pod, an attempt failed, retries left                    PENDING (retrying after the driver pod vanished)
pod running                                                RUNNING
=========================================================  ===========================
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.claims import ATTACH_FAILED
from kbatch_dask.backends.kubernetes.quantities import parse_cpu, parse_memory
from kbatch_dask.records import DaskInfo, JobRecord, JobState

BACKEND = "kubernetes"
OOM_REASON = "OOMKilled"
VANISHED = "driver pod vanished"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Status:
    """A job's state as far as Kubernetes and its driver tell."""

    state: JobState
    reason: str | None = None
    exit_code: int | None = None


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time of the API (``2026-11-21T21:40:00Z``), timezone-aware.

    >>> parse_time("2026-11-21T21:40:00Z").isoformat()
    '2026-11-21T21:40:00+00:00'
    """
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _condition(job: Mapping[str, Any], *types: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in types and condition.get("status") == "True":
            return dict(condition)
    return None


def latest_pod(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The most recently created pod (the last attempt of a retried job)."""

    def created(pod: Mapping[str, Any]) -> tuple[datetime, str]:
        meta = pod.get("metadata") or {}
        return parse_time(meta.get("creationTimestamp")) or _EPOCH, str(meta.get("name", ""))

    return max(pods, key=created, default=None)


def _driver_state(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The driver container's ``state`` (``waiting``/``running``/``terminated``)."""
    if not pod:
        return {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == m.CONTAINER:
            return dict(status.get("state") or {})
    return dict(statuses[0].get("state") or {}) if statuses else {}


def _number(text: Any) -> float | None:
    """A number from an annotation: an int when whole (as the spec holds it)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return int(value) if value.is_integer() else value


def _int(text: Any) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def _failure(job: Mapping[str, Any], pod: Mapping[str, Any] | None, condition_reason: str | None) -> Status:
    """Why a job (or its last attempt) failed, from the most precise source."""
    terminated = _driver_state(pod).get("terminated") or {}
    exit_code = _int(terminated.get("exitCode"))
    if terminated.get("reason") == OOM_REASON:
        # Read from the pod, not the driver: on cgroup v2 the kernel kills the whole
        # container, the driver with the script, so nothing of its end is recorded.
        limit = _memory_limit(pod)
        return Status(
            JobState.OOM, f"memory limit of {limit} exceeded ({OOM_REASON})" if limit else OOM_REASON, exit_code
        )
    ann = _annotations(job)
    recorded = str(ann.get(names.ANN_STATE, ""))
    if recorded == "SUCCEEDED" and pod is None:
        # The driver recorded its end and the pod went before the Job controller
        # counted it (its node was removed): the record is what is known.
        return Status(JobState.SUCCEEDED, None, 0)
    if recorded in JobState.__members__ and recorded not in ("PENDING", "RUNNING", "SUCCEEDED"):
        code = _int(ann.get(names.ANN_EXIT_CODE))
        return Status(JobState(recorded), ann.get(names.ANN_REASON) or None, code if code is not None else exit_code)
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        # Cancelled before its driver recorded anything (its pod killed as it started):
        # the pod failed of the deletion, whatever the Job controller then concluded.
        return Status(JobState.CANCELLED, "cancelled by user", exit_code)
    if exit_code is not None:
        return Status(JobState.FAILED, f"exit code {exit_code}", exit_code)
    pod_status = (pod or {}).get("status") or {}
    if pod_status.get("reason"):
        return Status(JobState.FAILED, f"pod {pod_status['reason']}: {pod_status.get('message', '')}".rstrip(": "))
    if pod is None:
        return Status(JobState.LOST, VANISHED)
    return Status(JobState.FAILED, condition_reason)


def _memory_limit(pod: Mapping[str, Any] | None) -> str | None:
    """The driver container's memory limit as the pod spec says it (``4Gi``)."""
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        if container.get("name") == m.CONTAINER:
            limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            return str(limit) if limit else None
    return None


def pending_reason(pod: Mapping[str, Any], attach: Mapping[str, str]) -> str | None:
    status = pod.get("status") or {}
    waiting = _driver_state(pod).get("waiting") or {}
    name = str((pod.get("metadata") or {}).get("name", ""))
    if waiting.get("reason") == "ContainerCreating" and name in attach:
        return f"{ATTACH_FAILED}: {attach[name]}"
    if waiting.get("reason"):
        return str(waiting["reason"])
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("reason") or "Unschedulable")
    return None


def job_status(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], attach: Mapping[str, str] | None = None
) -> Status:
    """The :class:`Status` of ``job`` given its pods (pure; see the module's table);
    ``attach``: why pods cannot attach their volumes (:func:`attach_errors`)."""
    pod = latest_pod(pods)
    failed = _condition(job, "Failed", "FailureTarget")
    if failed:
        if failed.get("reason") == "DeadlineExceeded":
            # The Job's deadline is a backstop behind the driver's own limit (see manifests.active_deadline).
            limit = _annotations(job).get(names.ANN_TIME_LIMIT)
            per_attempt = f"the time limit of {limit} s per attempt" if limit else "the time limit"
            reason = f"the Job's deadline passed ({per_attempt} plus kbatch.kubernetes.start-margin)"
            return Status(JobState.TIMEOUT, reason, _int((_driver_state(pod).get("terminated") or {}).get("exitCode")))
        return _failure(job, pod, failed.get("reason"))
    if _condition(job, "Complete", "SuccessCriteriaMet"):
        return Status(JobState.SUCCEEDED, None, 0)
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        ann = _annotations(job)
        if ann.get(names.ANN_STATE) == JobState.FAILED.value and ann.get(names.ANN_REASON):
            # The service failed it (its pod could never start) and deletes it.
            return Status(JobState.FAILED, str(ann[names.ANN_REASON]))
        return Status(JobState.CANCELLED, "cancelled by user")
    ann = _annotations(job)
    if (job.get("spec") or {}).get("suspend") and names.ANN_QUEUE_ORDER in ann:
        return _queued(ann)
    if _condition(job, "Suspended"):
        queued = ((job.get("metadata") or {}).get("labels") or {}).get(m.KUEUE_QUEUE_LABEL)
        return Status(JobState.PENDING, "waiting for quota" if queued else "Suspended")
    if pod is None:
        retrying = _int((job.get("status") or {}).get("failed"))
        return Status(JobState.PENDING, f"retrying after the {VANISHED}" if retrying else None)
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Running":
        return Status(JobState.RUNNING)
    if phase == "Succeeded":
        return Status(JobState.SUCCEEDED, None, 0)
    if phase == "Failed":
        outcome = _failure(job, pod, None)
        attempts = _int((job.get("status") or {}).get("failed")) or 1
        if attempts <= (_int((job.get("spec") or {}).get("backoffLimit")) or 0):
            return Status(JobState.PENDING, f"retrying after {outcome.reason or 'a failure'}")
        return outcome
    if phase == "Unknown":
        return Status(JobState.RUNNING, "node not responding")
    return Status(JobState.PENDING, pending_reason(pod, attach or {}))


def _queued(ann: Mapping[str, str]) -> Status:
    """A Job the service keeps suspended: waiting (its reason), or ended before it
    started (a dependency that can never be met: the service recorded the end)."""
    recorded = str(ann.get(names.ANN_STATE, ""))
    if recorded in JobState.__members__ and JobState(recorded).is_terminal():
        return Status(JobState(recorded), ann.get(names.ANN_REASON) or None)
    return Status(JobState.PENDING, ann.get(names.ANN_PENDING_REASON) or "waiting for quota")


def _started(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> datetime | None:
    recorded = parse_time(_annotations(job).get(names.ANN_STARTED))
    if recorded:
        return recorded
    state = _driver_state(pod)
    return parse_time((state.get("running") or state.get("terminated") or {}).get("startedAt"))


def _finished(job: Mapping[str, Any], pod: Mapping[str, Any] | None) -> datetime | None:
    recorded = parse_time(_annotations(job).get(names.ANN_FINISHED))
    if recorded:
        return recorded
    condition = _condition(job, "Failed", "FailureTarget", "Complete", "SuccessCriteriaMet")
    candidates = (
        (condition or {}).get("lastTransitionTime"),
        (job.get("status") or {}).get("completionTime"),
        (_driver_state(pod).get("terminated") or {}).get("finishedAt"),
    )
    return next(filter(None, map(parse_time, candidates)), None)


def job_record(
    job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], attach: Mapping[str, str] | None = None
) -> JobRecord:
    """The :class:`JobRecord` of a Job (raw API JSON) and its pods (``attach``: as
    for :func:`job_status`)."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = _annotations(job)
    pod = latest_pod(pods)
    status = job_status(job, pods, attach)
    try:
        args = tuple(str(a) for a in json.loads(ann.get(names.ANN_ARGS) or "[]"))
    except ValueError:
        args = ()
    workers = ann.get(names.ANN_WORKERS)
    return JobRecord(
        id=labels.get(names.LABEL_JOB_ID) or str(meta.get("name", "")),
        name=ann.get(names.ANN_NAME) or str(meta.get("name", "")),
        user=ann.get(names.ANN_USER) or labels.get(names.LABEL_USER, ""),
        backend=BACKEND,
        state=status.state,
        reason=status.reason,
        exit_code=status.exit_code,
        submitted=parse_time(ann.get(names.ANN_SUBMITTED)) or parse_time(meta.get("creationTimestamp")) or _EPOCH,
        started=_started(job, pod),
        finished=_finished(job, pod) if status.state.is_terminal() else None,
        script=ann.get(names.ANN_SCRIPT, ""),
        args=args,
        output=ann.get(names.ANN_OUTPUT) or None,
        comment=ann.get(names.ANN_COMMENT) or None,
        host=str((pod.get("metadata") or {}).get("name")) if pod else None,
        dask=DaskInfo(
            workers,
            cluster=ann.get(names.ANN_CLUSTER),
            dashboard=ann.get(names.ANN_DASHBOARD),
            worker_cores=_number(ann.get(names.ANN_WORKER_CORES)),
            worker_memory=_int(ann.get(names.ANN_WORKER_MEMORY)),
            worker_limit=_int(ann.get(names.ANN_WORKER_LIMIT)),
        )
        if workers
        else None,
        owned_clusters=tuple(filter(None, (ann.get(names.ANN_OWNED_CLUSTERS) or "").split(","))),
        error=ann.get(names.ANN_ERROR) or None,
        workdir=ann.get(names.ANN_WORKDIR) or None,
        time_limit=_int(ann.get(names.ANN_TIME_LIMIT)),
        notebook_output=ann.get(names.ANN_NOTEBOOK_OUTPUT) or None,
        attempt=attempt(job, status.state),
        dependency=ann.get(names.ANN_DEPENDENCY) or None,
        **requested(job),
    )


def requested(job: Mapping[str, Any]) -> dict[str, Any]:
    """What the Job's driver container asks for: ``cpus``, ``memory`` (bytes), ``gpus``.

    >>> c = {"name": m.CONTAINER, "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
    >>> requested({"spec": {"template": {"spec": {"containers": [c]}}}})
    {'cpus': 0.5, 'memory': 1073741824, 'gpus': 0}
    """
    template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
    for container in template.get("containers") or []:
        if container.get("name") == m.CONTAINER:
            resources = container.get("resources") or {}
            asked, limits = resources.get("requests") or {}, resources.get("limits") or {}
            return {
                "cpus": parse_cpu(asked.get("cpu")),
                "memory": parse_memory(asked.get("memory")),
                "gpus": _int(limits.get(m.GPU_RESOURCE)) or 0,
            }
    return {"cpus": None, "memory": None, "gpus": None}


def attempt(job: Mapping[str, Any], state: JobState) -> int:
    """Which run of the Job this is: one more than the pods that failed, except
    when the job ended by a failure (then the last failed pod was the last run).

    >>> attempt({"status": {"failed": 1, "active": 1}}, JobState.RUNNING)
    2
    >>> attempt({"status": {"failed": 3}}, JobState.FAILED)
    3
    """
    failed = _int((job.get("status") or {}).get("failed")) or 0
    ended_failing = state in (JobState.FAILED, JobState.OOM, JobState.TIMEOUT, JobState.LOST)
    return failed if ended_failing and failed else failed + 1


def pods_by_job(pods: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Pods grouped by their job id label."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        job_id = ((pod.get("metadata") or {}).get("labels") or {}).get(names.LABEL_JOB_ID)
        if job_id:
            grouped.setdefault(job_id, []).append(pod)
    return grouped


def disruption(pod: Mapping[str, Any]) -> str | None:
    """The reason of ``pod``'s ``DisruptionTarget`` condition, or None.

    >>> disruption({"status": {"conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "Evicted"}]}})
    'Evicted'
    """
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            return str(condition.get("reason") or "DisruptionTarget")
    return None
