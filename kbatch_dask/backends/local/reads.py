"""The local queue's reading of the records of the jobs whose end is not indexed.

Kept apart from the backend's other operations: it is the one part of ``kqueue``
that grows with the jobs that run, and it decides when a kept listing of the job
directories (:mod:`.listing_cache`) is out of date.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timezone

from kbatch_dask.backends.local.store import JobDir, JobDirs
from kbatch_dask.errors import BackendError
from kbatch_dask.records import JobRecord, JobState, now


def active(
    dirs: JobDirs, ended: Mapping[str, JobRecord], jobs_dir: str, checked: Callable[[JobDir, JobRecord], JobRecord]
) -> tuple[list[JobRecord], list[JobRecord], list[str]] | None:
    """The records of the jobs ``dirs`` lists as active, those of them that ended unindexed,
    and the ids still not indexed; None when the listing was kept and one has ended since."""
    found: list[JobRecord] = []
    unindexed: list[JobRecord] = []
    still_active: list[str] = []
    for job_id in dirs.active:
        if job_id in ended:
            if dirs.kept:
                return None
            continue
        jobdir = JobDir(os.path.join(jobs_dir, job_id))
        try:
            record = jobdir.read_record()
            if record.state.is_terminal():
                unindexed.append(record)
            else:
                record = checked(jobdir, record)  # a driver gone: LOST, and indexed
            if dirs.kept and record.state.is_terminal():
                return None
            if not record.state.is_terminal():
                still_active.append(job_id)
        except FileNotFoundError:
            continue  # a job directory being created or removed right now
        except (OSError, BackendError) as exc:
            record = unreadable(jobdir, exc)
            still_active.append(job_id)  # shown as an error row, and read again next time
        found.append(record)
    return found, unindexed, still_active


def unreadable(jobdir: JobDir, exc: Exception) -> JobRecord:
    """An error row for a record that cannot be read: shown, never a crash."""
    try:
        submitted = datetime.fromtimestamp(os.stat(jobdir.path).st_mtime, timezone.utc)
    except OSError:
        submitted = now()
    return JobRecord(
        id=jobdir.id,
        name="?",
        user="?",
        backend="local",
        state=JobState.LOST,
        submitted=submitted,
        script="?",
        reason=str(exc)
        if isinstance(exc, BackendError)
        else f"job record unreadable ({type(exc).__name__}: {exc}); see {jobdir.file('record.json')}",
    )
