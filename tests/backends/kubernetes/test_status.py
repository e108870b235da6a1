"""Kubernetes Jobs and pods → job states (DESIGN.md §4), as a table of cases."""

from __future__ import annotations

from typing import Any

import pytest

from kbatch_dask.backends.kubernetes.claims import attach_errors
from kbatch_dask.backends.kubernetes.status import (
    Status,
    job_record,
    job_status,
    latest_pod,
    parse_time,
    pods_by_job,
)
from kbatch_dask.records import JobState

T0 = "2026-11-21T21:40:00Z"
T1 = "2026-11-21T21:41:00Z"
T2 = "2026-11-21T21:45:00Z"


def job(*conditions: tuple[str, str], annotations: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {
            "name": "kbatch-alice-k3x9q",
            "namespace": "hub",
            "creationTimestamp": T0,
            "labels": {"kbatch-dask.io/job-id": "k3x9q", "kbatch-dask.io/user": "alice"},
            "annotations": {
                "kbatch-dask.io/name": "train",
                "kbatch-dask.io/user": "alice",
                "kbatch-dask.io/script": "/home/alice/train.py",
                "kbatch-dask.io/submitted": "2026-11-21T21:40:00+00:00",
                "kbatch-dask.io/time-limit": "600",
                **(annotations or {}),
            },
        },
        "spec": {"backoffLimit": extra.pop("backoff", 0)},
        "status": {
            "conditions": [{"type": t, "status": "True", "reason": r, "lastTransitionTime": T2} for t, r in conditions],
            **extra,
        },
    }
    return obj


def labelled(obj: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {**obj, "metadata": {**meta, "labels": {**meta["labels"], **labels}}}


def pod(phase: str, state: dict[str, Any] | None = None, created: str = T0, **status: Any) -> dict[str, Any]:
    container = {"name": "driver", "state": state or {}}
    return {
        "metadata": {"name": f"kbatch-alice-k3x9q-{created[-3:-1]}", "creationTimestamp": created,
                     "labels": {"kbatch-dask.io/job-id": "k3x9q"}},
        "status": {"phase": phase, "containerStatuses": [container], **status},
    }  # fmt: skip


def terminated(code: int, reason: str = "Error") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": reason, "startedAt": T1, "finishedAt": T2}}


def waiting(reason: str) -> dict[str, Any]:
    return {"waiting": {"reason": reason}}


DRIVER_CANCELLED = {
    "kbatch-dask.io/state": "CANCELLED",
    "kbatch-dask.io/reason": "cancelled by user",
    "kbatch-dask.io/exit-code": "143",
}
DEADLINE = "the Job's deadline passed (the time limit of 600 s per attempt plus kbatch.kubernetes.start-margin)"
QUEUED = {"kueue.x-k8s.io/queue-name": "team-a"}
UNSCHEDULABLE = {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}


def in_service_queue(annotations: dict[str, str], suspended: bool = True) -> dict[str, Any]:
    """A Job of the service's queue (service/admission.py): suspended, with its place and reason."""
    conditions = [("Suspended", "JobSuspended")] if suspended else []  # resumed: the condition is False
    obj = job(*conditions, annotations={"kbatch-dask.io/queue-order": "1", **annotations})
    obj["spec"]["suspend"] = suspended
    return obj


NEVER = {
    "kbatch-dask.io/state": "CANCELLED",
    "kbatch-dask.io/reason": "dependency never satisfied",
    "kbatch-dask.io/finished": "2026-11-21T21:45:00+00:00",
}

CASES: list[tuple[str, dict[str, Any], list[dict[str, Any]], Status]] = [
    ("no pod yet", job(), [], Status(JobState.PENDING)),
    ("in the service's queue", in_service_queue({"kbatch-dask.io/pending-reason": "dependency"}), [],
     Status(JobState.PENDING, "dependency")),
    ("queued, no reason written yet", in_service_queue({}), [], Status(JobState.PENDING, "waiting for quota")),
    ("ended in the service's queue", in_service_queue(NEVER), [],
     Status(JobState.CANCELLED, "dependency never satisfied")),
    ("resumed by the service", in_service_queue({}, suspended=False), [pod("Running", {"running": {"startedAt": T1}})],
     Status(JobState.RUNNING)),
    ("suspended", job(("Suspended", "JobSuspended")), [], Status(JobState.PENDING, "Suspended")),
    ("queued in kueue", labelled(job(("Suspended", "JobSuspended")), QUEUED), [],
     Status(JobState.PENDING, "waiting for quota")),
    ("admitted by kueue", labelled(job(), QUEUED), [pod("Running", {"running": {"startedAt": T1}})],
     Status(JobState.RUNNING)),
    ("unschedulable", job(), [pod("Pending", **UNSCHEDULABLE)], Status(JobState.PENDING, "Unschedulable")),
    ("image pull", job(), [pod("Pending", waiting("ImagePullBackOff"))], Status(JobState.PENDING, "ImagePullBackOff")),
    ("creating", job(), [pod("Pending", waiting("ContainerCreating"))], Status(JobState.PENDING, "ContainerCreating")),
    ("running", job(), [pod("Running", {"running": {"startedAt": T1}})], Status(JobState.RUNNING)),
    ("node lost", job(), [pod("Unknown")], Status(JobState.RUNNING, "node not responding")),
    ("complete", job(("Complete", "")), [pod("Succeeded", terminated(0, "Completed"))],
     Status(JobState.SUCCEEDED, None, 0)),
    ("complete, pod gone", job(("Complete", "")), [], Status(JobState.SUCCEEDED, None, 0)),
    ("pod succeeded first", job(), [pod("Succeeded", terminated(0, "Completed"))], Status(JobState.SUCCEEDED, None, 0)),
    ("exit code", job(("Failed", "BackoffLimitExceeded")), [pod("Failed", terminated(3))],
     Status(JobState.FAILED, "exit code 3", 3)),
    ("oom", job(("Failed", "BackoffLimitExceeded")), [pod("Failed", terminated(137, "OOMKilled"))],
     Status(JobState.OOM, "OOMKilled", 137)),
    ("oom before job condition", job(), [pod("Failed", terminated(137, "OOMKilled"))],
     Status(JobState.OOM, "OOMKilled", 137)),
    ("oom names the limit", job(("Failed", "BackoffLimitExceeded")),
     [{**pod("Failed", terminated(137, "OOMKilled")),
       "spec": {"containers": [{"name": "driver", "resources": {"limits": {"memory": "2Gi"}}}]}}],
     Status(JobState.OOM, "memory limit of 2Gi exceeded (OOMKilled)", 137)),
    ("deadline", job(("Failed", "DeadlineExceeded")), [pod("Failed", terminated(143))],
     Status(JobState.TIMEOUT, DEADLINE, 143)),
    ("deadline, pod gone", job(("Failed", "DeadlineExceeded")), [],
     Status(JobState.TIMEOUT, DEADLINE)),
    ("failure target", job(("FailureTarget", "DeadlineExceeded")), [pod("Running")],
     Status(JobState.TIMEOUT, DEADLINE)),
    ("driver recorded its end", job(("Failed", "BackoffLimitExceeded"), annotations=DRIVER_CANCELLED),
     [pod("Failed", terminated(143))], Status(JobState.CANCELLED, "cancelled by user", 143)),
    ("evicted", job(("Failed", "BackoffLimitExceeded")), [pod("Failed", reason="Evicted", message="low on memory")],
     Status(JobState.FAILED, "pod Evicted: low on memory")),
    ("vanished", job(("Failed", "BackoffLimitExceeded")), [], Status(JobState.LOST, "driver pod vanished")),
    ("vanished after the driver recorded success", job(("Failed", "BackoffLimitExceeded"),
     annotations={"kbatch-dask.io/state": "SUCCEEDED", "kbatch-dask.io/exit-code": "0"}), [],
     Status(JobState.SUCCEEDED, None, 0)),
    ("recorded success, pod failed after", job(("Failed", "BackoffLimitExceeded"),
     annotations={"kbatch-dask.io/state": "SUCCEEDED"}), [pod("Failed", terminated(2))],
     Status(JobState.FAILED, "exit code 2", 2)),
    ("vanished, retrying", job(backoff=2, failed=1, active=1), [],
     Status(JobState.PENDING, "retrying after the driver pod vanished")),
    ("being deleted", {**job(), "metadata": {**job()["metadata"], "deletionTimestamp": T2}}, [pod("Running")],
     Status(JobState.CANCELLED, "cancelled by user")),
    # A cancel before the driver could record anything (its pod killed as it started):
    # the pod's failure is the deletion's, whatever the Job controller concluded.
    ("being deleted, its pod failed unrecorded",
     {**job(("Failed", "BackoffLimitExceeded")), "metadata": {**job()["metadata"], "deletionTimestamp": T2}},
     [pod("Failed", terminated(143))], Status(JobState.CANCELLED, "cancelled by user", 143)),
    ("being deleted, no pod left, unrecorded",
     {**job(("Failed", "BackoffLimitExceeded")), "metadata": {**job()["metadata"], "deletionTimestamp": T2}},
     [], Status(JobState.CANCELLED, "cancelled by user")),
    ("retrying", job(backoff=2, failed=1), [pod("Failed", terminated(1))],
     Status(JobState.PENDING, "retrying after exit code 1")),
    ("retry running", job(backoff=2, failed=1),
     [pod("Failed", terminated(1)), pod("Running", {"running": {}}, created=T1)], Status(JobState.RUNNING)),
    ("retries used up", job(backoff=1, failed=2), [pod("Failed", terminated(1))],
     Status(JobState.FAILED, "exit code 1", 1)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "job_obj", "pods", "expected"), CASES, ids=[c[0] for c in CASES])
def test_state_mapping(case: str, job_obj: dict[str, Any], pods: list[dict[str, Any]], expected: Status) -> None:
    assert job_status(job_obj, pods) == expected


def test_record_of_a_running_job_with_a_cluster() -> None:
    obj = job(
        annotations={
            "kbatch-dask.io/workers": "2:10",
            "kbatch-dask.io/args": '["--epochs", "3"]',
            "kbatch-dask.io/cluster": "abc123",
            "kbatch-dask.io/dashboard": "http://gw/clusters/abc123/status",
            "kbatch-dask.io/started": "2026-11-21T21:40:30+00:00",
            "kbatch-dask.io/output": "/home/alice/kbatch-k3x9q.out",
            "kbatch-dask.io/owned-clusters": "own1,own2",
            "kbatch-dask.io/error": "/home/alice/kbatch-k3x9q.err",
            "kbatch-dask.io/workdir": "/home/alice",
            "kbatch-dask.io/time-limit": "3600",
            "kbatch-dask.io/worker-cores": "1.5",
            "kbatch-dask.io/worker-memory": "4000000000",
            "kbatch-dask.io/dependency": "afterok:m7p2r",
        }
    )
    record = job_record(obj, [pod("Running", {"running": {"startedAt": T1}})])
    assert record.to_dict() == {
        "id": "k3x9q",
        "name": "train",
        "user": "alice",
        "backend": "kubernetes",
        "state": "RUNNING",
        "reason": None,
        "exit_code": None,
        "submitted": "2026-11-21T21:40:00+00:00",
        "started": "2026-11-21T21:40:30+00:00",
        "finished": None,
        "script": "/home/alice/train.py",
        "args": ["--epochs", "3"],
        "output": "/home/alice/kbatch-k3x9q.out",
        "comment": None,
        "host": "kbatch-alice-k3x9q-00",
        "pid": None,
        "dask": {
            "workers": "2:10",
            "cluster": "abc123",
            "cluster_status": None,
            "live_workers": None,
            "dashboard": "http://gw/clusters/abc123/status",
            "worker_cores": 1.5,
            "worker_memory": 4000000000,
            "worker_limit": None,
        },
        "owned_clusters": ["own1", "own2"],
        "error": "/home/alice/kbatch-k3x9q.err",
        "workdir": "/home/alice",
        "time_limit": 3600,
        "notebook_output": None,
        "attempt": 1,
        "cpus": None,
        "memory": None,
        "gpus": None,
        "dependency": "afterok:m7p2r",
    }


def test_record_times_come_from_the_api_when_the_driver_recorded_none() -> None:
    record = job_record(job(("Failed", "BackoffLimitExceeded")), [pod("Failed", terminated(3))])
    assert record.started == parse_time(T1)
    assert record.finished == parse_time(T2)
    assert record.dask is None


def test_latest_pod_and_grouping() -> None:
    old, new = pod("Failed", created=T0), pod("Running", created=T1)
    assert latest_pod([new, old]) is new
    assert latest_pod([]) is None
    assert pods_by_job([old, new, {"metadata": {}}]) == {"k3x9q": [old, new]}


def test_a_pod_waiting_on_a_volume_attached_elsewhere_says_so() -> None:
    creating = pod("Pending", waiting("ContainerCreating"))
    name = creating["metadata"]["name"]
    message = 'Multi-Attach error for volume "pvc-1" Volume is already used by pod(s) jupyter-alice'

    def event(pod_name: str, reason: str, text: str, when: str) -> dict[str, Any]:
        involved = {"kind": "Pod", "name": pod_name}
        return {"involvedObject": involved, "reason": reason, "message": text, "lastTimestamp": when}

    events = [
        event(name, "FailedAttachVolume", "an older attempt", T0),
        event(name, "FailedAttachVolume", message, T1),
        event(name, "FailedMount", "Unable to attach or mount volumes", T2),
        event("someone-else", "FailedAttachVolume", "not ours", T2),
    ]
    attach = attach_errors(events, [name])
    assert attach == {name: message}
    assert job_status(job(), [creating], attach) == Status(JobState.PENDING, f"FailedAttachVolume: {message}")
    assert job_record(job(), [creating], attach).reason == f"FailedAttachVolume: {message}"
    running = pod("Running", {"running": {"startedAt": T1}})
    assert job_status(job(), [running], {running["metadata"]["name"]: message}) == Status(JobState.RUNNING)


def test_a_cluster_the_gateway_capped_shows_what_it_gives() -> None:
    """The driver annotates the gateway's cap; the queue shows it instead of waiting for ever on 8/20."""
    from kbatch_dask.render import workers_cell

    annotations = {
        "kbatch-dask.io/workers": "20",
        "kbatch-dask.io/cluster": "abc123",
        "kbatch-dask.io/worker-limit": "8",
    }
    record = job_record(job(annotations=annotations), [pod("Running", {"running": {"startedAt": T1}})])
    assert record.dask is not None and record.dask.worker_limit == 8
    assert workers_cell(record.replace(dask=record.dask.replace(live_workers=8))) == "8/8 (capped from 20)"
