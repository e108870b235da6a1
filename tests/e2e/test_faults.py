"""Whatever happens to a job, its cluster stops and its record and output survive."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (
    BIN,
    assert_cluster_stopped_by_its_job,
    cluster_status,
    clusters,
    ended,
    gateway_client,
    job_dirs,
    kbatch,
    kqueue_json,
    show_json,
    submit,
    wait_for,
    write_script,
)

from kbatch_dask import settings
from kbatch_dask.backends.local import embedded_gateway as embedded
from kbatch_dask.spec import current_user

pytestmark = pytest.mark.gateway

CONNECT = (
    "from dask.distributed import get_client\n"
    "get_client().wait_for_workers(1, timeout=60)\n"
    "print('started', flush=True)\n"
)


def started(path: Path) -> bool:
    return path.exists() and "started" in path.read_text()


@pytest.mark.parametrize(
    ("body", "exit_code", "reason"),
    [
        ("import os; os._exit(4)", 4, "exit code 4"),
        ("import ctypes; ctypes.string_at(0)", 128 + 11, "killed by signal 11 (SIGSEGV)"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 128 + 9, "killed by signal 9 (SIGKILL)"),
    ],
    ids=["os._exit", "segfault", "sigkill"],
)
def test_hard_exits_fail_with_code_or_signal_and_stop_the_cluster(
    home: Path, tmp_path: Path, body: str, exit_code: int, reason: str
) -> None:
    script = write_script(tmp_path / "hard.py", CONNECT + body + "\n")
    job = ended(submit("-o", str(tmp_path / "h.out"), str(script), "--dask-workers", "1"))
    assert (job["state"], job["exit_code"], job["reason"]) == ("FAILED", exit_code, reason)
    assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])


def test_supervisor_killed_cluster_stopped_by_dead_mans_switch(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "k.out"
    script = write_script(tmp_path / "victim.py", CONNECT + "import time\ntime.sleep(300)\n")
    job_id = submit("-o", str(out), str(script), "--dask-workers", "1")
    wait_for(lambda: started(out), what="the script to start")
    driver_log = home / "jobs" / job_id / "driver.log"  # the switch is armed while the script starts
    wait_for(lambda: "dead-man's switch armed" in driver_log.read_text(), what="the dead-man's switch")
    record = show_json(job_id)
    cluster = record["dask"]["cluster"]
    assert cluster_status(home, cluster) == "RUNNING"
    os.kill(record["pid"], signal.SIGKILL)  # the supervisor only: no cleanup code runs
    # Nothing else stops the cluster (the runner dies with its supervisor; gc is not run):
    # only the switch can bring it to STOPPED.
    wait_for(
        lambda: cluster_status(home, cluster) == "STOPPED",
        timeout=30,
        what="the dead-man's switch to stop the cluster",
    )
    job = show_json(job_id)
    assert job["state"] == "LOST" and job["reason"] == "driver process vanished"
    assert out.exists()


def test_dead_mans_switch_ignores_other_clients(home: Path, tmp_path: Path) -> None:
    """Clients that connect and leave (the runner, a notebook looking) don't trip it."""
    out = tmp_path / "o.out"
    peek = (
        "import time\nfrom kbatch_dask import get_cluster\n"
        "for _ in range(3):\n    c = get_cluster().get_client(); c.close(); time.sleep(3)\n"
        "print('still here', flush=True)\n"
    )
    script = write_script(tmp_path / "peek.py", CONNECT + peek)
    job = ended(submit("-o", str(out), str(script), "--dask-workers", "1"))
    assert job["state"] == "SUCCEEDED", out.read_text()
    assert "still here" in out.read_text()


def test_time_limit_ends_timeout_and_stops_the_cluster(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "slow.py", CONNECT + "import time\ntime.sleep(60)\nprint('finished')\n")
    job = ended(submit("--time", "0:05", "-o", str(tmp_path / "t.out"), str(script), "--dask-workers", "1"))
    # SIGTERM ended the script (128 + 15) long before its 60 s sleep was over.
    assert (job["state"], job["exit_code"], job["reason"]) == ("TIMEOUT", 143, "time limit of 5 s reached")
    assert "finished" not in (tmp_path / "t.out").read_text()
    assert "TIMEOUT" in (tmp_path / "t.out").read_text()  # kbatch says so in the output
    assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])


def test_bad_cluster_option_fails_with_the_gateways_message(home: Path, tmp_path: Path) -> None:
    """Refused by the gateway when the driver asks (the submit-time check can't see a
    gateway that isn't running yet); never stuck PENDING or RUNNING."""
    embedded.stop(str(home))  # so that submit cannot check the option first
    script = write_script(tmp_path / "x.py", "print('never')\n")
    job = ended(submit("-o", str(tmp_path / "b.out"), str(script), "--dask-workers", "1", "--worker-cores", "99"))
    assert job["state"] == "FAILED"
    assert "worker_cores" in job["reason"] and "99" in job["reason"], job["reason"]
    assert "never" not in (tmp_path / "b.out").read_text()


def test_unknown_dask_option_refused_at_submit_when_gateway_is_up(home: Path, tmp_path: Path) -> None:
    gateway_client(home, start=True).close()
    (tmp_path / "x.py").write_text("print(1)\n")
    proc = kbatch("x.py", "--dask-option", "worker_corse=2", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "Error: cluster option 'worker_corse': the gateway has no such option; it offers: worker_cores, worker_memory"
    )
    proc = kbatch("x.py", "--worker-cores", "99", cwd=tmp_path)
    assert proc.returncode == 2 and "--worker-cores 99: at most 4 (the gateway's limit)" in proc.stderr
    assert job_dirs(home) == []


def test_corrupt_record_is_an_error_row_not_a_crash(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "ok.py", "print('ok')\n")
    good = submit("-o", str(tmp_path / "ok.out"), str(script), "--dask-workers", "0")
    ended(good)
    broken = home / "jobs" / "zzzzz"
    broken.mkdir()
    (broken / "record.json").write_text('{"id": "zzzzz", "state": "RUNN')  # half-written
    rows = {r["id"]: r for r in kqueue_json()}
    assert rows[good]["state"] == "SUCCEEDED"
    assert rows["zzzzz"]["state"] == "LOST" and "record unreadable" in rows["zzzzz"]["reason"]
    table = subprocess.run([str(BIN / "kqueue")], capture_output=True, text=True)
    assert table.returncode == 0 and "zzzzz" in table.stdout


def test_parallel_submissions_get_distinct_ids_and_complete_records(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "p.py", "print('p')\n")
    procs = [
        subprocess.Popen(
            [str(BIN / "kbatch"), "--parsable", "-o", str(tmp_path / "p-%j.out"), str(script), "--dask-workers", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(20)
    ]
    ids = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(ids)) == 20 and sorted(ids) == job_dirs(home)
    for job_id in ids:
        job = ended(job_id)
        assert job["state"] == "SUCCEEDED" and (tmp_path / f"p-{job_id}.out").read_text() == "p\n"


class _Gateway:
    """A gateway the tests start and stop on fixed ports, used via gateway.address."""

    def __init__(self, home: Path) -> None:
        self.home = str(home)
        self.ports = tuple(embedded.free_ports(2))
        self.password = "test-secret"
        (home / "gateway").mkdir(parents=True, exist_ok=True)
        (home / "gateway" / "secret").write_text(self.password)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DASK_GATEWAY__ADDRESS": f"http://127.0.0.1:{self.ports[0]}",
            "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{self.ports[1]}",
            "DASK_GATEWAY__AUTH__TYPE": "basic",
            "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": self.password,
            "DASK_KBATCH__DRIVER__GATEWAY_RETRY": "30",
        }

    def start(self) -> None:
        embedded.start(self.home, current_user(), settings.load().embedded_gateway, ports=self.ports)

    def stop(self) -> None:
        embedded.stop(self.home)

    def running_clusters(self) -> list[str]:
        return [c.name for c in clusters(Path(self.home)).values() if c.status.is_active()]


@pytest.fixture
def own_gateway(tmp_path: Path) -> _Gateway:
    gw = _Gateway(tmp_path / "own-gateway")
    yield gw
    gw.stop()


def test_gateway_down_at_start_then_up_within_the_retry_window(
    home: Path, tmp_path: Path, own_gateway: _Gateway
) -> None:
    script = write_script(tmp_path / "late.py", CONNECT + "print('ran')\n")
    job_id = submit("-o", str(tmp_path / "late.out"), str(script), "--dask-workers", "1", env=own_gateway.env())
    driver_log = home / "jobs" / job_id / "driver.log"
    # Start the gateway only once the driver has found it down, so the job runs only if it retried.
    wait_for(lambda: driver_log.exists() and "retrying in" in driver_log.read_text(), what="the driver to retry")
    own_gateway.start()
    job = ended(job_id, env=own_gateway.env())
    assert job["state"] == "SUCCEEDED", (tmp_path / "late.out").read_text()
    assert "ran" in (tmp_path / "late.out").read_text()
    assert own_gateway.running_clusters() == []


def test_gateway_restarted_mid_job_ends_terminal_with_no_cluster_left(
    home: Path, tmp_path: Path, own_gateway: _Gateway
) -> None:
    own_gateway.start()
    out = tmp_path / "r.out"
    script = write_script(tmp_path / "restart.py", CONNECT + "import time\ntime.sleep(120)\n")
    job_id = submit("-o", str(out), str(script), "--dask-workers", "1", env=own_gateway.env())
    wait_for(lambda: started(out), what="the script to start")
    own_gateway.stop()  # stops its clusters, as a gateway restart does
    own_gateway.start()
    job = ended(job_id, timeout=60, env=own_gateway.env())
    assert job["state"] == "FAILED" and "stopped while the job ran" in job["reason"]
    assert own_gateway.running_clusters() == []


def test_gc_stops_clusters_of_ended_jobs_and_is_idempotent(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.out"
    script = write_script(tmp_path / "gc.py", CONNECT + "import time\ntime.sleep(300)\n")
    # Without the dead-man's switch, a job killed outright leaves its cluster running:
    # the orphan gc is the last backstop for.
    no_switch = {**os.environ, "DASK_KBATCH__DRIVER__DEAD_MANS_SWITCH_GRACE": "0"}
    job_id = submit("-o", str(out), str(script), "--dask-workers", "1", env=no_switch)
    wait_for(lambda: started(out), what="the script to start")
    record = show_json(job_id)
    cluster = record["dask"]["cluster"]
    os.killpg(record["pid"], signal.SIGKILL)  # the whole job: supervisor and runner
    job = wait_for(lambda: (r := show_json(job_id))["state"] == "LOST" and r, what="LOST")
    assert job["reason"] == "driver process vanished" and out.exists()
    try:
        assert cluster_status(home, cluster) == "RUNNING"
        dry = kbatch("gc", "--dry-run", check=True).stdout
        assert dry.splitlines() == [f"would stop cluster {cluster} (job {job_id} LOST)"]
        assert cluster_status(home, cluster) == "RUNNING"  # a dry run stops nothing
        done = kbatch("gc", check=True).stdout
        assert done.splitlines() == [f"stopped cluster {cluster} (job {job_id} LOST)"]
        assert cluster_status(home, cluster) in ("STOPPING", "STOPPED")
        assert "Nothing to stop" in kbatch("gc", check=True).stdout
        wait_for(lambda: cluster_status(home, cluster) == "STOPPED", what=f"cluster {cluster} to reach STOPPED")
    finally:  # should gc fail, the orphan must not outlive the test (the run checks none is left)
        with gateway_client(home) as client:
            client.stop_cluster(cluster)


def test_gc_after_faults_finds_nothing(home: Path, tmp_path: Path) -> None:
    """A job that ended by a fault stopped its own cluster, so gc has nothing to do;
    and gc leaves the cluster of a job still running alone."""
    out = tmp_path / "run.out"
    sleeper = write_script(tmp_path / "run.py", CONNECT + "import time\ntime.sleep(300)\n")
    running = submit("-o", str(out), str(sleeper), "--dask-workers", "1")
    try:
        wait_for(lambda: started(out), what="the running job's script to start")
        cluster = show_json(running)["dask"]["cluster"]
        crash = write_script(tmp_path / "crash.py", CONNECT + "import os; os._exit(4)\n")
        crashed = ended(submit("-o", str(tmp_path / "crash.out"), str(crash), "--dask-workers", "1"))
        assert (crashed["state"], crashed["reason"]) == ("FAILED", "exit code 4")

        assert kbatch("gc", "--dry-run", check=True).stdout.splitlines() == [
            "Nothing to stop: every running cluster belongs to a running job."
        ]
        assert "Nothing to stop" in kbatch("gc", check=True).stdout
        assert cluster_status(home, cluster) == "RUNNING"
        assert show_json(running)["state"] == "RUNNING"
    finally:
        kbatch("cancel", running, check=True)
