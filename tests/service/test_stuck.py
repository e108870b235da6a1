"""Which pending jobs can never start (kbatch_dask/service/stuck.py), pure;
tests/e2e/service/test_stuck.py fails one through the service."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kbatch_dask.backends.kubernetes.status import job_status
from kbatch_dask.records import JobState
from kbatch_dask.service.stuck import stuck

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
TIMEOUT = 600.0


def pod(
    age: float, reason: str | None, *, phase: str = "Pending", message: str = "", name: str = "p"
) -> dict[str, Any]:
    made = (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status: dict[str, Any] = {"phase": phase}
    if reason == "Unschedulable":
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": reason, "message": message}]
    elif reason:
        waiting = {"reason": reason, "message": message}
        status["containerStatuses"] = [{"name": "driver", "state": {"waiting": waiting}}]
    return {"metadata": {"name": name, "creationTimestamp": made}, "status": status}


JOB: dict[str, Any] = {"metadata": {"name": "kbatch-alice-k1", "namespace": "hub"}, "status": {}}


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "Unschedulable"])
def test_a_pod_pending_for_a_fatal_reason_beyond_the_bound_is_stuck_with_that_reason(reason: str) -> None:
    found = stuck(JOB, [pod(601, reason, message="not found")], NOW, TIMEOUT)
    assert found == f"{reason}: not found (pending over kbatch.service.start-timeout, 10:00)"


@pytest.mark.parametrize(
    "pods",
    [
        [pod(599, "ImagePullBackOff")],  # within the bound
        [pod(3600, "ContainerCreating")],  # a slow volume or image: waiting may cure it
        [pod(3600, None, phase="Running")],
        [],  # a suspended Job, waiting for its place in the queue
        [pod(3600, "ImagePullBackOff", name="a"), pod(10, "ImagePullBackOff", name="b")],  # a retry waits anew
    ],
)
def test_what_waiting_may_cure_or_has_not_waited_long_is_not_stuck(pods: list[dict[str, Any]]) -> None:
    assert stuck(JOB, pods, NOW, TIMEOUT) is None


def test_a_job_being_deleted_is_not_stuck_and_shows_failed_once_the_service_recorded_it() -> None:
    deleting = {**JOB, "metadata": {**JOB["metadata"], "deletionTimestamp": "2026-12-01T12:00:00Z"}}
    assert stuck(deleting, [pod(3600, "ErrImagePull")], NOW, TIMEOUT) is None
    assert job_status(deleting, []).state is JobState.CANCELLED
    annotations = {"kbatch-dask.io/state": "FAILED", "kbatch-dask.io/reason": "ErrImagePull: not found"}
    failed = {**deleting, "metadata": {**deleting["metadata"], "annotations": annotations}}
    assert (job_status(failed, []).state, job_status(failed, []).reason) == (JobState.FAILED, "ErrImagePull: not found")
