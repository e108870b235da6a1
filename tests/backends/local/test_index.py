"""The local backend's index of ended jobs: the queue reads the records of
active jobs only, stays right when the index is missing, stale or being written
by many drivers at once, and LOST detection still works."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from kbatch_dask.backends import ids as job_ids
from kbatch_dask.backends.local import listing_cache
from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.backends.local.index import EndedIndex
from kbatch_dask.backends.local.store import JobDir, JobStore
from kbatch_dask.records import JobRecord, JobState, now


def record(job_id: str, state: JobState, ended_ago: timedelta | None = None, pid: int | None = None) -> JobRecord:
    at = now().replace(microsecond=0) - (ended_ago or timedelta(0))
    return JobRecord(
        id=job_id,
        name=f"job-{job_id}",
        user="me",
        backend="local",
        state=state,
        submitted=at - timedelta(minutes=5),
        started=at - timedelta(minutes=4),
        finished=at if state.is_terminal() else None,
        script="/x.py",
        pid=pid,
    )


def put(home: Path, r: JobRecord) -> JobDir:
    """A job directory with this record, written as an older version did: not indexed."""
    jobdir = JobDir(str(home / "jobs" / r.id))
    os.makedirs(jobdir.path)
    Path(jobdir.file("record.json")).write_text(json.dumps(r.to_dict()))
    return jobdir


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the records read from job directories."""
    seen: list[str] = []
    original = JobDir.read_record

    def counting(self: JobDir) -> JobRecord:
        seen.append(self.id)
        return original(self)

    monkeypatch.setattr(JobDir, "read_record", counting)
    return seen


def history(home: Path, old: int, recent: int, running: int) -> None:
    """``old`` jobs ended days ago, ``recent`` ended within the day, ``running`` active ones."""
    ended = [record(f"o{i:04d}", JobState.SUCCEEDED, timedelta(days=2 + i % 30)) for i in range(old)]
    ended += [record(f"r{i:04d}", JobState.FAILED, timedelta(hours=1 + i)) for i in range(recent)]
    for r in ended:
        put(home, r)
    EndedIndex(str(home)).add(ended)
    for i in range(running):
        put(home, record(f"a{i:04d}", JobState.RUNNING, pid=os.getpid()))


def test_queue_reads_only_the_records_of_active_jobs(tmp_path: Path, reads: list[str]) -> None:
    history(tmp_path, old=300, recent=4, running=3)
    backend = LocalBackend(str(tmp_path))
    since = now() - timedelta(hours=24)
    shown = backend.list(ended_since=since)
    assert sorted(r.id for r in shown) == ["a0000", "a0001", "a0002", "r0000", "r0001", "r0002", "r0003"]
    assert sorted(reads) == ["a0000", "a0001", "a0002"]
    assert len(backend.store.index.days(since)) <= 2  # of the ~30 day files, today's and yesterday's
    reads.clear()
    everything = backend.list(ended_since=None)
    assert len(everything) == 307 and sorted(reads) == ["a0000", "a0001", "a0002"]
    assert [r.submitted for r in everything] == sorted(r.submitted for r in everything)


def test_ended_jobs_the_index_missed_are_read_once_and_indexed(tmp_path: Path, reads: list[str]) -> None:
    # A state directory from before the index, or a crash between record and index.
    for i in range(50):
        put(tmp_path, record(f"m{i:04d}", JobState.SUCCEEDED, timedelta(days=i)))
    put(tmp_path, record("a0000", JobState.RUNNING, pid=os.getpid()))
    backend = LocalBackend(str(tmp_path))
    first = backend.list(ended_since=None)
    assert len(first) == 51 and len(reads) == 51
    reads.clear()
    assert backend.list(ended_since=None) == first
    assert reads == ["a0000"]


def test_deleting_the_index_rebuilds_it(tmp_path: Path) -> None:
    history(tmp_path, old=40, recent=5, running=2)
    backend = LocalBackend(str(tmp_path))
    before = backend.list(ended_since=None), backend.list(ended_since=now() - timedelta(hours=24))
    shutil.rmtree(tmp_path / "index")
    after = backend.list(ended_since=None), backend.list(ended_since=now() - timedelta(hours=24))
    assert after == before and len(before[0]) == 47 and len(before[1]) == 7


def test_vanished_driver_is_lost_once_and_then_indexed(tmp_path: Path, reads: list[str]) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    put(tmp_path, record("gone1", JobState.RUNNING, pid=dead.pid))
    backend = LocalBackend(str(tmp_path))
    (row,) = backend.list()
    assert row.state is JobState.LOST and row.reason == "driver process vanished"
    reads.clear()
    assert [r.to_dict() for r in backend.list()] == [row.to_dict()] and reads == []
    assert backend.get("gone1").to_dict() == row.to_dict()


def test_removed_job_directory_leaves_the_queue_and_its_id_is_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(tmp_path, old=0, recent=2, running=0)
    shutil.rmtree(tmp_path / "jobs" / "r0000")
    assert [r.id for r in LocalBackend(str(tmp_path)).list()] == ["r0001"]
    ids = iter(["r0000", "fresh"])
    monkeypatch.setattr(job_ids, "new_job_id", lambda: next(ids))
    script = tmp_path / "s.py"
    script.write_text("pass\n")
    from kbatch_dask.spec import build_spec

    spec = build_spec(str(script), (), {"dask_workers": "0"}, config={})
    jobdir = JobStore(str(tmp_path)).create(spec, {}, lambda job_id: record(job_id, JobState.PENDING))
    assert jobdir.id == "fresh"


def test_a_line_cut_short_by_a_crash_is_skipped_and_later_lines_are_whole(tmp_path: Path) -> None:
    index = EndedIndex(str(tmp_path))
    first = record("aaaa1", JobState.SUCCEEDED)
    index.add([first])
    day = Path(index.days_dir) / index.days()[0]
    with day.open("a") as f:
        f.write('{"id": "cut", "state": "SUCC')
    second = record("aaaa2", JobState.FAILED)
    index.add([second])
    assert index.records() == {"aaaa1": first, "aaaa2": second}
    assert index.ended_ids() == {"aaaa1", "aaaa2"}


ENDER = """
import sys
from kbatch_dask.backends.local.store import JobDir
from kbatch_dask.records import JobState, now
for path in sys.argv[1:]:
    JobDir(path).update_record(state=JobState.SUCCEEDED, exit_code=0, finished=now())
"""


def test_drivers_ending_at_once_all_land_in_the_index(tmp_path: Path, reads: list[str]) -> None:
    paths = [put(tmp_path, record(f"c{i:04d}", JobState.RUNNING, pid=os.getpid())).path for i in range(120)]
    enders = [subprocess.Popen([sys.executable, "-c", ENDER, *paths[i::6]]) for i in range(6)]
    assert [p.wait(timeout=120) for p in enders] == [0] * 6
    index = EndedIndex(str(tmp_path))
    lines = [line for day in index.days() for line in (Path(index.days_dir) / day).read_text().splitlines()]
    assert len(lines) == 120 and all(json.loads(line)["state"] == "SUCCEEDED" for line in lines)
    assert index.ended_ids() == {os.path.basename(p) for p in paths}
    rows = LocalBackend(str(tmp_path)).list()
    assert len(rows) == 120 and {r.state for r in rows} == {JobState.SUCCEEDED} and reads == []


def test_day_files_are_chosen_by_the_utc_day_a_job_ended(tmp_path: Path) -> None:
    index = EndedIndex(str(tmp_path))
    late = record("late1", JobState.SUCCEEDED).replace(finished=datetime.fromisoformat("2026-03-01T23:30:00-02:00"))
    index.add([late])
    assert index.days() == ["2026-03-02.jsonl"]
    assert index.days(datetime.fromisoformat("2026-03-02T12:00:00+00:00")) == ["2026-03-02.jsonl"]
    assert index.days(datetime.fromisoformat("2026-03-03T00:00:00+00:00")) == []


# -- the kept listing of the job directories (listing_cache.py): used while the jobs
# directory has not changed, never the reason a job is missing, shown or indexed twice

SINCE = timedelta(hours=24)  # the queue shows the jobs that ended within it


def settle(home: Path) -> None:
    """Date the jobs directory's last change back past the coarse clock's margin."""
    past = time.time_ns() - int(2 * listing_cache.SETTLED * 1e9)
    os.utime(home / "jobs", ns=(past, past))


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per listing of the jobs directory."""
    seen: list[int] = []
    original = JobStore.all_ids

    def counting(self: JobStore) -> list[str]:
        seen.append(1)
        return original(self)

    monkeypatch.setattr(JobStore, "all_ids", counting)
    return seen


def ids(backend: LocalBackend) -> list[str]:
    return sorted(r.id for r in backend.list(ended_since=now() - SINCE))


def indexed_ids(home: Path) -> list[str]:
    return (home / "index" / "ended-ids").read_text().split()


def test_a_settled_jobs_directory_is_listed_once_and_the_queue_is_the_same(tmp_path: Path, listings: list[int]) -> None:
    history(tmp_path, old=200, recent=3, running=2)
    settle(tmp_path)
    backend = LocalBackend(str(tmp_path))
    first = ids(backend)
    assert first == ["a0000", "a0001", "r0000", "r0001", "r0002"] and len(listings) == 1
    assert ids(backend) == first and ids(LocalBackend(str(tmp_path))) == first
    assert len(listings) == 1


def test_a_directory_that_just_changed_is_listed_every_time(tmp_path: Path, listings: list[int]) -> None:
    # Its timestamps come from a coarse clock: a job made in the same tick could share its stamp.
    history(tmp_path, old=5, recent=1, running=1)
    backend = LocalBackend(str(tmp_path))
    ids(backend), ids(backend)
    assert len(listings) == 2


def test_a_job_submitted_after_the_listing_was_kept_is_shown(tmp_path: Path, listings: list[int]) -> None:
    history(tmp_path, old=20, recent=1, running=1)
    settle(tmp_path)
    backend = LocalBackend(str(tmp_path))
    ids(backend)
    put(tmp_path, record("new01", JobState.PENDING, pid=os.getpid()))
    assert ids(backend) == ["a0000", "new01", "r0000"]
    assert len(listings) == 2


def test_a_removed_job_directory_leaves_the_queue_after_the_listing_was_kept(tmp_path: Path) -> None:
    history(tmp_path, old=20, recent=2, running=1)
    settle(tmp_path)
    backend = LocalBackend(str(tmp_path))
    assert ids(backend) == ["a0000", "r0000", "r0001"]
    shutil.rmtree(tmp_path / "jobs" / "r0000")
    shutil.rmtree(tmp_path / "jobs" / "a0000")
    assert ids(backend) == ["r0001"]


def test_a_job_that_ended_after_the_listing_was_kept_is_shown_once_and_indexed_once(
    tmp_path: Path, listings: list[int]
) -> None:
    history(tmp_path, old=20, recent=1, running=2)
    settle(tmp_path)
    backend = LocalBackend(str(tmp_path))
    assert ids(backend) == ["a0000", "a0001", "r0000"]
    # Its driver ends it: the record, then the index; no directory changes.
    jobdir = JobDir(str(tmp_path / "jobs" / "a0000"))
    jobdir.write_record(jobdir.read_record().replace(state=JobState.SUCCEEDED, finished=now()))
    for _ in range(3):
        assert ids(backend) == ["a0000", "a0001", "r0000"]
    assert indexed_ids(tmp_path).count("a0000") == 1
    assert [r.state for r in backend.list() if r.id == "a0000"] == [JobState.SUCCEEDED]
    assert len(listings) == 2  # listed again once, and that listing kept


def test_an_ended_job_the_index_missed_after_the_listing_was_kept_is_indexed_once(tmp_path: Path) -> None:
    # A driver killed between its final record and the index.
    history(tmp_path, old=5, recent=0, running=1)
    settle(tmp_path)
    backend = LocalBackend(str(tmp_path))
    ids(backend)
    path = tmp_path / "jobs" / "a0000" / "record.json"
    jobdir = JobDir(str(path.parent))
    ended = jobdir.read_record().replace(state=JobState.FAILED, finished=now())
    path.write_text(json.dumps(ended.to_dict()))
    for _ in range(3):
        assert ids(backend) == ["a0000"]
    assert indexed_ids(tmp_path).count("a0000") == 1
