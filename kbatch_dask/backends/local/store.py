"""On-disk state of local jobs: one directory per job under ``<home>/jobs/``.

::

    <home>/jobs/<id>/
        spec.json      the JobSpec
        env.json       the job's environment (0600: may hold credentials)
        script/<name>  the script as it was at submit time
        record.json    the JobRecord, rewritten atomically (temp file + rename)
        driver.log     the driver's own log
        cancel         present once a cancel was requested
        fail           present once the job was ended from outside as FAILED; holds why
        held           present while the job is held (kbatch hold)
        admitted       present once the driver stopped waiting (dependency, hold) and starts the job
    <home>/index/      copies of ended jobs' final records (see index.py), and
                       which directories there are (see listing_cache.py)

Every write of ``record.json`` is a locked read-modify-write, so the submitter,
the driver and ``kbatch cancel`` never lose each other's updates. Writing a
job's final record also adds it to the index of ended jobs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from kbatch_dask.backends import ids
from kbatch_dask.backends.local import listing_cache
from kbatch_dask.backends.local.index import EndedIndex
from kbatch_dask.errors import BackendError, BadInput, JobNotFound
from kbatch_dask.files import locked, write_atomic
from kbatch_dask.records import JobRecord

if TYPE_CHECKING:  # imported where a spec is read: the queue reads records only
    from kbatch_dask.spec import JobSpec


class JobDirs(NamedTuple):
    """Which job directories there are, as :meth:`JobStore.job_dirs` found them."""

    active: list[str]  # jobs whose end is not indexed: their records are read
    gone: set[str]  # indexed jobs whose directory was removed
    stamp: listing_cache.Stamp | None  # the jobs directory's, before it was listed
    kept: bool  # read from the kept listing, not listed now


def write_json_atomic(path: str, data: Any, mode: int = 0o644) -> None:
    """Write JSON so readers see either the old or the new file, never half of one."""
    write_atomic(path, json.dumps(data, indent=1).encode(), mode)


class JobDir:
    """One local job's directory, ``<home>/jobs/<id>``."""

    def __init__(self, path: str) -> None:
        self.path = path.rstrip("/")
        self.id = os.path.basename(self.path)
        self.home = os.path.dirname(os.path.dirname(self.path))

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def script_path(self) -> str:
        folder = self.file("script")
        names = os.listdir(folder)
        return os.path.join(folder, names[0])

    def exists(self) -> bool:
        return os.path.isfile(self.file("record.json"))

    def load_spec(self) -> JobSpec:
        from kbatch_dask.spec import JobSpec

        with open(self.file("spec.json")) as f:
            return JobSpec.from_dict(json.load(f))

    def load_environment(self) -> dict[str, str]:
        with open(self.file("env.json")) as f:
            return dict(json.load(f))

    def read_record(self) -> JobRecord:
        """The job's record; a BackendError naming the file when it is not a whole
        record (truncated, say). FileNotFoundError: the directory is going or coming."""
        path = self.file("record.json")
        try:
            with open(path) as f:
                return JobRecord.from_dict(json.load(f))
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BackendError(
                f"job {self.id!r}: record unreadable ({type(exc).__name__}: {exc}); see {path}"
            ) from None

    def write_record(self, record: JobRecord) -> None:
        write_json_atomic(self.file("record.json"), record.to_dict())
        if record.state.is_terminal():
            EndedIndex(self.home).add([record])

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """The job's lock: held for every read-modify-write of its record."""
        return locked(self.file("lock"))

    def update_record(self, **changes: Any) -> JobRecord:
        """Apply ``changes`` to the record under the job's lock."""
        with self.locked():
            record = self.read_record().replace(**changes)
            self.write_record(record)
            return record

    @property
    def cancel_requested(self) -> bool:
        return os.path.exists(self.file("cancel"))

    def request_cancel(self) -> None:
        with open(self.file("cancel"), "a"):
            pass

    @property
    def failure_requested(self) -> str | None:
        """Why the job is to end FAILED (see :meth:`request_failure`), or None."""
        try:
            with open(self.file("fail")) as f:
                return f.read() or None
        except FileNotFoundError:
            return None

    def request_failure(self, reason: str) -> None:
        """Ask the driver to end the job FAILED for ``reason`` when it is signalled
        (something it depends on, its gateway, is going away)."""
        write_atomic(self.file("fail"), reason.encode(), 0o600)

    # Hold and admission: both written under the job's lock, so a hold either
    # comes before the driver's decision to start (and keeps it waiting) or is refused.

    @property
    def held(self) -> bool:
        return os.path.exists(self.file("held"))

    def set_held(self, held: bool) -> None:
        if held:
            with open(self.file("held"), "a"):
                pass
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.file("held"))

    @property
    def admitted(self) -> bool:
        return os.path.exists(self.file("admitted"))

    def admit(self) -> None:
        with open(self.file("admitted"), "a"):
            pass


class JobStore:
    """All local jobs under ``<home>/jobs``."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.jobs_dir = os.path.join(home, "jobs")
        self.index = EndedIndex(home)
        self.listing_file = os.path.join(self.index.dir, "listing")

    def job(self, job_id: str) -> JobDir:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise JobNotFound(job_id)
        jobdir = JobDir(os.path.join(self.jobs_dir, job_id))
        if not jobdir.exists():
            raise JobNotFound(job_id)
        return jobdir

    def all_ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.jobs_dir) if not n.startswith(".")]
        except FileNotFoundError:
            return []

    def job_dirs(self, fresh: bool = False) -> JobDirs:
        """The directories of jobs whose end is not indexed, and the indexed jobs whose
        directory is gone: as kept (see :mod:`.listing_cache`) unless ``fresh``, else listed."""
        current = listing_cache.stamp(self.jobs_dir)
        kept = None if fresh else listing_cache.read(self.listing_file, current)
        if kept is not None:
            return JobDirs(kept[0], kept[1], current, kept=True)
        job_ids = self.all_ids()
        indexed = self.index.ended_ids()
        return JobDirs([i for i in job_ids if i not in indexed], indexed.difference(job_ids), current, kept=False)

    def keep(self, dirs: JobDirs, active: Iterable[str]) -> None:
        """Keep a listing once its ended jobs are indexed: ``active``, the jobs still not."""
        if not dirs.kept:
            listing_cache.keep(self.listing_file, dirs.stamp, active, dirs.gone)

    def create(self, spec: JobSpec, environment: dict[str, str], record_for: Any, script: str | None = None) -> JobDir:
        """Create a job directory with a fresh id: spec, environment, script
        snapshot (a copy of ``script``, else of ``spec.script``) and first record.
        ``record_for(job_id)`` builds that record. Nothing is left behind if any step fails."""
        try:
            os.makedirs(self.jobs_dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create the state directory {self.jobs_dir}: {exc.strerror}") from None
        indexed = self.index.ended_ids()  # ids of removed job directories must not come back
        for _ in range(100):
            job_id = ids.new_job_id()
            if job_id in indexed:
                continue
            path = os.path.join(self.jobs_dir, job_id)
            try:
                os.mkdir(path, 0o700)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise BackendError(f"cannot create a job directory in {self.jobs_dir}: {exc.strerror}") from None
        else:
            raise BackendError(f"could not find a free job id in {self.jobs_dir}")
        import shutil  # here: the queue, which reads the store, does not import it

        jobdir = JobDir(path)
        try:
            os.mkdir(jobdir.file("script"))
            try:
                shutil.copy2(script or spec.script, os.path.join(jobdir.file("script"), os.path.basename(spec.script)))
            except OSError as exc:
                raise BadInput(f"script {spec.script!r}: cannot be copied ({exc.strerror})") from None
            write_json_atomic(jobdir.file("spec.json"), spec.to_dict(), 0o600)
            write_json_atomic(jobdir.file("env.json"), environment, 0o600)
            jobdir.write_record(record_for(job_id))
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return jobdir

    def remove(self, jobdir: JobDir) -> None:
        import shutil

        shutil.rmtree(jobdir.path, ignore_errors=True)
