"""The job's outcome from why it stopped and the runner's return code."""

from __future__ import annotations

import pytest

from kbatch_dask.driver.ending import Outcome, Stop, StopReason, outcome
from kbatch_dask.records import JobState

FAILED, TIMEOUT, CANCELLED = JobState.FAILED, JobState.TIMEOUT, JobState.CANCELLED


@pytest.mark.parametrize(
    ("stop", "returncode", "expected"),
    [
        (StopReason(Stop.SCRIPT_ENDED), 0, Outcome(JobState.SUCCEEDED, 0, None)),
        (StopReason(Stop.SCRIPT_ENDED), 4, Outcome(FAILED, 4, "exit code 4")),
        (StopReason(Stop.SCRIPT_ENDED), -9, Outcome(FAILED, 137, "killed by signal 9 (SIGKILL)")),
        (StopReason(Stop.SIGNALLED, "SIGTERM"), -15, Outcome(FAILED, 143, "driver received SIGTERM")),
        (StopReason(Stop.SIGNALLED, "SIGINT"), None, Outcome(FAILED, None, "driver received SIGINT")),
        (StopReason(Stop.SIGNALLED, "SIGTERM"), 0, Outcome(FAILED, 0, "driver received SIGTERM")),
        (StopReason(Stop.CANCELLED), -15, Outcome(CANCELLED, 143, "cancelled by user")),
        (StopReason(Stop.CANCELLED), None, Outcome(CANCELLED, None, "cancelled by user")),
        (StopReason(Stop.TIME_LIMIT, "300"), -9, Outcome(TIMEOUT, 137, "time limit of 300 s reached")),
        (StopReason(Stop.TIME_LIMIT, "300"), 0, Outcome(TIMEOUT, 0, "time limit of 300 s reached")),
        (
            StopReason(Stop.CLUSTER_LOST, "the Dask cluster c stopped"),
            -15,
            Outcome(FAILED, 143, "the Dask cluster c stopped"),
        ),
        (StopReason(Stop.GATEWAY_ERROR, "the gateway refused"), None, Outcome(FAILED, None, "the gateway refused")),
        (StopReason(Stop.DRIVER_ERROR, "OSError(5)"), None, Outcome(FAILED, None, "driver error: OSError(5)")),
        (StopReason(Stop.DRIVER_ERROR), None, Outcome(FAILED, None, "driver error")),
    ],
    ids=lambda v: v.kind.name if isinstance(v, StopReason) else None,
)
def test_outcome(stop: StopReason, returncode: int | None, expected: Outcome) -> None:
    assert outcome(stop, returncode) == expected
