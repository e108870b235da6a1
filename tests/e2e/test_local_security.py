"""What the embedded gateway's processes expose: every socket on 127.0.0.1, and
none of the submitting session's credentials in their environment."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from conftest import kbatch, show_json, wait_for, write_script

from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.spec import current_user

pytestmark = pytest.mark.gateway

SECRET = "AWS_SECRET_ACCESS_KEY"

# Runs until the test creates the release file, so the cluster surely runs while it is looked at.
HELD = """\
import os, time
from dask.distributed import get_client
get_client().wait_for_workers({workers}, timeout=60)
print("workers ready", os.environ.get({secret!r}), flush=True)
while not os.path.exists({release!r}):
    time.sleep(0.1)
"""


class HeldJob:
    """A job whose cluster runs with all its workers until :meth:`release`."""

    def __init__(self, tmp_path: Path, workers: int) -> None:
        self.release_file, self.out = tmp_path / "release", tmp_path / "held.out"
        text = HELD.format(workers=workers, secret=SECRET, release=str(self.release_file))
        script = write_script(tmp_path / "held.py", text)
        args = ("-o", str(self.out), "--parsable", str(script), "--dask-workers", str(workers))
        self.id = kbatch(*args, check=True).stdout.strip()
        wait_for(lambda: self.out.exists() and "workers ready" in self.out.read_text(), what="the job's workers")

    def release(self) -> dict:
        self.release_file.touch()
        return wait_for(
            lambda: (r := show_json(self.id))["state"] not in ("PENDING", "RUNNING") and r, what=f"job {self.id} to end"
        )


def gateway_processes(home: Path) -> list[psutil.Process]:
    """The embedded gateway of ``home`` and every process under it (schedulers, nannies, workers)."""
    server = embedded.status(str(home), current_user())
    assert server is not None, f"no embedded gateway runs for {home}"
    gateway = psutil.Process(server.pid)
    return [gateway, *gateway.children(recursive=True)]


def role(proc: psutil.Process) -> str:
    """What a process under the embedded gateway is (a worker runs in a process its nanny spawned)."""
    cmdline = " ".join(proc.cmdline())
    for marker, name in (
        ("dask-gateway-proxy", "proxy"),
        ("dask_gateway_server", "gateway"),
        ("dask scheduler", "scheduler"),
        ("dask worker", "nanny"),
    ):
        if marker in cmdline:
            return name
    parent = proc.parent()
    if "multiprocessing.spawn" in cmdline and parent is not None and role(parent) == "nanny":
        return "worker"
    return cmdline


def test_every_socket_of_the_embedded_gateway_listens_on_loopback_only(home: Path, tmp_path: Path) -> None:
    job = HeldJob(tmp_path, workers=2)
    try:
        listening = {
            (proc.pid, role(proc), conn.laddr.ip, conn.laddr.port)
            for proc in gateway_processes(home)
            for conn in proc.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN
        }
    finally:
        record = job.release()
    assert record["state"] == "SUCCEEDED", record
    roles = [r for _, r in {(pid, r) for pid, r, _, _ in listening}]
    # The gateway, its proxy, the scheduler, the nannies and both workers' comm ports were all looked at.
    assert {"gateway", "proxy", "scheduler", "nanny"} <= set(roles) and roles.count("worker") == 2, listening
    wildcard = sorted(s for s in listening if s[2] in ("0.0.0.0", "::"))
    assert wildcard == [], f"listening on every interface: {wildcard}"


def test_gateway_scheduler_and_workers_do_not_inherit_the_sessions_credentials(
    own_gateway_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET, "kbatch-test-secret")
    job = HeldJob(tmp_path, workers=1)  # its driver starts the gateway of own_gateway_home
    try:
        environments = {(proc.pid, role(proc)): proc.environ() for proc in gateway_processes(own_gateway_home)}
    finally:
        record = job.release()
    assert record["state"] == "SUCCEEDED", record
    # The job itself still gets the variable (what a job inherits is --export's business).
    assert "workers ready kbatch-test-secret" in job.out.read_text()
    roles = [r for _, r in environments]
    assert {"gateway", "proxy", "scheduler", "nanny", "worker"} <= set(roles), roles
    leaked = sorted(key for key, env in environments.items() if SECRET in env)
    assert leaked == [], f"{SECRET} in the environment of {leaked}"
