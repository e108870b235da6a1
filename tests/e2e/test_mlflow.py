"""`mlflow run --backend kbatch-dask`: MLflow projects as kbatch jobs.

A real MLflow (its CLI and Python API, a SQLite tracking store in the test's
directory) and the run's shared real gateway on 127.0.0.1, through the local
backend and the Kubernetes backend on the fake cluster (tests/fakes/kube).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dask.config
import pytest
from conftest import ROOT, ended, job_dirs, kbatch, show_json, wait_for
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE, notebook_session
from mlflow.exceptions import ExecutionException

from e2e.kubernetes_scenarios import MANAGED
from kbatch_dask.backends.kubernetes.annotations import ANN_COMMENT
from kbatch_dask.backends.local.backend import LocalBackend

pytestmark = pytest.mark.gateway

EXAMPLE = ROOT / "examples" / "mlflow-project"


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new SQLite tracking store, its tables made once (MLflow's migrations take seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking(home: Path, tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite tracking store of this test's own, for the test and the `mlflow` it runs."""
    path = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{path}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here
    return f"sqlite:///{path}"


def mlflow_run(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real `mlflow run PROJECT --backend kbatch-dask ARGS...` (in ``env``, else this process's)."""
    command = [sys.executable, "-m", "mlflow", "run", str(project), "--backend", "kbatch-dask", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def runs(uri: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    return list(MlflowClient(uri).search_runs(["0"]))


def the_run(uri: str) -> Any:
    (run,) = runs(uri)
    return run


def project(tmp_path: Path, name: str, code: str, config: dict[str, Any]) -> Path:
    """A one-entry-point MLflow project running ``code`` with ``python step.py``."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / "MLproject").write_text(f"name: {name}\nentry_points:\n  main:\n    command: python step.py\n")
    (folder / "step.py").write_text(code)
    (folder / "kbatch.json").write_text(json.dumps(config))
    return folder


def test_the_example_project_runs_on_two_workers_and_logs_to_its_run(tracking: str, tmp_path: Path) -> None:
    proc = mlflow_run(EXAMPLE, "--backend-config", str(EXAMPLE / "kbatch.json"), "-P", "alpha=5", "-P", "samples=20000")
    assert proc.returncode == 0, proc.stderr
    job_id = the_run(tracking).data.tags["kbatch.job_id"]
    assert ended(job_id, timeout=240)["state"] == "SUCCEEDED"
    run = the_run(tracking)  # final once the job has ended: its script ends the run first
    assert run.info.status == "FINISHED"
    # Parameters from `mlflow run` and from the entry point, metrics from the training on the cluster.
    assert run.data.params == {"alpha": "5", "samples": "20000", "workers": "2", "features": "10"}
    assert run.data.metrics["workers"] == 2
    assert run.data.metrics["rmse"] < 1.0
    job = show_json(job_id)
    assert job["comment"] == f"mlflow run {run.info.run_id}"
    assert job["dask"]["workers"] == "2"
    assert f"kbatch job {job_id} runs MLflow run {run.info.run_id}" in proc.stderr
    # Its python_env.yaml names what the image needs; it is not installed, and `mlflow run` says so.
    (warning,) = [line for line in proc.stderr.splitlines() if " WARNING " in line]
    assert warning.endswith(
        "the project's python_env.yaml is not installed: the job runs in its image's environment (--env-manager local)"
    )


def test_a_failing_entry_point_ends_its_run_failed(tracking: str, tmp_path: Path) -> None:
    import mlflow.projects

    code = "import mlflow\nmlflow.log_param('reached', 'yes')\nraise SystemExit(3)\n"
    folder = project(tmp_path, "fails", code, {"dask_workers": 0})
    submitted = mlflow.projects.run(
        str(folder), backend="kbatch-dask", backend_config={"dask_workers": 0}, synchronous=False
    )
    assert submitted.get_status() in ("SCHEDULED", "RUNNING")
    assert submitted.wait() is False
    assert submitted.get_status() == "FAILED"
    run = the_run(tracking)
    assert run.info.status == "FAILED"
    assert run.data.params == {"reached": "yes"}  # the entry point ran, in this run
    record = show_json(submitted.job.id)
    assert (record["state"], record["exit_code"]) == ("FAILED", 3)


def test_a_cancelled_job_ends_its_run_killed(tracking: str, tmp_path: Path) -> None:
    code = "import time\nimport mlflow\nmlflow.log_param('started', 'yes')\ntime.sleep(600)\n"
    folder = project(tmp_path, "sleeps", code, {"dask_workers": 0})
    proc = mlflow_run(folder, "--backend-config", str(folder / "kbatch.json"))
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: the_run(tracking).data.params.get("started"), timeout=120, what="the entry point to start")
    job_id = the_run(tracking).data.tags["kbatch.job_id"]
    assert kbatch("cancel", job_id).returncode == 0
    assert ended(job_id)["state"] == "CANCELLED"
    assert the_run(tracking).info.status == "KILLED"


def test_bad_backend_config_is_one_line_and_creates_nothing(tracking: str, home: Path) -> None:
    proc = mlflow_run(EXAMPLE, "--backend-config", json.dumps({"dask_workers": 2, "memory": "4GG"}))
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line or "Traceback" in line]
    assert len(errors) == 1, proc.stderr
    assert "kbatch-dask: backend config: --memory '4GG': expected a size like 512M, 4G or 4Gi" in errors[0]
    assert runs(tracking) == []
    assert job_dirs(home) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"dask_worker": 2}, "kbatch-dask: backend config: unknown option 'dask_worker'; allowed: name, comment,"),
        ({"parameter": {"a": 1}}, 'kbatch-dask: backend config "parameter": it sets a notebook\'s parameters'),
        ({"time": "forever"}, "kbatch-dask: backend config: --time 'forever'"),
    ],
)
def test_bad_backend_config_from_python_raises_and_creates_nothing(
    tracking: str, home: Path, config: dict[str, Any], message: str
) -> None:
    import mlflow.projects

    with pytest.raises(ExecutionException) as caught:
        mlflow.projects.run(str(EXAMPLE), backend="kbatch-dask", backend_config=config, synchronous=False)
    assert str(caught.value).startswith(message)
    assert runs(tracking) == []
    assert job_dirs(home) == []


def test_an_env_manager_the_job_cannot_honour_is_refused(tracking: str, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "with-env"
    shutil.copytree(EXAMPLE, folder)
    (folder / "python_env.yaml").write_text("python: '3.11'\ndependencies: [numpy]\n")
    proc = mlflow_run(folder, "--env-manager", "virtualenv", "--backend-config", "{}")
    assert proc.returncode == 1
    assert "kbatch-dask: --env-manager virtualenv: the kbatch-dask backend runs the project in the job's image" in (
        proc.stderr
    )
    assert runs(tracking) == []
    assert job_dirs(home) == []


def test_a_project_past_the_backends_size_limit_is_refused(tracking: str, home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "big"
    shutil.copytree(EXAMPLE, folder)
    (folder / "data.bin").write_bytes(os.urandom(50 * 2**20))  # random: gzip cannot shrink it under 64 MiB
    import mlflow.projects

    with pytest.raises(ExecutionException) as caught:
        mlflow.projects.run(str(folder), backend="kbatch-dask", backend_config={}, synchronous=False)
    assert str(caught.value).startswith(f"kbatch-dask: MLflow project {str(folder)!r} (")
    assert str(caught.value).endswith("a job's script may be at most 64 MiB; keep data out of it")
    assert runs(tracking) == []
    assert job_dirs(home) == []


@pytest.fixture
def kube_session(
    tracking: str,
    home: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kube_env: Path,  # noqa: F811
) -> dict[str, str]:
    """The environment of a notebook on the fake cluster (tests/fakes/kube), whose jobs use the
    shared gateway and whose home volume, where the tracking store is, the job's pod mounts."""
    with dask.config.set({"gateway.address": None}):
        settings = LocalBackend(str(home)).gateway(start=True)
    assert settings is not None
    return {**notebook_session(fake_apiserver, fake_kubelet, Path(os.environ["HOME"])), **settings.env}


def test_on_kubernetes_a_failing_entry_point_ends_its_run_failed(
    tracking: str,
    kube_session: dict[str, str],
    fake_apiserver: FakeApiServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    code = "import mlflow\nmlflow.log_param('reached', 'yes')\nraise SystemExit(3)\n"
    folder = project(tmp_path, "fails", code, {"backend": "kubernetes", "dask_workers": 0})
    proc = mlflow_run(folder, "--backend-config", str(folder / "kbatch.json"), env=kube_session)
    assert proc.returncode == 0, proc.stderr
    job_id = the_run(tracking).data.tags["kbatch.job_id"]

    def job_state() -> str | None:
        proc = kbatch("show", "--backend", "kubernetes", "-o", "json", job_id, env=kube_session, check=True)
        state = str(json.loads(proc.stdout)["state"])
        return state if state not in ("PENDING", "RUNNING") else None

    assert wait_for(job_state, timeout=180, what=f"job {job_id} to end") == "FAILED"
    run = the_run(tracking)
    assert run.info.status == "FAILED"
    assert run.data.params == {"reached": "yes"}
    (job,) = fake_apiserver.objects("jobs", NAMESPACE, MANAGED)
    assert job["metadata"]["name"].endswith(job_id)
    assert job["metadata"]["annotations"][ANN_COMMENT] == f"mlflow run {run.info.run_id}"


def test_on_kubernetes_a_project_past_a_configmaps_size_is_refused(
    tracking: str,
    kube_session: dict[str, str],
    fake_apiserver: FakeApiServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "big"
    shutil.copytree(EXAMPLE, folder)
    (folder / "data.bin").write_bytes(os.urandom(2**20))
    proc = mlflow_run(folder, "--backend-config", '{"backend": "kubernetes"}', env=kube_session)
    assert proc.returncode == 1
    assert f"kbatch-dask: MLflow project {str(folder)!r} (1.4 MiB as a script): script " in proc.stderr
    assert "more than a Kubernetes job can carry (1.0 MiB)" in proc.stderr
    assert runs(tracking) == []
    assert fake_apiserver.objects("jobs", NAMESPACE, MANAGED) == []
    assert fake_apiserver.objects("configmaps", NAMESPACE, MANAGED) == []
