"""Every kind of job through the service as alice: a function job and its
result (``submit_with_cluster`` with the hub backend), a notebook, a script's
output followed live (``kbatch logs -f``, the service's ``?follow=1``) and
``kbatch wait`` with the job's exit code. See conftest.py for the servers.

A function job's result comes from the service's archive, which the job's
driver uploaded it to (test_archive.py shows it without the files the pod
wrote); a notebook's executed copy is read here from alice's home, where the
pod wrote it (the fake kubelet maps each claim to a local directory).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import BIN

from .conftest import Service, User, run

pytestmark = pytest.mark.gateway

FUNCTION_JOB = """\
from kbatch_dask import submit_with_cluster


def answer(x, plus=0):
    from dask.distributed import get_client

    client = get_client()
    client.wait_for_workers(1, timeout=60)
    return client.submit(lambda y: y * 2, x).result() + plus


job = submit_with_cluster(answer, 20, kwargs={"plus": 2}, n_workers=1, time="10:00")
print("backend", job.record.backend)
print("result", job.result(timeout=180))
"""

# Prints a line, then waits for the test's go-ahead (a file in the working
# directory, alice's home) before it prints the rest and fails with 3.
TICKER = """\
import os, sys, time
print("tick 0", flush=True)
while not os.path.exists("go"):
    time.sleep(0.1)
for i in range(1, 5):
    print("tick", i, flush=True)
sys.exit(3)
"""


def test_a_function_job_returns_its_result_through_the_service(service: Service, alice: User) -> None:
    (alice.home / "fn_job.py").write_text(FUNCTION_JOB)
    proc = subprocess.run(
        [sys.executable, "fn_job.py"], cwd=alice.home, env=alice.env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["backend hub", "result 42"]


def test_a_notebook_runs_through_the_service(service: Service, alice: User) -> None:
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("papermill")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("print('cells', 6 * 7)")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, alice.home / "report.ipynb")
    proc = run(alice, "--parsable", "--dask-workers", "0", "report.ipynb")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1]
    waited = run(alice, "wait", job_id, timeout=180)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    executed = nbformat.read(alice.home / f"report-{job_id}.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "cells 42" in outputs


def test_logs_follow_streams_until_the_job_ends_and_wait_gives_its_exit_code(service: Service, alice: User) -> None:
    (alice.home / "ticker.py").write_text(TICKER)
    proc = run(alice, "--parsable", "--dask-workers", "0", "ticker.py")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1]
    follow = subprocess.Popen(
        [str(BIN / "kbatch"), "logs", "-f", job_id],
        cwd=alice.home,
        env=alice.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follow.stdout is not None
    # The job cannot end before the go-ahead: this line came while it ran.
    assert follow.stdout.readline() == "tick 0\n"
    (alice.home / "go").touch()
    rest, errors = follow.communicate(timeout=120)
    assert follow.returncode == 0, errors
    # The rest, and the driver's closing line: the stream ended with the job.
    assert rest.splitlines() == [*(f"tick {i}" for i in range(1, 5)), f"kbatch: job {job_id} FAILED: exit code 3"]
    waited = run(alice, "wait", job_id, timeout=120)
    assert waited.returncode == 3, waited.stdout + waited.stderr
