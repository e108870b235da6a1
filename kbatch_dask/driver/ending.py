"""How a job ends: why it stopped (:class:`StopReason`) and what that makes of it
(:func:`outcome`, the job's final state, exit code and reason).

The supervisor records one stop reason, the first cause of the job's end, and
computes the outcome from it and the runner's return code once, at the end.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass

from kbatch_dask.records import JobState


class Stop(enum.Enum):
    """Why a job stops."""

    SCRIPT_ENDED = "script ended"  # the user's code ended by itself
    SIGNALLED = "signalled"  # the driver got SIGTERM or SIGINT (detail: the signal's name)
    CANCELLED = "cancelled"  # the user asked for it (``kbatch cancel``)
    DISRUPTED = "disrupted"  # the pod was evicted or preempted; Kubernetes replaces it (detail: its reason)
    FAILURE_REQUESTED = "failure requested"  # stopped on purpose, to fail (detail: why, e.g. the gateway's stop)
    TIME_LIMIT = "time limit"  # the job's time limit passed (detail: the limit in seconds)
    MEMORY_LIMIT = "memory limit"  # the job's code used more than --memory (detail: the limit, as a size)
    CLUSTER_LOST = "cluster lost"  # the job's cluster stopped under it (detail: how)
    GATEWAY_ERROR = "gateway error"  # the gateway could not give the job its cluster (detail: its error)
    OUTPUT_ERROR = "output error"  # the output or error file cannot be written (detail: which, and why)
    DRIVER_ERROR = "driver error"  # the driver itself failed (detail: the exception, when known)


@dataclass(frozen=True)
class StopReason:
    kind: Stop
    detail: str | None = None


@dataclass(frozen=True)
class Outcome:
    state: JobState
    exit_code: int | None
    reason: str | None


def outcome(stop: StopReason, returncode: int | None) -> Outcome:
    """The job's final state, exit code and reason.

    ``returncode`` is the runner's as ``subprocess`` gives it (``-N`` when signal
    N killed it), None when it never started or never ended; a signal's exit
    code is 128 + N, as a shell reports it.

    >>> outcome(StopReason(Stop.SCRIPT_ENDED), 0)
    Outcome(state=<JobState.SUCCEEDED: 'SUCCEEDED'>, exit_code=0, reason=None)
    >>> outcome(StopReason(Stop.TIME_LIMIT, "60"), -15)
    Outcome(state=<JobState.TIMEOUT: 'TIMEOUT'>, exit_code=143, reason='time limit of 60 s reached')
    """
    exit_code = None if returncode is None else 128 - returncode if returncode < 0 else returncode
    kind, detail = stop.kind, stop.detail
    if kind is Stop.SCRIPT_ENDED:
        assert returncode is not None  # the runner ended: its code is known
        if returncode == 0:
            return Outcome(JobState.SUCCEEDED, 0, None)
        if returncode < 0:
            name = signal.Signals(-returncode).name
            return Outcome(JobState.FAILED, exit_code, f"killed by signal {-returncode} ({name})")
        return Outcome(JobState.FAILED, exit_code, f"exit code {returncode}")
    if kind is Stop.TIME_LIMIT:
        return Outcome(JobState.TIMEOUT, exit_code, f"time limit of {detail} s reached")
    if kind is Stop.MEMORY_LIMIT:
        return Outcome(JobState.OOM, exit_code, f"memory limit of {detail} exceeded")
    if kind is Stop.CANCELLED:
        return Outcome(JobState.CANCELLED, exit_code, "cancelled by user")
    if kind is Stop.DISRUPTED:
        return Outcome(JobState.FAILED, exit_code, f"pod disrupted ({detail}); a new pod runs the job again")
    if kind is Stop.SIGNALLED:
        return Outcome(JobState.FAILED, exit_code, f"driver received {detail}")
    if kind is Stop.DRIVER_ERROR:
        return Outcome(JobState.FAILED, exit_code, f"driver error: {detail}" if detail else "driver error")
    # CLUSTER_LOST, GATEWAY_ERROR, FAILURE_REQUESTED, OUTPUT_ERROR: the detail says it.
    return Outcome(JobState.FAILED, exit_code, detail)


# The ends another attempt may follow (Kubernetes' backoffLimit counts failed pods):
# the job's own run failed. Not a time limit (it covers every attempt, as a Job's
# activeDeadlineSeconds does), a cancel, or a driver told to stop from outside.
RETRIED = (Stop.SCRIPT_ENDED, Stop.MEMORY_LIMIT, Stop.CLUSTER_LOST, Stop.GATEWAY_ERROR, Stop.DRIVER_ERROR)


def retried(stop: StopReason, end: Outcome) -> bool:
    """Whether a job with retries left runs again after this end.

    >>> retried(StopReason(Stop.SCRIPT_ENDED), Outcome(JobState.FAILED, 1, "exit code 1"))
    True
    >>> retried(StopReason(Stop.TIME_LIMIT, "60"), Outcome(JobState.TIMEOUT, 143, "time limit of 60 s reached"))
    False
    """
    return end.state in (JobState.FAILED, JobState.OOM) and stop.kind in RETRIED
