"""Every process a job's script starts ends with the job, as under Slurm: a plain
child left at a normal end, a ``setsid`` daemon, an orphaned grandchild, and
everything on cancel."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import kbatch, show_json, wait_for, write_script

pytestmark = pytest.mark.gateway

SPAWNS = """\
import subprocess, sys, time
plain = subprocess.Popen(["sleep", "300"])
daemon = subprocess.Popen(["sleep", "301"], start_new_session=True)
# A grandchild whose parent exits at once: re-parented, not to the script.
subprocess.run(["sh", "-c", "sleep 302 & echo $! > grandchild.pid"], check=True)
with open("pids", "w") as f:
    f.write(f"{plain.pid} {daemon.pid} {open('grandchild.pid').read().strip()}\\n")
if sys.argv[1:] == ["linger"]:
    time.sleep(300)
"""


def alive(pid: int) -> bool:
    """Running (a zombie has ended: only its parent has not collected it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def spawned(tmp_path: Path) -> list[int]:
    pids = wait_for(lambda: (tmp_path / "pids").exists() and (tmp_path / "pids").read_text().split(), what="pids")
    return [int(p) for p in pids]


def test_processes_a_script_leaves_end_with_its_job(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "spawn.py", SPAWNS)
    proc = kbatch("--wait", "--parsable", "-o", str(tmp_path / "out"), str(script), "--dask-workers", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    pids = spawned(tmp_path)  # written before the job ended; --wait returned once it had
    assert show_json(proc.stdout.split()[0])["state"] == "SUCCEEDED"
    assert [p for p in pids if alive(p)] == []
    assert (
        "process(es) the job left running" in (Path(home) / "jobs" / proc.stdout.split()[0] / "driver.log").read_text()
    )


def test_cancel_ends_every_process_of_the_job(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "spawn.py", SPAWNS)
    job_id = kbatch("--parsable", "-o", str(tmp_path / "out"), str(script), "--dask-workers", "0", "--", "linger",
                    cwd=tmp_path, check=True).stdout.strip()  # fmt: skip
    pids = spawned(tmp_path)
    assert all(alive(p) for p in pids)
    kbatch("cancel", job_id, check=True)
    assert show_json(job_id)["state"] == "CANCELLED"
    wait_for(lambda: not any(alive(p) for p in pids), timeout=30, what="the job's processes to end")


def test_a_job_that_leaves_nothing_says_nothing(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "quiet.py", "print('done')\n")
    proc = kbatch("--wait", "--parsable", "-o", str(tmp_path / "out"), str(script), "--dask-workers", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    log = (Path(home) / "jobs" / proc.stdout.split()[0] / "driver.log").read_text()
    assert "left running" not in log, log
    assert os.path.exists(tmp_path / "out") and (tmp_path / "out").read_text() == "done\n"
