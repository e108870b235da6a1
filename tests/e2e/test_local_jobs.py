"""End to end on the local backend against a real embedded Dask-Gateway."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import (
    ROOT,
    assert_cluster_stopped_by_its_job,
    ended,
    kbatch,
    kqueue_json,
    show_json,
    submit,
    wait_for,
    write_script,
)

pytestmark = pytest.mark.gateway

SLEEPER = """\
import time
from dask.distributed import get_client
client = get_client()
client.wait_for_workers(2, timeout=60)
print("workers ready", flush=True)
time.sleep({seconds})
print("done", flush=True)
"""


def assert_cluster_stopped(home: Path, job: dict) -> None:
    assert job["dask"]["cluster"], job
    assert_cluster_stopped_by_its_job(home, job["dask"]["cluster"])


def test_hello_dask_waits_and_writes_its_result(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "hello-%j.out"
    proc = kbatch("-o", str(out), "--wait", str(ROOT / "examples" / "hello_dask.py"), "--dask-workers", "2")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[2]
    text = (tmp_path / f"hello-{job_id}.out").read_text()
    assert "sum of squares of 0..999 = 332833500" in text
    job = show_json(job_id)
    assert job["state"] == "SUCCEEDED" and job["exit_code"] == 0
    assert_cluster_stopped(home, job)


def test_running_job_shows_cluster_workers_and_dashboard(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "sleeper.py", SLEEPER.format(seconds=8))
    job_id = submit("-o", str(tmp_path / "s.out"), str(script), "--dask-workers", "2")

    def running_with_workers() -> dict | None:
        rows = [r for r in kqueue_json() if r["id"] == job_id]
        return rows[0] if rows and (rows[0]["dask"] or {}).get("live_workers") == 2 else None

    row = wait_for(running_with_workers, timeout=60, what="2 live workers in the queue")
    assert row["state"] == "RUNNING"
    assert row["dask"]["cluster"] and row["dask"]["cluster_status"] == "RUNNING"
    with urllib.request.urlopen(row["dask"]["dashboard"], timeout=10) as resp:
        assert resp.status == 200

    job = ended(job_id)
    assert job["state"] == "SUCCEEDED" and job["exit_code"] == 0
    assert_cluster_stopped(home, job)
    assert "done" in (tmp_path / "s.out").read_text()


@pytest.mark.parametrize(
    ("body", "exit_code", "in_output"),
    [
        ("raise ValueError('boom')", 1, "ValueError: boom"),
        ("import sys; sys.exit(3)", 3, None),
    ],
)
def test_failing_scripts_end_failed_and_stop_their_cluster(
    home: Path, tmp_path: Path, body: str, exit_code: int, in_output: str | None
) -> None:
    script = write_script(tmp_path / "fails.py", f"from dask.distributed import get_client\nget_client()\n{body}\n")
    job_id = submit("-o", str(tmp_path / "f.out"), str(script), "--dask-workers", "1")
    job = ended(job_id)
    assert job["state"] == "FAILED"
    assert job["exit_code"] == exit_code
    text = (tmp_path / "f.out").read_text()
    if in_output:
        assert "Traceback" in text and in_output in text
        assert "kbatch_dask" not in text.split("Traceback", 1)[1].split("\n")[1]  # user frames first
    assert_cluster_stopped(home, job)
    # `kbatch wait` exits with the job's exit code.
    assert kbatch("wait", job_id).returncode == exit_code


def test_cancel_ends_cancelled_and_stops_the_cluster(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "long.py", SLEEPER.format(seconds=300))
    job_id = submit("-o", str(tmp_path / "c.out"), str(script), "--dask-workers", "2")
    wait_for(
        lambda: "workers ready" in (tmp_path / "c.out").read_text() if (tmp_path / "c.out").exists() else False,
        timeout=60,
        what="the script to start",
    )
    proc = kbatch("cancel", job_id, check=True)
    assert "CANCELLED" in proc.stdout
    job = show_json(job_id)
    assert job["state"] == "CANCELLED"
    assert_cluster_stopped(home, job)
    assert (tmp_path / "c.out").exists()  # output is never deleted
    # Cancelling again is harmless and says so.
    again = kbatch("cancel", job_id)
    assert again.returncode == 0 and "already ended" in again.stdout


def test_job_survives_the_process_that_submitted_it(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "survivor.py", "import time\ntime.sleep(4)\nprint('survived')\n")
    submitter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom kbatch_dask import submit\n"
            f"job = submit({str(script)!r}, dask_workers=0, output={str(tmp_path / 'v.out')!r})\n"
            "print(job.id, flush=True)\ntime.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert submitter.stdout is not None
    job_id = submitter.stdout.readline().strip()
    os.killpg(submitter.pid, signal.SIGKILL)
    submitter.wait()
    job = ended(job_id)
    assert job["state"] == "SUCCEEDED"
    assert "survived" in (tmp_path / "v.out").read_text()


def test_submit_returns_without_waiting_for_the_gateway(home: Path, tmp_path: Path) -> None:
    """Submit never talks to the gateway: with an unreachable one it still returns
    a job id, and the job then fails naming the gateway (how fast submit returns is
    the benchmark's business)."""
    script = write_script(tmp_path / "x.py", "print('never')\n")
    env = {**os.environ, "DASK_GATEWAY__ADDRESS": "http://127.0.0.1:9", "DASK_KBATCH__DRIVER__GATEWAY_RETRY": "2"}
    proc = kbatch("--parsable", "-o", str(tmp_path / "x.out"), str(script), "--dask-workers", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip()
    job = wait_for(
        lambda: (
            (r := json.loads(kbatch("show", job_id, "-o", "json", env=env).stdout))["state"]
            not in ("PENDING", "RUNNING")
            and r
        ),
        timeout=30,
        what="the job to fail",
    )
    assert job["state"] == "FAILED"
    assert "Dask-Gateway" in job["reason"] and "127.0.0.1:9" in job["reason"]
    assert "never" not in (tmp_path / "x.out").read_text()


def test_job_without_cluster_and_script_arguments(home: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "args.py", "import os, sys\nprint(sys.argv[1:], os.environ.get('KBATCH_DASK_CLUSTER'))\n"
    )
    proc = kbatch(
        "-o",
        str(tmp_path / "a.out"),
        "--wait",
        str(script),
        "--dask-workers",
        "0",
        "--epochs",
        "3",
        "--",
        "-o",
        "x",
        "--wait",
    )
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "a.out").read_text()
    assert "['--epochs', '3', '-o', 'x', '--wait'] None" in text


def test_shell_script_runs_with_cluster_name(home: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "job.sh",
        "#!/bin/sh\n#KBATCH --dask-workers 1\necho cluster=$KBATCH_DASK_CLUSTER job=$KBATCH_DASK_JOB_ID\n",
    )
    proc = kbatch("--output", str(tmp_path / "sh.out"), "--wait", str(script))
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "sh.out").read_text()
    assert "cluster=" in text and "cluster= " not in text


def test_logs_prints_and_follows_output(home: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "talk.py", "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.5)\n"
    )
    job_id = submit("-o", str(tmp_path / "t.out"), str(script), "--dask-workers", "0")
    followed = kbatch("logs", job_id, "-f", timeout=60)
    assert followed.returncode == 0
    assert followed.stdout.splitlines() == ["line 0", "line 1", "line 2"]
    assert kbatch("logs", job_id).stdout == followed.stdout


def test_lost_driver_is_reported_lost(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "lost.py", "import time\ntime.sleep(60)\n")
    job_id = submit("-o", str(tmp_path / "l.out"), str(script), "--dask-workers", "0")
    record = wait_for(lambda: (r := show_json(job_id))["state"] == "RUNNING" and r, what="RUNNING")
    os.killpg(record["pid"], signal.SIGKILL)
    job = wait_for(lambda: (r := show_json(job_id))["state"] == "LOST" and r, timeout=10, what="LOST")
    assert job["reason"] == "driver process vanished"


def test_modules_in_the_jobs_working_directory_do_not_shadow_the_drivers(home: Path, tmp_path: Path) -> None:
    """A working directory holding ``copy.py`` or ``json.py`` (a user's own) is the
    job's, not its driver's: the driver, started there with ``python -m``, would
    import them instead of the standard library's and die before it could record why."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("copy", "json", "logging"):
        (work / f"{name}.py").write_text(f"raise SystemExit('the driver imported the job\\'s {name}.py')\n")
    script = write_script(tmp_path / "job.sh", "#!/bin/sh\necho ran in $(pwd)\n")
    proc = kbatch("-o", str(tmp_path / "w.out"), "--wait", str(script), "--dask-workers", "0", cwd=work)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (tmp_path / "w.out").read_text() == f"ran in {work}\n"
