"""The service's archive of what its jobs' drivers upload (kbatch_dask/service/archive.py):
files named by the job alone, written whole, and an ended job's logs read from them;
tests/e2e/service/test_archive.py runs it end to end."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kbatch_dask.errors import BadInput
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.service.archive import DirectoryArchive, archived_logs


def record(error: str | None = None) -> JobRecord:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return JobRecord("k3x9q", "job", "alice", "hub", JobState.FAILED, when, "run.py", output="/home/a/out", error=error)


def test_each_upload_is_a_file_of_its_own_readable_by_the_service_only(tmp_path: Path) -> None:
    archive = DirectoryArchive(str(tmp_path / "archive"))
    archive.put("alice", "k3x9q", "result", b"one")
    archive.put("alice", "k3x9q", "result", b"two")  # a retried upload replaces
    archive.put("Bob@example.org", "k3x9q", "output", b"bob's")  # another user's job of the same id
    assert archive.get("alice", "k3x9q", "result") == b"two"
    assert archive.get("alice", "k3x9q", "output") is None
    assert archive.get("Bob@example.org", "k3x9q", "output") == b"bob's"
    names = sorted(os.listdir(tmp_path / "archive"))
    assert names == ["kbatch-alice-k3x9q.result", "kbatch-bob-example-org---4896ef32-k3x9q.output"]  # no temp files
    assert stat.S_IMODE((tmp_path / "archive" / names[0]).stat().st_mode) == 0o600
    archive.delete("alice", "k3x9q", "result")
    archive.delete("alice", "k3x9q", "result")  # nothing kept is fine
    assert archive.get("alice", "k3x9q", "result") is None


@pytest.mark.parametrize("job_id", ["../k3x9q", "k3x9q/../../x", "", "K3X9Q"])
def test_a_name_that_is_not_a_job_id_never_reaches_the_file_system(tmp_path: Path, job_id: str) -> None:
    archive = DirectoryArchive(str(tmp_path))
    with pytest.raises(ValueError):
        archive.put("alice", job_id, "result", b"x")
    assert os.listdir(tmp_path) == []


def test_an_ended_jobs_logs_by_stream_and_tail(tmp_path: Path) -> None:
    archive = DirectoryArchive(str(tmp_path))
    archive.put("alice", "k3x9q", "output", b"o1\no2\n")
    archive.put("alice", "k3x9q", "error", b"e1\ne2\n")
    split = record(error="/home/a/err")
    assert archived_logs(archive, "alice", split, "output", None) == [b"o1\no2\n"]
    assert archived_logs(archive, "alice", split, "error", 1) == [b"e2\n"]
    assert (
        b"".join(archived_logs(archive, "alice", split, "all", 1))
        == b"==> /home/a/out <==\no2\n\n==> /home/a/err <==\ne2\n"
    )
    assert archived_logs(archive, "bob", split, "output", None) == []  # nothing uploaded
    with pytest.raises(BadInput, match="has no error file"):
        archived_logs(archive, "alice", record(), "error", None)


def test_an_ended_jobs_output_that_is_not_utf8_is_served_byte_for_byte(tmp_path: Path) -> None:
    archive = DirectoryArchive(str(tmp_path))
    archive.put("alice", "k3x9q", "output", b"caf\xe9 \xff\nlast \xe2\x9c")  # Latin-1, a stray byte, a cut character
    assert archived_logs(archive, "alice", record(), "output", None) == [b"caf\xe9 \xff\nlast \xe2\x9c"]
    assert archived_logs(archive, "alice", record(), "output", 1) == [b"last \xe2\x9c"]
