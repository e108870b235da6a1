"""A service job's result and output outlive the files its pod wrote: the
driver uploads them with the job's own credential before it reports the end,
and the service serves an ended job's result and logs from its archive only
(kbatch_dask/service/archive.py). Each test deletes the files the pod wrote on
alice's home volume once the job has ended; the service still serves them, as
it must on a real cluster, where it does not mount users' homes at all."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from kbatch_dask.driver.payload import unpack_result

from .conftest import Service, User, run
from .test_driver_events import events, secret_env
from .test_service import submit

pytestmark = pytest.mark.gateway

MAX_LOG_BYTES = 20000
MAX_RESULT_BYTES = 100000

FUNCTION_JOB = """\
import sys
from kbatch_dask import submit_with_cluster


def answer(x, big=False):
    print("computing", file=sys.stderr)
    return b"x" * 200000 if big else x * 2


job = submit_with_cluster(answer, 21, kwargs={{"big": {big}}}, n_workers=0, time="10:00")
job.wait(timeout=180)
print(job.id)
"""
# Output and error files of their own, and a failure (the driver's note goes to the error file).
SPLIT = """\
import sys
print("out line", flush=True)
print("err 1", file=sys.stderr)
print("err 2", file=sys.stderr)
sys.exit(3)
"""
# More output than the archive keeps.
CHATTY = "for i in range(3000):\n    print(f'line {i:05d}')\n"


@pytest.fixture(scope="module")
def service_settings() -> dict[str, str]:
    return {
        "DASK_KBATCH__SERVICE__ARCHIVE__MAX_LOG_BYTES": str(MAX_LOG_BYTES),
        "DASK_KBATCH__SERVICE__ARCHIVE__MAX_RESULT_BYTES": str(MAX_RESULT_BYTES),
    }


def get_raw(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def put(service: Service, path: str, authorization: str, data: bytes) -> int:
    request = urllib.request.Request(service.api(path), data, {"Authorization": authorization}, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def function_job(alice: User, big: bool = False) -> str:
    (alice.home / "fn_job.py").write_text(FUNCTION_JOB.format(big=big))
    proc = subprocess.run(
        [sys.executable, "fn_job.py"], cwd=alice.home, env=alice.env, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def remove_files_of(alice: User, job_id: str) -> None:
    """What the job's pod wrote on alice's home: its output, error and result files."""
    written = [p for p in alice.home.rglob(f"*{job_id}*") if p.is_file()]
    assert written  # the pod did write them
    for path in written:
        path.unlink()


def test_an_ended_function_jobs_result_is_served_after_the_file_its_pod_wrote_is_gone(
    service: Service, alice: User
) -> None:
    job_id = function_job(alice)
    remove_files_of(alice, job_id)
    status, data = get_raw(service.api(f"/jobs/{job_id}/result"), alice.token)
    assert status == 200, data
    assert unpack_result(data) == 42
    # Its stderr went to its output file (no -e), archived too.
    assert "computing" in run(alice, "logs", job_id).stdout


def test_an_ended_jobs_output_and_error_file_are_served_after_the_files_are_gone(service: Service, alice: User) -> None:
    job_id = submit(alice, "split.py", SPLIT, "--dask-workers", "0", "-o", "split-%j.out", "-e", "split-%j.err")
    assert run(alice, "wait", job_id, timeout=180).returncode == 3
    remove_files_of(alice, job_id)
    assert run(alice, "logs", job_id).stdout == "out line\n"
    errors = run(alice, "logs", "--stderr", job_id)
    assert errors.returncode == 0, errors.stderr
    assert errors.stdout == f"err 1\nerr 2\nkbatch: job {job_id} FAILED: exit code 3\n"
    assert run(alice, "logs", "--stderr", "-n", "1", job_id).stdout == f"kbatch: job {job_id} FAILED: exit code 3\n"
    both = run(alice, "logs", "--all", job_id).stdout
    assert both.splitlines()[1] == "out line" and both.splitlines()[-1].endswith("FAILED: exit code 3")


def test_the_archive_keeps_the_tail_of_a_long_output_and_says_what_was_cut(service: Service, alice: User) -> None:
    job_id = submit(alice, "chatty.py", CHATTY, "--dask-workers", "0")
    assert run(alice, "wait", job_id, timeout=180).returncode == 0
    remove_files_of(alice, job_id)
    status, data = get_raw(service.api(f"/jobs/{job_id}/logs"), alice.token)
    assert status == 200 and len(data) <= MAX_LOG_BYTES
    first, *rest = data.decode().splitlines()
    assert first.startswith("kbatch: the first ") and first.endswith("(kbatch.service.archive.max-log-bytes 20000)")
    cut = int(first.split()[3])
    assert cut == 3000 * len("line 00000\n") - len("\n".join(rest) + "\n")
    assert rest[-1] == "line 02999" and rest[0].startswith("line ")  # whole lines


def test_a_result_not_uploaded_is_a_409_saying_so_and_the_job_keeps_its_outcome(service: Service, alice: User) -> None:
    job_id = function_job(alice, big=True)  # 200 kB, over the archive's limit
    status, data = get_raw(service.api(f"/jobs/{job_id}/result"), alice.token)
    assert status == 409 and b"was not uploaded" in data, data
    assert '"state": "SUCCEEDED"' in run(alice, "show", "-o", "json", job_id).stdout
    logs = run(alice, "logs", job_id).stdout
    assert "not uploaded" in logs and "kbatch.service.archive.max-result-bytes" in logs


def test_uploads_take_the_jobs_credential_only_replace_and_are_size_limited(service: Service, alice: User) -> None:
    job_id = submit(alice, "split.py", SPLIT, "--dask-workers", "0", "-o", "split-%j.out", "-e", "split-%j.err")
    assert run(alice, "wait", job_id, timeout=180).returncode == 3
    credential = secret_env(service, job_id)["KBATCH_DASK_JOB_CREDENTIAL"]
    path = f"/jobs/{job_id}/logs?stream=error"
    for authorization in (f"token {alice.token}", f"Bearer {alice.token}", "Bearer wrong", f"token {credential}"):
        assert put(service, path, authorization, b"forged\n") == 401, authorization
    assert put(service, path, f"Bearer {credential}", b"x" * (MAX_LOG_BYTES + 1)) == 413
    assert put(service, f"/jobs/{job_id}/logs?stream=neither", f"Bearer {credential}", b"x") == 400
    assert run(alice, "logs", "--stderr", job_id).stdout.startswith("err 1\n")
    assert put(service, path, f"Bearer {credential}", b"again\n") == 204
    assert put(service, path, f"Bearer {credential}", b"and again\n") == 204
    assert run(alice, "logs", "--stderr", job_id).stdout == "and again\n"


def test_the_result_of_a_running_job_is_409_and_a_new_attempt_clears_the_last_ones_uploads(
    service: Service, alice: User
) -> None:
    job_id = submit(alice, "sleeper.py", "import time\ntime.sleep(600)\n", "--dask-workers", "0")
    status, data = get_raw(service.api(f"/jobs/{job_id}/result"), alice.token)
    assert status == 409 and b"its result comes when it ends" in data
    credential = f"Bearer {secret_env(service, job_id)['KBATCH_DASK_JOB_CREDENTIAL']}"
    kept = service.workdir / "kbatch-dask-archive" / f"kbatch-alice-{job_id}.result"
    assert put(service, f"/jobs/{job_id}/result", credential, b"an earlier attempt's") == 204 and kept.exists()
    assert events(service, job_id, credential, {"event": "started"}) == 204  # the next attempt starts
    assert not kept.exists()
    run(alice, "cancel", job_id)
