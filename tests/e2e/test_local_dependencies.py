"""--dependency, hold and release on the local backend: each job's own driver
waits (driver/queue.py), with the real `kbatch` and detached drivers."""

from __future__ import annotations

import itertools
import secrets
from pathlib import Path

import pytest
from conftest import ended, kbatch, show_json, submit, wait_for, write_script

pytestmark = pytest.mark.gateway

WAITER = """\
import os, time
print("started", flush=True)
while not os.path.exists({go!r}):
    time.sleep(0.1)
"""


def waiter(tmp_path: Path, *options: str) -> tuple[str, Path]:
    go = tmp_path / f"go-{secrets.token_hex(3)}"
    script = write_script(tmp_path / f"wait-{go.name}.py", WAITER.format(go=str(go)))
    return submit("--dask-workers", "0", *options, str(script)), go


def quick(tmp_path: Path, text: str, *options: str) -> str:
    script = write_script(tmp_path / f"job-{secrets.token_hex(3)}.py", text)
    return submit("--dask-workers", "0", *options, str(script))


def pending(job_id: str, reason: str) -> bool:
    record = show_json(job_id)
    return (record["state"], record["reason"]) == ("PENDING", reason)


def test_an_afterok_chain_runs_in_order_and_a_failure_cancels_its_dependants(home: Path, tmp_path: Path) -> None:
    first, go = waiter(tmp_path)
    second = quick(tmp_path, "print('second')\n", "--dependency", f"afterok:{first}")
    third = quick(tmp_path, "print('third')\n", "-d", f"afterok:{second}")
    wait_for(lambda: show_json(first)["state"] == "RUNNING", what="the first job to run")
    assert pending(second, "dependency") and pending(third, "dependency")
    assert show_json(third)["started"] is None
    go.touch()
    records = [ended(job_id) for job_id in (first, second, third)]
    assert [r["state"] for r in records] == ["SUCCEEDED"] * 3
    for before, after in itertools.pairwise(records):
        assert before["finished"] <= after["started"], (before, after)

    failing = quick(tmp_path, "raise SystemExit(3)\n")
    after = quick(tmp_path, "print('never')\n", "-d", f"afterok:{failing}")
    after_after = quick(tmp_path, "print('never')\n", "-d", f"afterok:{after}")
    otherwise = quick(tmp_path, "print('ran')\n", "-d", f"afternotok:{failing}")
    assert ended(failing)["state"] == "FAILED"
    for job_id in (after, after_after):
        record = ended(job_id)
        assert (record["state"], record["reason"], record["started"]) == (
            "CANCELLED",
            "dependency never satisfied",
            None,
        )
    assert ended(otherwise)["state"] == "SUCCEEDED"


def test_a_dependency_on_an_unknown_job_is_refused_naming_it(home: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "x.py", "print('x')\n")
    proc = kbatch("--dependency", "afterany:zzzzz", str(script))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "Error: --dependency afterany:zzzzz: no job 'zzzzz' (see `kbatch queue --all` for known jobs)"
    )
    assert not (home / "jobs").exists() or not list((home / "jobs").iterdir())


def test_hold_keeps_a_waiting_job_from_starting_until_release(home: Path, tmp_path: Path) -> None:
    first, go = waiter(tmp_path)
    held = quick(tmp_path, "print('ran')\n", "-d", f"afterany:{first}")
    alongside = quick(tmp_path, "print('ran')\n", "-d", f"afterany:{first}")
    wait_for(lambda: show_json(first)["state"] == "RUNNING", what="the first job to run")
    proc = kbatch("hold", held)
    assert proc.returncode == 0 and f"Job {held} held: PENDING (held)" in proc.stdout, proc.stderr
    proc = kbatch("hold", first)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"Error: job {first} is RUNNING: only a job still waiting to start can be held"
    go.touch()
    assert ended(first)["state"] == "SUCCEEDED"
    # The same dependency let the job alongside start and end; the hold alone keeps this one waiting.
    assert ended(alongside)["state"] == "SUCCEEDED"
    assert pending(held, "held")
    proc = kbatch("release", held)
    assert proc.returncode == 0, proc.stderr
    assert ended(held)["state"] == "SUCCEEDED"
    assert kbatch("release", held).returncode == 2
