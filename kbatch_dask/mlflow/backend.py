"""The ``kbatch-dask`` MLflow project backend: an entry point's command as a kbatch job.

MLflow calls :meth:`KbatchDaskBackend.run` for ``mlflow run --backend kbatch-dask``
(and ``mlflow.projects.run(..., backend="kbatch-dask")``). It

1. takes the submit options out of the backend config and validates them, with
   the project packed into the job's script, exactly as ``kbatch --dry-run``
   would (the CLI's messages; the backend's size limit for a script) — a bad
   config is one ``ExecutionException`` line and creates neither a run nor a job;
2. creates the MLflow run (``SCHEDULED`` until the job starts), with the
   tracking URI, experiment and run id in the job's environment;
3. submits the job on the configured backend, its comment ``mlflow run <id>``,
   and tags the run with the job's id (``kbatch.job_id``).

The returned :class:`KbatchSubmittedRun` follows the job: ``get_status`` maps
its state, ``wait`` and ``cancel`` wait for its end and leave the run
``FINISHED``, ``FAILED`` or ``KILLED`` (the job's script ends the run itself
too, for an ``mlflow run`` that does not wait).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Mapping
from typing import Any

from mlflow.entities import RunStatus
from mlflow.exceptions import ExecutionException
from mlflow.projects.backend.abstract_backend import AbstractBackend
from mlflow.projects.submitted_run import SubmittedRun
from mlflow.projects.utils import (
    fetch_and_validate_project,
    get_or_create_run,
    load_project,
)
from mlflow.tracking import MlflowClient

from kbatch_dask import api
from kbatch_dask.errors import BadInput, KbatchError
from kbatch_dask.job import Job
from kbatch_dask.mlflow.bundle import absolute_tracking_uri, launcher_script, pack, store_paths
from kbatch_dask.mlflow.config import environment_warning, submit_options
from kbatch_dask.records import JobState
from kbatch_dask.spec import JobSpec
from kbatch_dask.spec.script import MAX_SCRIPT_BYTES

JOB_ID_TAG = "kbatch.job_id"
# Under MLflow's logger, so that `mlflow run` shows these lines as it shows its own backends'.
_logger = logging.getLogger("mlflow.projects.kbatch_dask")
# The job's state as an MLflow run status.
RUN_STATUS = {
    JobState.PENDING: "SCHEDULED",
    JobState.RUNNING: "RUNNING",
    JobState.SUCCEEDED: "FINISHED",
    JobState.CANCELLED: "KILLED",
}


def run_status(state: JobState) -> str:
    """The MLflow run status of a job in ``state``; any other end is ``FAILED``.

    >>> run_status(JobState.PENDING), run_status(JobState.CANCELLED), run_status(JobState.OOM)
    ('SCHEDULED', 'KILLED', 'FAILED')
    """
    return RUN_STATUS.get(state, "FAILED")


class KbatchSubmittedRun(SubmittedRun):  # type: ignore[misc]
    """An MLflow run executing as a kbatch job."""

    def __init__(self, run_id: str, job: Job) -> None:
        super().__init__()
        self._run_id = run_id
        self.job = job

    @property
    def run_id(self) -> str:
        return self._run_id

    def get_status(self) -> str:
        return run_status(self.job.state)

    def wait(self) -> bool:
        """Block until the job ends; True when it succeeded."""
        state = self.job.wait()
        self._end(state)
        return state is JobState.SUCCEEDED

    def cancel(self) -> None:
        """Cancel the job and wait for its end; the run is then ``KILLED``."""
        self.job.cancel()
        self._end(self.job.wait())

    def _end(self, state: JobState) -> None:
        # The job's end is the truth: its script may not have ended the run (OOM, a lost
        # pod, a driver that never started it), or ended it before the kbatch end (timeout).
        status = run_status(state)
        client = MlflowClient()
        if status == "FINISHED" and RunStatus.is_terminated(
            RunStatus.from_string(client.get_run(self._run_id).info.status)
        ):
            return
        client.set_terminated(self._run_id, status)


class KbatchDaskBackend(AbstractBackend):  # type: ignore[misc]
    """MLflow's ``mlflow.project_backend`` plugin ``kbatch-dask``."""

    def run(
        self,
        project_uri: str,
        entry_point: str,
        params: Mapping[str, Any] | None,
        version: str | None,
        backend_config: Mapping[str, Any],
        tracking_uri: str,
        experiment_id: str,
    ) -> KbatchSubmittedRun:
        try:
            return _run(
                project_uri, entry_point, dict(params or {}), version, backend_config, tracking_uri, experiment_id
            )
        except KbatchError as exc:
            # MLflow's CLI prints an ExecutionException as one line, without a traceback.
            raise ExecutionException(f"kbatch-dask: {exc}") from None


def _run(
    project_uri: str,
    entry_point: str,
    params: dict[str, Any],
    version: str | None,
    backend_options: Mapping[str, Any],
    tracking_uri: str,
    experiment_id: str,
) -> KbatchSubmittedRun:
    options = submit_options(backend_options)
    work_dir = fetch_and_validate_project(project_uri, version, entry_point, params)  # type: ignore[no-untyped-call]
    project = load_project(work_dir)  # type: ignore[no-untyped-call]
    if project.docker_env:
        raise BadInput(
            "the project has a docker_env: a kbatch job runs in its own image; "
            'remove docker_env and give the image as "image" in the backend config'
        )
    env_file = os.path.basename(project.env_config_path) if project.env_config_path else None
    caution = environment_warning(backend_options.get("ENV_MANAGER"), env_file)
    uri = absolute_tracking_uri(tracking_uri, os.getcwd())
    archive = pack(work_dir, exclude=store_paths(uri))
    title = project.name or os.path.basename(os.path.normpath(work_dir))  # an MLproject's name is optional
    name = _job_name(title)
    with tempfile.TemporaryDirectory(prefix="kbatch-mlflow-") as tmp:
        # A `path` parameter's remote URI is fetched to the storage directory (MLflow's own way): here
        # by default, gone after submit, since the job could not read this machine's files anyway.
        storage = backend_options.get("STORAGE_DIR") or tmp
        command = project.get_entry_point(entry_point).compute_command(params, storage)
        text = launcher_script(archive, command, title, entry_point)
        where = f"MLflow project {work_dir!r} ({len(text.encode()) / 2**20:.1f} MiB as a script)"
        if len(text.encode()) > MAX_SCRIPT_BYTES:
            raise BadInput(
                f"{where}: a job's script may be at most {MAX_SCRIPT_BYTES // 2**20} MiB; keep data out of it"
            )
        script = os.path.join(tmp, f"{name}.py")
        with open(script, "w") as f:
            f.write(text)

        def spec_for(run_id: str) -> JobSpec:
            environment = {
                "MLFLOW_TRACKING_URI": uri,
                "MLFLOW_EXPERIMENT_ID": str(experiment_id),
                "MLFLOW_RUN_ID": run_id,
            }
            comment = f"mlflow run {run_id}" + (f"; {options['comment']}" if options.get("comment") else "")
            try:
                return api.make_spec(
                    script, **{"name": name, **options, "comment": comment, "env": _env(options, environment)}
                )
            except BadInput as exc:
                raise BadInput(f"backend config: {exc}") from None

        spec = spec_for("0" * 32)  # MLflow's run ids are 32 hex digits
        try:
            api.dry_run(spec)  # what the backend checks (its size limit for a script), before anything exists
        except KbatchError as exc:
            raise KbatchError(f"{where}: {exc}") from None
        if caution:
            _logger.warning(caution)
        run = get_or_create_run(None, project_uri, experiment_id, work_dir, version, entry_point, params)  # type: ignore[no-untyped-call]
        run_id = run.info.run_id
        client = MlflowClient()
        client.update_run(run_id, status="SCHEDULED")
        try:
            job = api.submit_spec(spec_for(run_id))
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
    client.set_tag(run_id, JOB_ID_TAG, job.id)
    for warning in job.warnings:
        _logger.warning(str(warning))
    _logger.info("=== kbatch job %s runs MLflow run %s ===", job.id, run_id)
    return KbatchSubmittedRun(run_id, job)


def _job_name(name: str) -> str:
    """A job name (and script file name) from the project's name.

    >>> _job_name("My project!")
    'My_project_'
    """
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:64] or "mlflow"


def _env(options: Mapping[str, Any], environment: Mapping[str, str]) -> list[str]:
    """The config's ``env`` (a dict or a list of ``KEY=VALUE``) with the run's variables last."""
    given = options.get("env") or ()
    if isinstance(given, Mapping):
        pairs = [f"{k}={v}" for k, v in given.items()]
    else:
        pairs = [given] if isinstance(given, str) else [str(v) for v in given]
    return [*pairs, *(f"{k}={v}" for k, v in environment.items())]
