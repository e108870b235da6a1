"""Inside a job, the script's own Dask: clusters it makes belong to the job, and
``Client()`` connects to the job's cluster. Against the real embedded gateway."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from conftest import (
    assert_cluster_stopped_by_its_job,
    cluster_status,
    ended,
    gateway_client,
    kbatch,
    show_json,
    submit,
    wait_for,
    write_script,
)

pytestmark = pytest.mark.gateway

# The Pangeo way: a cluster of the script's own, left running on purpose.
MAKE_CLUSTER = (
    "from dask_gateway import Gateway\n"
    "cluster = Gateway().new_cluster(shutdown_on_close=False)\n"
    "print('made', cluster.name, flush=True)\n"
)


def made(out: Path) -> str | None:
    """The name of the cluster the script made, once it has printed it."""
    lines = out.read_text().splitlines() if out.exists() else []
    return next((line.split()[1] for line in lines if line.startswith("made ")), None)


def stop_if_running(home: Path, *names: str | None) -> None:
    """Should a test fail, its clusters must not outlive it (the run checks none is left)."""
    with gateway_client(home) as client:
        for name in filter(None, names):
            client.stop_cluster(name)


@pytest.mark.parametrize(
    ("ending", "extra", "state"),
    [
        ("print('done')\n", (), "SUCCEEDED"),
        ("raise SystemExit(3)\n", (), "FAILED"),
        ("import time\ntime.sleep(300)\n", ("--time", "0:40"), "TIMEOUT"),
        ("import time\ntime.sleep(300)\n", (), "CANCELLED"),
    ],
    ids=["success", "failure", "time-limit", "cancel"],
)
def test_cluster_the_script_makes_is_the_jobs_and_stops_with_it(
    home: Path, tmp_path: Path, ending: str, extra: tuple[str, ...], state: str
) -> None:
    out = tmp_path / "own.out"
    script = write_script(tmp_path / "own.py", MAKE_CLUSTER + ending)
    job_id = submit("-o", str(out), *extra, str(script), "--dask-workers", "1")
    name = None
    try:
        name = wait_for(lambda: made(out), timeout=90, what="the script to make its cluster")
        # Owned as soon as it exists: kbatch show says so while the job runs.
        wait_for(lambda: show_json(job_id)["owned_clusters"] == [name], what="the job to record the cluster")
        if state == "CANCELLED":
            kbatch("cancel", job_id, check=True)
        job = ended(job_id)
        assert job["state"] == state, out.read_text()
        assert_cluster_stopped_by_its_job(home, name)
        shown = [line.split() for line in kbatch("show", job_id, check=True).stdout.splitlines()]
        assert ["owned_clusters", name] in shown
        assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])
        # Closing the script's Gateway (its cluster does, at exit) printed dask-gateway's
        # "Exception ignored in ... Gateway.__del__" traceback; the switches' Gateways the driver's.
        for text in (out.read_text(), (home / "jobs" / job_id / "driver.log").read_text()):
            assert "Exception ignored" not in text and "Traceback" not in text, text
    finally:
        stop_if_running(home, name)


def test_supervisor_killed_the_scripts_cluster_is_stopped_by_the_dead_mans_switch(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.out"
    script = write_script(tmp_path / "victim.py", MAKE_CLUSTER + "import time\ntime.sleep(300)\n")
    job_id = submit("-o", str(out), str(script), "--dask-workers", "1")
    name = None
    try:
        name = wait_for(lambda: made(out), timeout=90, what="the script to make its cluster")
        driver_log = home / "jobs" / job_id / "driver.log"
        wait_for(
            lambda: f"dead-man's switch armed on {name}" in driver_log.read_text(),
            what="the switch on the script's cluster",
        )
        record = show_json(job_id)
        assert cluster_status(home, name) == "RUNNING"
        os.kill(record["pid"], signal.SIGKILL)  # the supervisor only: no cleanup code of its runs
        wait_for(
            lambda: cluster_status(home, name) == "STOPPED",
            timeout=30,
            what="the dead-man's switch to stop the script's cluster",
        )
        wait_for(lambda: cluster_status(home, record["dask"]["cluster"]) == "STOPPED", what="the job's cluster")
    finally:
        stop_if_running(home, name)


def test_gc_without_all_finds_the_scripts_cluster_of_an_ended_job(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.out"
    script = write_script(tmp_path / "gc.py", MAKE_CLUSTER + "import time\ntime.sleep(300)\n")
    # Without the switch, a job killed outright leaves both clusters to gc.
    no_switch = {**os.environ, "DASK_KBATCH__DRIVER__DEAD_MANS_SWITCH_GRACE": "0"}
    job_id = submit("-o", str(out), str(script), "--dask-workers", "1", env=no_switch)
    name = None
    cluster = None
    try:
        name = wait_for(lambda: made(out), timeout=90, what="the script to make its cluster")
        wait_for(lambda: show_json(job_id)["owned_clusters"] == [name], what="the job to record the cluster")
        record = show_json(job_id)
        cluster = record["dask"]["cluster"]
        os.killpg(record["pid"], signal.SIGKILL)  # the whole job: supervisor and runner
        wait_for(lambda: show_json(job_id)["state"] == "LOST", what="LOST")
        assert cluster_status(home, name) == "RUNNING"
        done = kbatch("gc", check=True).stdout
        assert sorted(done.splitlines()) == sorted(
            [f"stopped cluster {c} (job {job_id} LOST)" for c in (cluster, name)]
        )
        assert cluster_status(home, name) in ("STOPPING", "STOPPED")
    finally:
        stop_if_running(home, name, cluster)


def client_script(path: Path, make_client: str) -> Path:
    """A script written for local Dask: guarded by ``__main__``, as worker processes
    started by multiprocessing import the script again."""
    body = f"""\
import json
from dask.distributed import Client, LocalCluster
from kbatch_dask import get_client

if __name__ == "__main__":
    client = {make_client}
    client.wait_for_workers(1, timeout=60)
    print(json.dumps({{
        "address": client.scheduler.address,
        "workers": sorted(client.scheduler_info()["workers"]),
        "job_workers": sorted(get_client().scheduler_info()["workers"]),
        "job_address": get_client().scheduler.address,
        "sum": client.submit(sum, [1, 2]).result(),
    }}), flush=True)
"""
    return write_script(path, body)


def report(out: Path) -> dict:
    return dict(json.loads(out.read_text().splitlines()[-1]))


def test_client_without_an_address_connects_to_the_jobs_cluster(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "c.out"
    script = client_script(tmp_path / "c.py", "Client()")
    job = ended(submit("-o", str(out), str(script), "--dask-workers", "1"))
    assert job["state"] == "SUCCEEDED", out.read_text()
    seen = report(out)
    assert seen["address"] == seen["job_address"] and seen["address"].startswith("gateway://")
    assert seen["address"].endswith(job["dask"]["cluster"])
    assert seen["workers"] == seen["job_workers"] and len(seen["workers"]) == 1
    assert seen["sum"] == 3
    assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])


def test_client_of_an_explicit_local_cluster_stays_local(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "l.out"
    script = client_script(tmp_path / "l.py", "Client(LocalCluster(n_workers=1))")
    job = ended(submit("-o", str(out), str(script), "--dask-workers", "1"))
    assert job["state"] == "SUCCEEDED", out.read_text()
    seen = report(out)
    assert seen["address"].startswith("tcp://127.0.0.1:")
    assert seen["job_address"].startswith("gateway://") and not set(seen["workers"]) & set(seen["job_workers"])
    assert seen["sum"] == 3
