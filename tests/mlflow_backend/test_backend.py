"""The plugin as MLflow finds it, its config, and the run status a job's state gives."""

from __future__ import annotations

import pytest

from kbatch_dask.errors import BadInput
from kbatch_dask.mlflow.backend import KbatchDaskBackend, run_status
from kbatch_dask.mlflow.config import environment_warning, submit_options
from kbatch_dask.records import JobState


def test_mlflow_loads_the_plugin_by_its_name() -> None:
    from mlflow.projects.backend.loader import load_backend

    assert isinstance(load_backend("kbatch-dask"), KbatchDaskBackend)


def test_every_job_state_has_a_run_status() -> None:
    assert {state: run_status(state) for state in JobState} == {
        JobState.PENDING: "SCHEDULED",
        JobState.RUNNING: "RUNNING",
        JobState.SUCCEEDED: "FINISHED",
        JobState.FAILED: "FAILED",
        JobState.CANCELLED: "KILLED",
        JobState.TIMEOUT: "FAILED",
        JobState.OOM: "FAILED",
        JobState.LOST: "FAILED",
    }


def test_the_config_loses_mlflows_own_keys_and_keeps_the_submit_options() -> None:
    config = {
        "ENV_MANAGER": "local", "SYNCHRONOUS": False, "DOCKER_ARGS": {}, "STORAGE_DIR": None,
        "build_image": False, "docker_auth": None, "memory": "8G", "time": "2:00:00",
    }  # fmt: skip
    assert submit_options(config) == {"memory": "8G", "time": "2:00:00"}


def test_notebook_parameters_are_refused_with_what_to_do() -> None:
    with pytest.raises(BadInput, match="give the project's parameters with -P KEY=VALUE"):
        submit_options({"parameter": {"alpha": 1}})


@pytest.mark.parametrize("manager", ["virtualenv", "uv", "conda"])
def test_an_env_manager_that_builds_environments_is_refused(manager: str) -> None:
    with pytest.raises(BadInput, match=f"--env-manager {manager}: the kbatch-dask backend runs the project"):
        environment_warning(manager, None)


def test_an_environment_file_under_the_default_manager_is_a_warning() -> None:
    assert environment_warning(None, "conda.yaml") == (
        "the project's conda.yaml is not installed: the job runs in its image's environment (--env-manager local)"
    )
    assert environment_warning(None, None) is None
