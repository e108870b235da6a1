"""No cluster outlives its job, whatever dies: the driver at any stage of its
cluster's start, or the embedded gateway itself (``kill -9``).

Each test runs an embedded gateway of its own (a real dask-gateway-server), so
that it can kill it and count what is left: clusters through the gateway and,
where the gateway is dead, the clusters' scheduler and worker processes (found
by their working directory, ``<home>/gateway/clusters/<cluster>``).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from conftest import ended, isolated_session, kbatch, show_json, submit, wait_for, write_script

from kbatch_dask import api, settings
from kbatch_dask.backends.local import backend as local_backend
from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.gateway import GatewayClient
from kbatch_dask.procs import pid_alive
from kbatch_dask.spec import current_user

pytestmark = pytest.mark.gateway

HERE = Path(__file__).resolve().parent
ATTACH_TIMEOUT = 15.0  # the tests' kbatch.embedded-gateway.attach-timeout
CONNECT = (
    "from dask.distributed import get_client\n"
    "get_client().wait_for_workers(1, timeout=60)\n"
    "print('started', flush=True)\n"
)
SLEEP = CONNECT + "import time\ntime.sleep(300)\n"


class OwnGateway:
    """The embedded gateway of one test's state directory."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.server: embedded.EmbeddedGateway | None = None

    def start(self, attach_timeout: float = ATTACH_TIMEOUT) -> None:
        limits = dataclasses.replace(settings.load().embedded_gateway, attach_timeout=attach_timeout)
        self.server = embedded.start(str(self.home), current_user(), limits)

    def client(self) -> GatewayClient:
        server = embedded.status(str(self.home), current_user())
        assert server is not None, "the gateway does not run"
        return GatewayClient(server.settings())

    def statuses(self) -> dict[str, str]:
        """Every cluster the gateway knows, with its status."""
        with self.client() as client:
            return {name: info.status.value for name, info in client.list_clusters().items()}

    def active(self) -> list[str]:
        return sorted(name for name, status in self.statuses().items() if status in ("PENDING", "RUNNING"))

    def processes(self) -> dict[str, list[int]]:
        """The live processes working in a cluster's folder, by cluster."""
        root = os.path.realpath(self.home / "gateway" / "clusters")
        found: dict[str, list[int]] = {}
        for proc in psutil.process_iter():
            try:
                cwd, status = proc.cwd(), proc.status()
            except psutil.Error:
                continue
            if cwd.startswith(root + os.sep) and status != psutil.STATUS_ZOMBIE:
                found.setdefault(os.path.relpath(cwd, root).split(os.sep)[0], []).append(proc.pid)
        return found

    def kill(self) -> None:
        """``kill -9`` the gateway: nothing of it runs any cleanup."""
        assert self.server is not None
        os.kill(self.server.pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(self.server.pid), what="the gateway to die")

    def clean_up(self) -> None:
        """Whatever a failed test left behind must not outlive it."""
        embedded.stop(str(self.home))
        for pids in self.processes().values():
            for pid in pids:
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnGateway]:
    home = isolated_session(tmp_path, monkeypatch, "kbatch-home")
    own = OwnGateway(home)
    yield own
    own.clean_up()


def driver_log(gateway: OwnGateway, job_id: str) -> str:
    path = gateway.home / "jobs" / job_id / "driver.log"
    return path.read_text() if path.exists() else ""


def running_job(gateway: OwnGateway, tmp_path: Path, env: dict[str, str]) -> tuple[str, str]:
    """A job whose script runs on its cluster; its id and cluster."""
    out = tmp_path / "job.out"
    job_id = submit("-o", str(out), str(write_script(tmp_path / "sleep.py", SLEEP)), "--dask-workers", "1", env=env)
    wait_for(lambda: out.exists() and "started" in out.read_text(), what="the script to start")
    return job_id, show_json(job_id)["dask"]["cluster"]


@pytest.mark.parametrize(
    ("hold_at", "kill_at", "settle"),
    [
        ("creating the Dask cluster", "creating the Dask cluster", 0.0),
        ("created; waiting for it to start", "created; waiting for it to start", 0.0),
        # The switch's thread held before it connects; the driver goes on to see its cluster run.
        ("arming the dead-man's switch", " running: ", 0.0),
        # The same, killed once the held runner, told of the cluster, has long connected to it
        # (dask-gateway's cluster, no client): the attach watch must still see no client.
        ("arming the dead-man's switch", " running: ", 3.0),
    ],
    ids=["before-create", "while-starting", "running-switch-not-armed", "running-runner-prepared"],
)
def test_driver_killed_at_any_stage_of_the_clusters_start_leaves_no_cluster(
    gateway: OwnGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hold_at: str, kill_at: str, settle: float
) -> None:
    gateway.start()
    monkeypatch.setattr(local_backend, "DRIVER_MODULE", "held_driver")
    script = write_script(tmp_path / "never.py", "print('never')\n")
    hold = {"PYTHONPATH": str(HERE), "KBATCH_TEST_HOLD_AT": hold_at}
    job_id = api.submit(str(script), dask_workers=1, output=str(tmp_path / "n.out"), env=hold).id
    wait_for(lambda: kill_at in driver_log(gateway, job_id), what=f"the driver to log {kill_at!r}")
    time.sleep(settle)
    os.kill(show_json(job_id)["pid"], signal.SIGKILL)
    job = wait_for(lambda: (r := show_json(job_id))["state"] == "LOST" and r, what="the job to be LOST")

    created = sorted(gateway.statuses())
    if hold_at == "creating the Dask cluster":
        assert created == []
        assert "Nothing to stop" in kbatch("gc", "--dry-run", check=True).stdout
    else:  # recorded as soon as it was created, so plain gc sees it
        assert created == [job["dask"]["cluster"]]
        gc = kbatch("gc", "--dry-run", check=True).stdout.splitlines()
        assert gc == [f"would stop cluster {created[0]} (job {job_id} LOST)"]
    # With no further action, the cluster stops itself: no client joined it.
    wait_for(lambda: gateway.active() == [], timeout=ATTACH_TIMEOUT + 60, what="the cluster to stop itself")
    wait_for(lambda: gateway.processes() == {}, what="the cluster's processes to exit")
    assert not (tmp_path / "n.out").exists() or "never" not in (tmp_path / "n.out").read_text()


def test_gateway_killed_mid_job_fails_the_job_and_the_cluster_closes_itself(
    gateway: OwnGateway, tmp_path: Path
) -> None:
    gateway.start()
    job_id, cluster = running_job(gateway, tmp_path, {"DASK_KBATCH__DRIVER__CLUSTER_LOST_AFTER": "10"})
    wait_for(lambda: "dead-man's switch armed" in driver_log(gateway, job_id), what="the dead-man's switch")
    assert list(gateway.processes()) == [cluster]
    gateway.kill()
    # The scheduler finds the driver's client gone (its connection went through the
    # gateway's proxy), cannot reach the gateway, and closes itself and its workers.
    wait_for(lambda: gateway.processes() == {}, timeout=90, what="the cluster's scheduler and workers to exit")
    job = ended(job_id)
    assert job["state"] == "FAILED", job
    assert f"the Dask cluster {cluster} is lost: its gateway has not answered for 10 s" in job["reason"]
    assert "FAILED" in (tmp_path / "job.out").read_text()  # kbatch says so in the output


def test_gc_ends_the_processes_of_a_dead_gateways_clusters(gateway: OwnGateway, tmp_path: Path) -> None:
    gateway.start(attach_timeout=600)  # the cluster of no job below must not stop itself first
    no_switch = {"DASK_KBATCH__DRIVER__DEAD_MANS_SWITCH_GRACE": "0"}  # nothing but gc stops these
    job_id, cluster = running_job(gateway, tmp_path, no_switch)
    with gateway.client() as client:
        stray = client.create_cluster({})  # a cluster of no kbatch job
        client.wait_running(stray, timeout=120)
    os.killpg(show_json(job_id)["pid"], signal.SIGKILL)  # the whole job
    wait_for(lambda: show_json(job_id)["state"] == "LOST", what="the job to be LOST")
    gateway.kill()
    procs = gateway.processes()
    assert sorted(procs) == sorted([cluster, stray])  # orphans, and the gateway is gone
    n, m = (f"{len(procs[c])} process{'es' if len(procs[c]) > 1 else ''}" for c in (cluster, stray))

    hint = f"Left running: 1 cluster(s) that belong to no kbatch job ({stray}); `kbatch gc --all` stops them."
    assert kbatch("gc", "--dry-run", check=True).stdout.splitlines() == [
        f"would stop cluster {cluster} (job {job_id} LOST; no gateway runs: would end its {n})",
        hint,
    ]
    assert kbatch("gc", check=True).stdout.splitlines() == [
        f"stopped cluster {cluster} (job {job_id} LOST; no gateway runs: ended its {n})",
        hint,
    ]
    assert list(gateway.processes()) == [stray]
    assert "Nothing to stop" in kbatch("gc", check=True).stdout
    assert kbatch("gc", "--all", "--yes", check=True).stdout.splitlines() == [
        f"stopped cluster {stray} (no kbatch job; no gateway runs: ended its {m})"
    ]
    assert gateway.processes() == {}


def test_a_restarted_gateway_does_not_bring_back_the_clusters_of_ended_jobs(
    gateway: OwnGateway, tmp_path: Path
) -> None:
    gateway.start()
    job_id, cluster = running_job(gateway, tmp_path, {"DASK_KBATCH__DRIVER__DEAD_MANS_SWITCH_GRACE": "0"})
    os.killpg(show_json(job_id)["pid"], signal.SIGKILL)
    wait_for(lambda: show_json(job_id)["state"] == "LOST", what="the job to be LOST")
    gateway.kill()
    assert list(gateway.processes()) == [cluster]  # it survived its gateway
    kbatch("gateway", "start", check=True)
    # Its database still lists the cluster, whose processes run: stopped as the gateway started.
    assert gateway.statuses()[cluster] in ("STOPPING", "STOPPED")
    wait_for(lambda: gateway.statuses()[cluster] == "STOPPED", what=f"cluster {cluster} to stop")
    wait_for(lambda: gateway.processes() == {}, what="the cluster's processes to exit")
