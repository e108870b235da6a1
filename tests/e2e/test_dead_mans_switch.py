"""The dead-man's switch stops a dead driver's cluster soon, and a slow one's never.

A killed supervisor's connection to its scheduler closes at once (its kernel
closes the sockets), and the switch stops the cluster
``kbatch.driver.dead-mans-switch-grace`` (0.5 s) later. A supervisor that is
merely slow — stopped with SIGSTOP, or standing still in a long GC pause —
keeps its connection open and only misses heartbeats: its cluster stays unless
it is silent for ``kbatch.driver.dead-mans-switch-silence`` (60 s), as a host
that is gone without closing anything is.

Real jobs on the shared real gateway (``home``); the supervisor alone is
signalled (``os.kill`` of its pid, not of its process group).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from conftest import assert_cluster_stopped_by_its_job, cluster_status, ended, show_json, submit, wait_for, write_script

from kbatch_dask import api
from kbatch_dask.backends.local import backend as local_backend

pytestmark = pytest.mark.gateway

HERE = Path(__file__).resolve().parent
# Longer than the switch's grace after a close (0.5 s) and than two of the client's
# heartbeats (5 s apart), shorter than its silence (60 s).
PAUSE = 20.0
CONNECT = (
    "from dask.distributed import get_client\n"
    "client = get_client()\n"
    "client.wait_for_workers(1, timeout=60)\n"
    "print('started', flush=True)\n"
)
# Waits for the test's go, then needs its cluster: a stopped cluster fails it.
AFTER_GO = (
    "import os, time\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.1)\n"
    "print('sum', client.submit(sum, [1, 2]).result(), flush=True)\n"
)


def driver_log(home: Path, job_id: str) -> str:
    path = home / "jobs" / job_id / "driver.log"
    return path.read_text() if path.exists() else ""


def running(home: Path, tmp_path: Path, body: str, env: dict[str, str] | None = None) -> tuple[str, str, Path]:
    """A job whose script runs on its cluster, the switch armed: its id, cluster and output."""
    out = tmp_path / "job.out"
    job_id = submit(
        "-o", str(out), str(write_script(tmp_path / "job.py", CONNECT + body)), "--dask-workers", "1", env=env
    )
    wait_for(lambda: out.exists() and "started" in out.read_text(), what="the script to start")
    wait_for(lambda: "dead-man's switch armed" in driver_log(home, job_id), what="the dead-man's switch")
    return job_id, show_json(job_id)["dask"]["cluster"], out


def test_a_supervisor_stopped_for_longer_than_the_grace_keeps_its_cluster_and_finishes(
    home: Path, tmp_path: Path
) -> None:
    job_id, cluster, out = running(home, tmp_path, AFTER_GO)
    pid = show_json(job_id)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE)  # its connection open, its heartbeats missed
        assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    finally:
        os.kill(pid, signal.SIGCONT)
    (tmp_path / "go").touch()
    job = ended(job_id)
    assert job["state"] == "SUCCEEDED", out.read_text()
    assert "sum 3" in out.read_text()
    assert_cluster_stopped_by_its_job(home, cluster)


def test_a_supervisor_paused_holding_the_gil_keeps_its_cluster_and_finishes(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a 10 s stop-the-world GC pause: no thread of the supervisor runs, its client sends nothing."""
    monkeypatch.setattr(local_backend, "DRIVER_MODULE", "paused_driver")
    pause = {"PYTHONPATH": str(HERE), "KBATCH_TEST_PAUSE_AT": "dead-man's switch armed", "KBATCH_TEST_PAUSE_FOR": "10"}
    out = tmp_path / "p.out"
    script = write_script(tmp_path / "p.py", CONNECT + "print('sum', client.submit(sum, [1, 2]).result())\n")
    job_id = api.submit(str(script), dask_workers=1, output=str(out), env=pause).id
    job = ended(job_id)
    assert "test: held the GIL for 10 s" in driver_log(home, job_id)
    assert job["state"] == "SUCCEEDED", out.read_text()
    assert "sum 3" in out.read_text()
    assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])


def test_a_killed_supervisor_has_its_cluster_stopped_by_its_closed_connection(home: Path, tmp_path: Path) -> None:
    # With a silence far longer than the wait below, only the closed connection can stop it.
    job_id, cluster, _ = running(
        home, tmp_path, "import time\ntime.sleep(300)\n", {"DASK_KBATCH__DRIVER__DEAD_MANS_SWITCH_SILENCE": "3600"}
    )
    os.kill(show_json(job_id)["pid"], signal.SIGKILL)
    wait_for(lambda: cluster_status(home, cluster) == "STOPPED", timeout=30, what="the switch to stop the cluster")
    assert show_json(job_id)["state"] == "LOST"


def test_a_supervisor_silent_on_an_open_connection_has_its_cluster_stopped(home: Path, tmp_path: Path) -> None:
    """As a driver whose host is gone without closing its connection (node lost, network cut)."""
    job_id, cluster, _ = running(
        home, tmp_path, "import time\ntime.sleep(300)\n", {"DASK_KBATCH__DRIVER__DEAD_MANS_SWITCH_SILENCE": "6"}
    )
    pid = show_json(job_id)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: cluster_status(home, cluster) == "STOPPED", timeout=60, what="the switch to stop the cluster")
        # Its connection was never closed: the supervisor still stands, stopped.
        assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: show_json(job_id)["state"] == "LOST", what="the job to be LOST")
