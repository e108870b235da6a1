"""What the local backend makes of --retries, --cpus, --gpus and --memory, with real
`kbatch` processes: a failed attempt runs again, and the resources asked for are
enforced as far as this machine allows, with a warning for the rest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import assert_cluster_stopped_by_its_job, ended, kbatch, kqueue_json, wait_for, write_script

pytestmark = pytest.mark.gateway

# Fails on its first two attempts and succeeds on its third; on the second it waits
# for the test's go-ahead, so the test can look at the queue while it runs.
FLAKY = """\
import os, pathlib, time
from dask.distributed import get_client
get_client()
here = pathlib.Path({folder!r})
count = here / "attempts"
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
print(f"attempt {{n}} on cluster {{os.environ['KBATCH_DASK_CLUSTER']}}", flush=True)
if n == 2:
    (here / "second").write_text("running")
    while not (here / "go").exists():
        time.sleep(0.1)
raise SystemExit(0 if n == 3 else 1)
"""


def submit(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """The job's id and what `kbatch` said on stderr."""
    proc = kbatch("--parsable", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), proc.stderr


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Warning:")]


def test_retries_run_a_failed_job_again_on_a_fresh_cluster_with_the_attempt_shown(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "flaky.py", FLAKY.format(folder=str(tmp_path)))
    out = tmp_path / "flaky.out"
    job_id, _ = submit("--retries", "2", "-o", str(out), str(script), "--dask-workers", "1")

    wait_for(lambda: (tmp_path / "second").exists(), timeout=120, what="the second attempt to start")
    row = next(r for r in kqueue_json() if r["id"] == job_id)
    assert (row["state"], row["attempt"], row["reason"]) == ("RUNNING", 2, "attempt 2 of 3")
    (tmp_path / "go").write_text("")

    job = ended(job_id)
    assert (job["state"], job["exit_code"], job["attempt"]) == ("SUCCEEDED", 0, 3)
    lines = out.read_text().splitlines()
    notes = [line for line in lines if line.startswith("kbatch:")]
    assert notes == [
        f"kbatch: job {job_id} attempt 1 of 3",
        f"kbatch: job {job_id} FAILED: exit code 1 (attempt 1 of 3; retrying)",
        f"kbatch: job {job_id} attempt 2 of 3",
        f"kbatch: job {job_id} FAILED: exit code 1 (attempt 2 of 3; retrying)",
        f"kbatch: job {job_id} attempt 3 of 3",
    ]
    used = [line.rsplit(" ", 1)[1] for line in lines if line.startswith("attempt ")]
    assert len(used) == len(set(used)) == 3  # each attempt had a cluster of its own
    for name in used:
        assert_cluster_stopped_by_its_job(home, name)


def test_retries_used_up_end_failed_with_the_last_attempt(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "fails.py", "raise SystemExit(5)\n")
    out = tmp_path / "fails.out"
    job_id, _ = submit("--retries", "1", "-o", str(out), str(script))
    job = ended(job_id)
    assert (job["state"], job["exit_code"], job["reason"], job["attempt"]) == ("FAILED", 5, "exit code 5", 2)
    assert [line for line in out.read_text().splitlines() if line.startswith("kbatch:")] == [
        f"kbatch: job {job_id} attempt 1 of 2",
        f"kbatch: job {job_id} FAILED: exit code 5 (attempt 1 of 2; retrying)",
        f"kbatch: job {job_id} attempt 2 of 2",
        f"kbatch: job {job_id} FAILED: exit code 5",
    ]
    assert kbatch("wait", job_id).returncode == 5


def test_a_job_without_retries_runs_once_and_says_nothing_of_attempts(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "fails.py", "raise SystemExit(5)\n")
    out = tmp_path / "once.out"
    job = ended(submit("-o", str(out), str(script))[0])
    assert (job["state"], job["attempt"]) == ("FAILED", 1)
    assert out.read_text() == f"kbatch: job {job['id']} FAILED: exit code 5\n"


AFFINITY = "import os\nprint('cpus', sorted(os.sched_getaffinity(0)))\n"


def test_cpus_pin_the_script_to_that_many_cpus(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "affinity.py", AFFINITY)
    out = tmp_path / "affinity.out"
    job_id, stderr = submit("--cpus", "1", "-o", str(out), str(script))
    assert ended(job_id)["state"] == "SUCCEEDED"
    assert warnings(stderr) == []
    (line,) = [line for line in out.read_text().splitlines() if line.startswith("cpus")]
    assert len(json.loads(line.split(" ", 1)[1])) == 1


ENVIRONMENT = "import os\nprint('devices', repr(os.environ.get('CUDA_VISIBLE_DEVICES')))\n"


def test_gpus_choose_that_many_of_the_sessions_devices(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "gpus.py", ENVIRONMENT)
    out = tmp_path / "gpus.out"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "4,5,6"}
    job_id, stderr = submit("--gpus", "2", "-o", str(out), str(script), env=env)
    assert ended(job_id)["state"] == "SUCCEEDED"
    assert warnings(stderr) == []
    assert "devices '4,5'" in out.read_text()


def test_gpus_on_a_machine_without_one_warn_and_give_the_script_none(home: Path, tmp_path: Path) -> None:
    if os.path.isdir("/proc/driver/nvidia/gpus"):
        pytest.skip("this machine has GPUs")
    script = write_script(tmp_path / "gpus.py", ENVIRONMENT)
    out = tmp_path / "nogpu.out"
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    job_id, stderr = submit("--gpus", "1", "-o", str(out), str(script), env=env)
    assert warnings(stderr) == ["Warning: not enforced here: --gpus 1 (this machine has no GPU)"]
    assert ended(job_id)["state"] == "SUCCEEDED"
    assert "devices ''" in out.read_text()


def test_what_cannot_be_enforced_is_one_warning_line(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "affinity.py", AFFINITY)
    out = tmp_path / "many.out"
    cpus = len(os.sched_getaffinity(0))
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    job_id, stderr = submit("--cpus", "64", "--gpus", "3", "-o", str(out), str(script), env=env)
    assert warnings(stderr) == [
        f"Warning: not enforced here: --cpus 64 (this machine has {cpus} CPU(s): the job gets them all), "
        "--gpus 3 (this machine has no GPU)"
    ]
    assert ended(job_id)["state"] == "SUCCEEDED"
    (line,) = [line for line in out.read_text().splitlines() if line.startswith("cpus")]
    assert len(json.loads(line.split(" ", 1)[1])) == cpus


HOG = """\
import time
blocks = []
for _ in range(40):
    blocks.append(b"x" * 20_000_000)  # written, so resident: 800 MB in all
    time.sleep(0.05)
print("survived", flush=True)
"""


def test_memory_over_the_limit_ends_the_job_oom_with_the_reason(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "hog.py", HOG)
    out = tmp_path / "hog.out"
    job_id, stderr = submit("--memory", "200M", "-o", str(out), str(script))
    assert warnings(stderr) == []
    job = ended(job_id)
    reason = "memory limit of 200M exceeded"
    assert (job["state"], job["exit_code"], job["reason"]) == ("OOM", 137, reason)
    text = out.read_text()
    assert "survived" not in text
    assert text.splitlines()[-1] == f"kbatch: job {job_id} OOM: {reason}"


def test_each_attempt_gets_the_whole_time_limit(home: Path, tmp_path: Path) -> None:
    """--time is per attempt (as Slurm's, and as a Kubernetes pod's driver counts it):
    a second attempt that needs 4 s of an 8 s limit succeeds after a first that used 5 s."""
    script = write_script(
        tmp_path / "second_try.py",
        "import pathlib, sys, time\n"
        f"first = not pathlib.Path({str(tmp_path / 'tried')!r}).exists()\n"
        f"pathlib.Path({str(tmp_path / 'tried')!r}).touch()\n"
        "time.sleep(5 if first else 4)\n"
        "sys.exit(1 if first else 0)\n",
    )
    job_id, _ = submit("--retries", "1", "--time", "0:08", str(script), "--dask-workers", "0")
    job = ended(job_id)
    assert (job["state"], job["exit_code"], job["attempt"]) == ("SUCCEEDED", 0, 2), job


def test_mail_asked_of_the_local_backend_is_a_warning_not_silence(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "mailed.py", "print('done')\n")
    job_id, stderr = submit("--mail-type", "end,fail", "--mail-user", "a@b.org", str(script), "--dask-workers", "0")
    assert warnings(stderr) == [
        "Warning: --mail-type END,FAIL: the local backend sends no mail; the kbatch-dask service does (--backend hub)"
    ]
    assert ended(job_id)["state"] == "SUCCEEDED"
