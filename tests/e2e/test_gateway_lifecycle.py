"""The embedded gateway's life: one per state directory, always visible, and never
stopped under running jobs in silence.

Each test has a state directory of its own (not the run's shared gateway), so that
it can watch that directory's gateway start and stop, and count its processes."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import isolated_session, kbatch, show_json, wait_for, write_script

from e2e.test_faults import CONNECT, ended, started, submit
from kbatch_dask.backends.local import embedded_gateway as embedded

pytestmark = pytest.mark.gateway

FORCED_REASON = "the embedded Dask-Gateway was stopped by `kbatch gateway stop --force`"


def processes_under(directory: Path) -> dict[int, str]:
    """pid -> command line of every process working in ``directory`` or below it
    (the gateway works in its state directory, its schedulers and workers below it)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone, or not ours
        if cmdline and (cwd == str(directory) or cwd.startswith(f"{directory}/")):
            found[int(entry)] = cmdline
    return found


def gateway_pids(gwdir: Path) -> list[int]:
    """The dask-gateway-server processes of the state directory whose gateway/ is ``gwdir``
    (not their dask-gateway-proxy, which lives in the same package)."""
    return sorted(pid for pid, cmd in processes_under(gwdir).items() if "-m dask_gateway_server" in cmd)


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state directory with no gateway yet; whatever runs in it is ended afterwards."""
    path = isolated_session(tmp_path, monkeypatch, "fresh-home")
    yield path
    for job_dir in (path / "jobs").glob("*"):
        kbatch("cancel", job_dir.name)
    embedded.stop(str(path))
    # A gateway this test started that no record points at (the fault under test).
    for pid in processes_under(path / "gateway"):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_job_cancelled_while_the_gateway_starts_leaves_one_visible_gateway_that_the_next_job_reuses(
    fresh_home: Path, tmp_path: Path
) -> None:
    gwdir = fresh_home / "gateway"
    script = write_script(tmp_path / "connect.py", CONNECT)
    first = submit("-o", str(tmp_path / "first.out"), str(script), "--dask-workers", "1")
    # Freeze the gateway the first job's driver started, so that it is still starting
    # (not yet answering) when the job is cancelled.
    (pid,) = wait_for(lambda: gateway_pids(gwdir), interval=0.01, what="the first job to start the gateway")
    os.kill(pid, signal.SIGSTOP)
    try:
        status = kbatch("gateway", "status")
        assert status.returncode == 0 and "starting" in status.stdout and f"pid {pid}" in status.stdout, status
        kbatch("cancel", first, check=True)
        assert show_json(first)["state"] == "CANCELLED"
        assert gateway_pids(gwdir) == [pid]  # the cancelled job left its gateway running
        status = kbatch("gateway", "status")
        assert status.returncode == 0 and f"pid {pid}" in status.stdout, status
    finally:
        os.kill(pid, signal.SIGCONT)
    second = submit("-o", str(tmp_path / "second.out"), str(script), "--dask-workers", "1")
    assert ended(second)["state"] == "SUCCEEDED", (tmp_path / "second.out").read_text()
    status = kbatch("gateway", "status")
    assert status.returncode == 0 and "running" in status.stdout and f"pid {pid}" in status.stdout, status
    assert gateway_pids(gwdir) == [pid]


def test_gateway_stop_refuses_while_a_job_uses_it_naming_the_job(fresh_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy.out"
    script = write_script(tmp_path / "busy.py", CONNECT + "import time\ntime.sleep(300)\n")
    job_id = submit("-o", str(out), str(script), "--dask-workers", "1")
    wait_for(lambda: started(out), what="the script to start")
    cluster = show_json(job_id)["dask"]["cluster"]
    gateways = gateway_pids(fresh_home / "gateway")

    proc = kbatch("gateway", "stop")

    assert proc.returncode == 1, proc
    assert job_id in proc.stderr and "--force" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line
    assert gateway_pids(fresh_home / "gateway") == gateways
    assert show_json(job_id)["state"] == "RUNNING"
    assert processes_under(fresh_home / "gateway" / "clusters" / cluster), "the job's cluster was stopped"


def test_gateway_stop_force_fails_the_jobs_using_it_and_leaves_no_process(fresh_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "busy.out"
    script = write_script(tmp_path / "busy.py", CONNECT + "import time\ntime.sleep(300)\n")
    job_id = submit("-o", str(out), str(script), "--dask-workers", "1")
    plain = write_script(tmp_path / "plain.py", "import time\nprint('started', flush=True)\ntime.sleep(300)\n")
    plain_out = tmp_path / "plain.out"
    plain_id = submit("-o", str(plain_out), str(plain), "--dask-workers", "0")  # no cluster, no gateway
    wait_for(lambda: started(out) and started(plain_out), what="the scripts to start")
    assert processes_under(fresh_home / "gateway")

    proc = kbatch("gateway", "stop", "--force")

    assert proc.returncode == 0, proc
    assert job_id in proc.stdout and plain_id not in proc.stdout, proc.stdout
    job = show_json(job_id)
    assert (job["state"], job["reason"]) == ("FAILED", FORCED_REASON)
    assert FORCED_REASON in out.read_text()  # said in the job's output too
    assert show_json(plain_id)["state"] == "RUNNING"
    # No gateway, scheduler or worker of this state directory is left.
    assert processes_under(fresh_home / "gateway") == {}
    assert kbatch("gateway", "status").returncode == 1
