"""Inside the job: the MLflow project's entry point, in the MLflow run it logs to.

The job's script (:func:`kbatch_dask.mlflow.bundle.launcher_script`) calls
:func:`main`, which unpacks the project into a temporary directory, runs the
entry point's command there with ``bash -c`` (as MLflow's local backend does),
and ends the run in ``$MLFLOW_RUN_ID`` as the command ends: ``FINISHED`` on
exit 0, ``FAILED`` otherwise, ``KILLED`` when the job is cancelled (the driver
sends SIGTERM). ``mlflow run`` returns once the job is submitted, so the job
itself is what ends the run.

``python`` in the command is the job's Python (``--env-manager local``: the
packages of the job's image).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import types


def unpack(packed: str, directory: str) -> None:
    """The project, packed by :func:`kbatch_dask.mlflow.bundle.pack`, into ``directory``."""
    with tarfile.open(fileobj=io.BytesIO(base64.decodebytes(packed.encode())), mode="r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: no absolute paths, no escapes
            tar.extractall(directory, filter="data")
        else:  # before it: bundle.pack writes relative files and folders only
            tar.extractall(directory)


def run_command(command: str, cwd: str) -> tuple[int, bool]:
    """Run the entry point's command; its exit code, and whether the job was told to stop."""
    env = dict(os.environ)
    # `python` in an MLproject command means the job's Python, whatever the image's PATH says first.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    # Its own process group, so that a cancel reaches everything the command started.
    child = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, start_new_session=True)
    stopped = False

    def forward(signum: int, frame: types.FrameType | None) -> None:
        nonlocal stopped
        stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code, stopped


def end_status(code: int, stopped: bool) -> str:
    """The MLflow run status the command's end gives.

    >>> end_status(0, False), end_status(3, False), end_status(-15, True)
    ('FINISHED', 'FAILED', 'KILLED')
    """
    if stopped:
        return "KILLED"
    return "FINISHED" if code == 0 else "FAILED"


def end_run(run_id: str, status: str) -> None:
    """Mark the run ended. A failure or kill is always recorded (the command's own
    MLflow client ends its run FINISHED as its Python exits, even after an error);
    a success keeps a status the command set itself."""
    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if status == "FINISHED" and RunStatus.is_terminated(RunStatus.from_string(client.get_run(run_id).info.status)):
        return
    client.set_terminated(run_id, status)


def main(packed: str, command: str) -> None:
    """The job's script: run the project's command in its run; exit with its exit code."""
    from mlflow.tracking import MlflowClient

    run_id = os.environ["MLFLOW_RUN_ID"]
    MlflowClient().update_run(run_id, status="RUNNING")  # it was SCHEDULED while the job waited
    directory = tempfile.mkdtemp(prefix="mlflow-project-")
    try:
        unpack(packed, directory)
        code, stopped = run_command(command, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    end_run(run_id, end_status(code, stopped))
    sys.exit(code if code >= 0 else 128 - code)
