"""The index of ended local jobs, so that ``kbatch queue`` reads what it shows.

::

    <home>/index/ended/<YYYY-MM-DD>.jsonl   final records of the jobs that ended that day (UTC), one per line
    <home>/index/ended-ids                  the ids of those jobs, one per line
    <home>/index/lock

A job's record becomes final once, when the job ends; :meth:`EndedIndex.add`
then appends a copy here (the driver, ``cancel`` and LOST detection all end
jobs through :meth:`~kbatch_dask.backends.local.store.JobDir.write_record`).
A reader lists ``<home>/jobs`` (names only), reads ``ended-ids`` and the day
files it is asked for, and reads the records of the other directories only:
the active jobs. The records stay the source of truth: a directory whose end
is not indexed (a crash between the two writes, a state directory of an older
version, a deleted ``index/``) is simply read, and indexed if it has ended.

Appends happen under an exclusive lock, day line first (flushed to disk) and
id second, so an id in ``ended-ids`` always has its record in a day file.
Readers take no lock: they skip a line still being written, and keep the
last copy of a job that was indexed twice.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone

from kbatch_dask.files import locked
from kbatch_dask.records import JobRecord

DAY_SUFFIX = ".jsonl"


def day_of(record: JobRecord) -> str:
    """The UTC day a job ended, naming the day file its record goes in.

    >>> from kbatch_dask.records import JobState
    >>> r = JobRecord("a", "n", "u", "local", JobState.FAILED, datetime(2026, 1, 1, 23, tzinfo=timezone.utc), "s",
    ...               finished=datetime.fromisoformat("2026-01-02T00:30:00+01:00"))
    >>> day_of(r)
    '2026-01-01'
    """
    return (record.finished or record.submitted).astimezone(timezone.utc).date().isoformat()


class EndedIndex:
    """The index of ended jobs under ``<home>/index``."""

    def __init__(self, home: str) -> None:
        self.dir = os.path.join(home, "index")
        self.days_dir = os.path.join(self.dir, "ended")
        self.ids_file = os.path.join(self.dir, "ended-ids")

    # -- write ------------------------------------------------------------------

    def add(self, records: Iterable[JobRecord]) -> None:
        """Index the final records of ended jobs (indexing one twice is harmless)."""
        by_day: dict[str, list[JobRecord]] = {}
        for record in records:
            by_day.setdefault(day_of(record), []).append(record)
        if not by_day:
            return
        os.makedirs(self.days_dir, mode=0o700, exist_ok=True)
        with self._locked():
            for day, ended in sorted(by_day.items()):
                lines = "".join(json.dumps(r.to_dict(), separators=(",", ":")) + "\n" for r in ended)
                _append(os.path.join(self.days_dir, day + DAY_SUFFIX), lines, sync=True)
            ids = "".join(r.id + "\n" for ended in by_day.values() for r in ended)
            _append(self.ids_file, ids, sync=False)

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(os.path.join(self.dir, "lock"))

    # -- read -------------------------------------------------------------------

    def ended_ids(self) -> set[str]:
        """The ids of all indexed jobs."""
        try:
            with open(self.ids_file) as f:
                return set(f.read().split())
        except FileNotFoundError:
            return set()

    def days(self, since: datetime | None = None) -> list[str]:
        """The day files holding jobs that ended at or after ``since`` (all if None)."""
        try:
            names = os.listdir(self.days_dir)
        except FileNotFoundError:
            return []
        first = since.astimezone(timezone.utc).date().isoformat() if since else ""
        return sorted(n for n in names if n.endswith(DAY_SUFFIX) and n[: -len(DAY_SUFFIX)] >= first)

    def records(self, since: datetime | None = None) -> dict[str, JobRecord]:
        """The indexed records of jobs that ended at or after ``since`` (all if None), by id."""
        found: dict[str, JobRecord] = {}
        for name in self.days(since):
            try:
                with open(os.path.join(self.days_dir, name)) as f:
                    lines = f.readlines()
            except FileNotFoundError:
                continue
            for line in lines:
                record = _parse(line)
                if record is not None and (since is None or (record.finished or record.submitted) >= since):
                    found[record.id] = record
        return found


def _parse(line: str) -> JobRecord | None:
    """A record from one index line; None for a line cut short by a crash or a write in progress."""
    if not line.endswith("\n"):
        return None
    try:
        return JobRecord.from_dict(json.loads(line))
    except (ValueError, KeyError, TypeError):
        return None


def _append(path: str, text: str, *, sync: bool) -> None:
    """Append whole lines; a line left unfinished by a crash is ended first, so it stays one bad line."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            text = "\n" + text
        data = text.encode()
        while data:
            data = data[os.write(fd, data) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
