"""`mlflow run --backend kbatch-dask` with ``"backend": "hub"``: an MLflow project as
a job of the kbatch-dask service, submitted, followed and ended through the
service as any hub user's job (see conftest.py for the servers); the run's
tracking store, a SQLite file in the user's home, is the one the job's pod mounts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import Service, User, run

pytestmark = pytest.mark.gateway

STEP = """\
import mlflow
mlflow.log_param("where", "hub")
mlflow.log_metric("answer", 42)
print("logged", flush=True)
"""


def the_run(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    (found,) = MlflowClient(uri).search_runs(["0"])
    return found


def test_an_mlflow_project_runs_as_a_job_of_the_service_and_finishes_its_run(service: Service, alice: User) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{alice.home / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # the store's tables
    folder: Path = alice.home / "hub-project"
    folder.mkdir()
    (folder / "MLproject").write_text("name: hub-project\nentry_points:\n  main:\n    command: python step.py\n")
    (folder / "step.py").write_text(STEP)
    config = json.dumps({"backend": "hub", "dask_workers": 0})
    env = {**alice.env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [sys.executable, "-m", "mlflow", "run", str(folder), "--backend", "kbatch-dask"]
    command += ["--backend-config", config]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=alice.home)
    assert proc.returncode == 0, proc.stderr
    job_id = the_run(uri).data.tags["kbatch.job_id"]
    waited = run(alice, "wait", job_id, timeout=240)
    assert waited.returncode == 0, waited.stderr
    record = json.loads(run(alice, "show", "-o", "json", job_id).stdout)
    finished = the_run(uri)
    assert (record["state"], record["backend"], record["comment"]) == (
        "SUCCEEDED",
        "hub",
        f"mlflow run {finished.info.run_id}",
    )
    assert finished.info.status == "FINISHED"
    assert (finished.data.params, finished.data.metrics) == ({"where": "hub"}, {"answer": 42.0})
    assert "logged" in run(alice, "logs", job_id).stdout
