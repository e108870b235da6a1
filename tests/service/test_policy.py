"""The service's policy, pure: what is refused names the limit."""

from __future__ import annotations

import pytest

from kbatch_dask.errors import BadInput, Refused
from kbatch_dask.service.policy import Policy
from kbatch_dask.spec import JobSpec, Workers


def spec(**fields: object) -> JobSpec:
    return JobSpec("/h/a.py", "a", "alice", "/h", "o", **fields)  # type: ignore[arg-type]


def test_the_server_image_is_allowed_and_another_is_refused_naming_what_is() -> None:
    policy = Policy(("@server", "pangeo/*"))
    assert policy.image(None, "hub/notebook:1") == "hub/notebook:1"
    assert policy.image("pangeo/ml:2", "hub/notebook:1") == "pangeo/ml:2"
    with pytest.raises(
        Refused, match=r"image 'evil:1' is not allowed here; allowed: @server \(hub/notebook:1\), pangeo/\*"
    ):
        policy.image("evil:1", "hub/notebook:1")


def test_without_a_server_or_image_there_is_no_image() -> None:
    with pytest.raises(BadInput, match="no image for the job"):
        Policy().image(None, None)


@pytest.mark.parametrize(
    ("policy", "job", "limit"),
    [
        (Policy(max_cpus=2), spec(cpus=4), "max-cpus"),
        (Policy(max_gpus=0), spec(gpus=1), "max-gpus"),
        (Policy(max_dask_workers=4), spec(workers=Workers(1, 10, True)), "max-dask-workers"),
        (Policy(max_time=3600), spec(time_limit=7200), "max-time"),
        (Policy(max_time=3600), spec(), "max-time"),
        (Policy(max_memory=2**30), spec(memory=2**31), "max-memory"),
    ],
)
def test_a_job_over_a_limit_is_refused_naming_it(policy: Policy, job: JobSpec, limit: str) -> None:
    with pytest.raises(Refused, match=f"kbatch.service.limits.{limit}"):
        policy.check_job(job)


def test_a_job_within_the_limits_passes() -> None:
    Policy(max_cpus=2, max_gpus=1, max_dask_workers=4, max_time=60, max_memory=2**30).check_job(
        spec(cpus=2, gpus=1, workers=Workers(4, 4), time_limit=60, memory=2**30)
    )


def test_a_submission_that_would_wait_is_refused_once_the_queue_is_full() -> None:
    Policy(max_queued_jobs=2).check_queued(1)
    Policy().check_queued(1000)  # no bound
    full = r"2 jobs waiting to start, the limit of kbatch.service.limits.max-queued-jobs \(2\)"
    with pytest.raises(Refused, match=full):
        Policy(max_queued_jobs=2).check_queued(2)
