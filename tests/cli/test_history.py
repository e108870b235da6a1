"""``kbatch history`` on the local backend: real jobs (no Dask cluster), their
ends, exit codes and requested resources over a time window; bad times are one
``Error:`` line and exit 2."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import isolated_session, kbatch


@pytest.fixture
def session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = isolated_session(tmp_path, monkeypatch, "kbatch-home")
    monkeypatch.setenv("DASK_KBATCH__BACKEND", "local")
    return home


def run_job(tmp_path: Path, name: str, code: int, *options: str) -> str:
    script = tmp_path / f"{name}.py"
    script.write_text(f"import sys\nprint('hello')\nsys.exit({code})\n")
    proc = kbatch("--wait", "--parsable", "--dask-workers", "0", *options, str(script))
    assert proc.returncode == code, proc.stderr
    return proc.stdout.strip()


def next_second() -> None:
    """Wait for the clock's next whole second: records keep whole seconds, and two jobs
    submitted within the same one are listed in the order of their ids."""
    time.sleep(1.01 - time.time() % 1)


def test_history_lists_ended_jobs_with_state_exit_code_and_resources(session: Path, tmp_path: Path) -> None:
    ok = run_job(tmp_path, "ok", 0, "--cpus", "1", "--memory", "256M")
    next_second()
    bad = run_job(tmp_path, "bad", 3)
    proc = kbatch("history", "--since", "1h", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    jobs = {j["id"]: j for j in json.loads(proc.stdout)}
    assert list(jobs) == [ok, bad]  # oldest first
    assert (jobs[ok]["state"], jobs[ok]["exit_code"], jobs[ok]["cpus"], jobs[ok]["memory"]) == (
        "SUCCEEDED",
        0,
        1,
        256_000_000,
    )
    assert (jobs[bad]["state"], jobs[bad]["exit_code"]) == ("FAILED", 3)
    assert jobs[ok]["elapsed"] is not None and jobs[ok]["elapsed"] >= 0
    table = kbatch("history", "--since", "1h").stdout.splitlines()
    assert table[0].split() == [
        "JOBID", "NAME", "STATE", "SUBMITTED", "START", "END", "ELAPSED", "EXIT", "CPUS", "MEMORY", "GPUS", "WORKERS",
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows[ok][2] == "SUCCEEDED" and rows[ok][7] == "0" and rows[ok][8:11] == ["1", "256M", "0"]
    assert rows[bad][2] == "FAILED" and rows[bad][7] == "3"
    first = next(line for line in table[1:] if line.startswith(ok))
    assert first.index("SUCCEEDED") == table[0].index("STATE")  # lined up under its header


def test_a_window_before_the_jobs_lists_none(session: Path, tmp_path: Path) -> None:
    run_job(tmp_path, "ok", 0)
    until = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    proc = kbatch("history", "--since", "2d", "--until", until, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "yesterday"), "Error: --since 'yesterday': expected an ISO date or time"),
        (("--since", "3x"), "Error: --since '3x': expected an ISO date or time"),
        (("--since", "1h", "--until", "2d"), "Error: --until "),
    ],
)
def test_bad_times_are_one_error_line_and_exit_2(session: Path, args: tuple[str, ...], message: str) -> None:
    proc = kbatch("history", *args)
    assert proc.returncode == 2 and proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr
