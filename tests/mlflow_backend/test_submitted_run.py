"""KbatchSubmittedRun: the MLflow run's status from the job's end, in a real SQLite store.

The job is a stand-in with the ``Job`` methods the run uses; the kbatch side of
a real job is tested end to end in tests/e2e/test_mlflow.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from kbatch_dask.mlflow.backend import KbatchSubmittedRun
from kbatch_dask.records import JobState


class EndingJob:
    """A job that ends in ``end`` when waited for or cancelled."""

    def __init__(self, end: JobState) -> None:
        self.end = end
        self.cancelled = False

    @property
    def state(self) -> JobState:
        return JobState.RUNNING

    def wait(self) -> JobState:
        return JobState.CANCELLED if self.cancelled else self.end

    def cancel(self) -> JobState:
        self.cancelled = True
        return JobState.CANCELLED


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return MlflowClient(uri)


def submitted(client: MlflowClient, job: EndingJob, status: str | None = None) -> KbatchSubmittedRun:
    run_id = client.create_run("0").info.run_id
    if status:
        client.set_terminated(run_id, status)
    return KbatchSubmittedRun(run_id, job)  # type: ignore[arg-type]


def status(client: MlflowClient, run: KbatchSubmittedRun) -> str:
    return str(client.get_run(run.run_id).info.status)


def test_an_out_of_memory_job_fails_its_run_even_after_the_entry_point_ended_it_finished(client: MlflowClient) -> None:
    run = submitted(client, EndingJob(JobState.OOM), status="FINISHED")  # what MLflow's atexit leaves
    assert run.wait() is False
    assert status(client, run) == "FAILED"


def test_a_succeeded_job_keeps_the_status_its_entry_point_set(client: MlflowClient) -> None:
    run = submitted(client, EndingJob(JobState.SUCCEEDED), status="KILLED")
    assert run.wait() is True
    assert status(client, run) == "KILLED"


def test_a_succeeded_job_finishes_a_running_run(client: MlflowClient) -> None:
    run = submitted(client, EndingJob(JobState.SUCCEEDED))
    assert run.wait() is True
    assert status(client, run) == "FINISHED"


def test_cancel_cancels_the_job_and_kills_the_run(client: MlflowClient) -> None:
    job = EndingJob(JobState.SUCCEEDED)
    run = submitted(client, job)
    run.cancel()
    assert job.cancelled
    assert status(client, run) == "KILLED"
