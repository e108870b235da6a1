"""Clusters the job's code makes are the job's: through the real supervisor with
the fakes of tests/fakes/driver.py, and the recording hook in a real Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fakes.driver import ADDRESS, signal_driver

from driver.test_supervisor import JOB, Job, signal_handlers  # noqa: F401  (the fixture gives the handlers back)
from kbatch_dask.driver import owned
from kbatch_dask.records import JobState


def make(job: Job, name: str, address: str = ADDRESS) -> Callable[[], None]:
    """An action of the runner: its code makes cluster ``name``, as the hook records it."""

    def action() -> None:
        assert job.runner.env is not None
        owned.record(job.runner.env[owned.ENV], address, name)

    return action


@pytest.mark.parametrize(
    ("runner", "time_limit", "final"),
    [
        ({"runs_for": 3.0}, None, (JobState.SUCCEEDED, 0, None)),
        ({"runs_for": 3.0, "returncode": 3}, None, (JobState.FAILED, 3, "exit code 3")),
        ({"runs_for": 100.0}, 5, (JobState.TIMEOUT, 143, "time limit of 5 s reached")),
        ({"runs_for": 100.0, "at": {2.0: signal_driver(signal.SIGTERM)}}, None, (JobState.FAILED, 143, None)),
    ],
    ids=["success", "failure", "time-limit", "signal"],
)
def test_cluster_the_code_makes_is_recorded_and_stopped_before_the_record_ends(
    tmp_path: Path, runner: dict, time_limit: int | None, final: tuple
) -> None:
    job = Job(tmp_path, **runner)
    job.runner.at[1.0] = make(job, "own-1")
    job.run(time_limit=time_limit)
    state, exit_code, reason = final
    assert job.reporter.final is not None
    assert job.reporter.final[:2] == (state, exit_code)
    assert reason is None or job.reporter.final[2] == reason
    assert job.reporter.owned_clusters == [("own-1",)]
    assert job.gateway.stopped == ["own-1", "cluster-1"]
    assert job.events.index("record owns own-1") < job.events.index("cluster stopped")
    assert job.events[-2:] == ["cluster stopped", "record ended"]
    assert job.runner.env is not None
    assert not os.path.exists(job.runner.env["KBATCH_DASK_PRIVATE_DIR"])  # removed with what it held


def test_cluster_made_as_the_code_ends_is_still_stopped(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=3.0)
    job.runner.at[3.0] = make(job, "own-last")  # no look at the file between this and the runner's end
    assert job.run() == 0
    assert job.reporter.owned_clusters == [("own-last",)]
    assert job.gateway.stopped == ["own-last", "cluster-1"]


def test_every_cluster_made_is_recorded_in_order(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=5.0)
    job.runner.at.update({1.0: make(job, "own-1"), 2.0: make(job, "own-2")})
    assert job.run() == 0
    assert job.reporter.owned_clusters == [("own-1",), ("own-1", "own-2")]
    assert job.gateway.stopped == ["own-1", "own-2", "cluster-1"]


def test_cluster_on_another_gateway_is_not_claimed(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=3.0)
    job.runner.at[1.0] = make(job, "elsewhere", address="http://other.test")
    assert job.run() == 0
    assert job.reporter.owned_clusters == []
    assert job.gateway.stopped == ["cluster-1"]
    assert any("elsewhere on another gateway (http://other.test)" in line for line in job.log)


def test_job_without_a_cluster_connects_to_stop_the_one_its_code_made(tmp_path: Path) -> None:
    job = Job(tmp_path, runs_for=3.0)
    job.runner.at[1.0] = make(job, "own-1")
    assert job.run(workers=None) == 0
    assert job.connects == 1
    assert job.gateway.stopped == ["own-1"] and job.gateway.closed
    assert job.reporter.final == (JobState.SUCCEEDED, 0, None)


def test_runner_python_starts_with_the_hook_on_its_path(tmp_path: Path) -> None:
    job = Job(tmp_path)
    job.run(workers=None)
    assert job.runner.env is not None
    assert job.runner.env["PYTHONPATH"] == owned.SITE_DIR
    assert job.runner.env[owned.ENV] == os.path.join(job.runner.env["KBATCH_DASK_PRIVATE_DIR"], "owned-clusters")


# The hook in a real Python, as the runner's children get it: dask-gateway's
# client asks a gateway that answers every request with a new cluster's name.
SUBMIT = """
import dask_gateway.client as c

class Answer:
    async def json(self):
        return {"name": "made-by-child"}

async def request(self, method, url, json=None):
    return Answer()

c.Gateway._request = request
with c.Gateway("http://gateway.test") as gateway:
    gateway.submit()
"""


def python(code: str, owned_file: Path, pythonpath: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, owned.ENV: str(owned_file), "PYTHONPATH": pythonpath}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_a_python_child_records_the_cluster_it_makes(tmp_path: Path) -> None:
    owned_file = tmp_path / "owned-clusters"
    proc = python(SUBMIT, owned_file, owned.SITE_DIR)
    assert proc.returncode == 0, proc.stderr
    assert owned_file.read_text() == "http://gateway.test made-by-child\n"
    found = owned.ClusterFile(str(owned_file))
    assert found.new() == [("http://gateway.test", "made-by-child")]
    assert found.new() == []


def test_the_hook_imports_nothing_and_runs_the_sitecustomize_it_hides(tmp_path: Path) -> None:
    hidden = tmp_path / "theirs"
    hidden.mkdir()
    (hidden / "sitecustomize.py").write_text("import os\nos.environ['THEIRS'] = 'ran'\n")
    code = "import os, sys; print('dask_gateway' in sys.modules, os.environ.get('THEIRS'))"
    proc = python(code, tmp_path / "owned-clusters", os.pathsep.join([owned.SITE_DIR, str(hidden)]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "ran"]
    assert not (tmp_path / "owned-clusters").exists()
