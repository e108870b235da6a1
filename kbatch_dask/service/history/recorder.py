"""The watch cache's changes written to the job records, in a thread of its own.

The cache tells :meth:`Recorder.changed` of every change to a Job or its pods
(with the job's record, built as the queue shows it) while holding its lock,
so that call only notes the record; the thread writes what is noted, the
newest record of each job, in one transaction. A Job that goes is noted with
its last record; one that had not ended by then ends ``CANCELLED`` (deleted)
or ``LOST`` (gone while the service was not watching). Until they are written,
reads (:meth:`find`, :meth:`records`) take the noted records too, so a job is
never missing between the cache and the database.

After the first full list of Jobs, records still pending or running that were
last written before this service started and whose Job is not in that list
ended while the service was down: they end ``LOST``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from kbatch_dask.errors import BackendError
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.service.cache import Gone
from kbatch_dask.service.history.store import History, Key

log = logging.getLogger("kbatch_dask.service.history")

GONE: dict[Gone, tuple[JobState, str]] = {
    "deleted": (JobState.CANCELLED, "its Kubernetes Job was deleted before it ended"),
    "unseen": (JobState.LOST, "its Kubernetes Job went while the service was not watching"),
}

FLUSH_EVERY = 1.0  # seconds the thread waits for more changes before writing (at the latest)
RETRY_AFTER = 5.0  # seconds after the database failed


def _key(record: JobRecord) -> Key:
    return (record.user, record.id)


def ended_as(record: JobRecord, how: Gone) -> JobRecord:
    """``record`` of a job whose Job went: ended as :data:`GONE` says unless it had ended already.

    >>> r = JobRecord("a", "n", "u", "hub", JobState.RUNNING, now(), "s")
    >>> ended_as(r, "unseen").state.value, ended_as(r.replace(state=JobState.FAILED), "unseen").state.value
    ('LOST', 'FAILED')
    """
    if record.state.is_terminal():
        return record
    state, reason = GONE[how]
    return record.replace(state=state, reason=reason, finished=now())


class Recorder:
    """Writes job records to ``history``; ``touch(users)`` tells the cache that
    answers about those users' jobs changed without a Kubernetes change (a
    job found ended at start, records deleted by the retention)."""

    def __init__(
        self,
        history: History,
        touch: Callable[[Iterable[str]], None] = lambda users: None,
        on_expired: Callable[[list[Key]], None] = lambda keys: None,
    ) -> None:
        self.history = history
        self.touch = touch
        # Called with the jobs whose records the retention deleted: what else is
        # kept of them (the archive's logs) goes with them.
        self.on_expired = on_expired
        self.started = now()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._noted: dict[Key, tuple[JobRecord, str]] = {}  # not written yet: (record, namespace)
        self._listed: set[Key] | None = None  # the first full list's jobs, until reconciled
        self._reconciled = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- from the cache (under its lock: no I/O) -------------------------------

    def changed(self, record: JobRecord, namespace: str, gone: Gone | None = None) -> None:
        """The newest record of a job (``gone``: its Job went, ended so unless it had)."""
        with self._lock:
            self._noted[_key(record)] = (ended_as(record, gone) if gone else record, namespace)
        self._wake.set()

    def listed(self, present: Iterable[Key]) -> None:
        """The jobs of a full list of Jobs; the first one finds those that ended unseen."""
        if self._reconciled or self._listed is not None:
            return
        with self._lock:
            self._listed = set(present)
        self._wake.set()

    @property
    def pending(self) -> int:
        """Records noted and not written yet (``/health`` shows it: the writes' backlog)."""
        with self._lock:
            return len(self._noted)

    # -- reads -----------------------------------------------------------------

    def find(self, user: str, job_id: str) -> JobRecord | None:
        with self._lock:
            noted = self._noted.get((user, job_id))
        return noted[0] if noted else self.history.get(user, job_id)

    def records(
        self,
        user: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        leave_out: Callable[[JobRecord], bool] = lambda r: False,
    ) -> list[JobRecord]:
        """As :meth:`History.records`, with what is noted and not yet written;
        without those ``leave_out`` says (the cache's own)."""
        stored = {_key(r): r for r in self.history.records(user, since, until)}
        with self._lock:
            noted = [r for r, _ in self._noted.values() if user is None or r.user == user]
        for record in noted:
            active_or_recent = (
                not record.state.is_terminal() or since is None or ((record.finished or record.submitted) >= since)
            )
            if active_or_recent and (until is None or record.submitted <= until):
                stored[_key(record)] = record
            else:
                stored.pop(_key(record), None)
        return sorted((r for r in stored.values() if not leave_out(r)), key=lambda r: (r.submitted, r.id))

    # -- writing -----------------------------------------------------------------

    def start(self) -> Recorder:
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self._thread.start()
        return self

    def stop(self, wait: float = 5.0) -> None:
        """Write what is noted, then stop."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait)

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_EVERY)
            self._wake.clear()
            try:
                self.flush()
            except BackendError as exc:
                log.warning("could not write job records, trying again in %.0f s: %s", RETRY_AFTER, exc)
                self._stopping.wait(RETRY_AFTER)
            except Exception:  # the recorder must outlive any one bad record
                log.exception("could not write job records")
                self._stopping.wait(RETRY_AFTER)
            if self._stopping.is_set():
                return

    def flush(self) -> None:
        """Write what is noted (then reconcile after the first list); BackendError
        when the database fails (what was noted stays noted)."""
        with self._flushing:  # one at a time: an older batch never lands after a newer one
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batch = dict(self._noted)
        if batch:
            self.history.put(batch.values())
            with self._lock:
                for key, item in batch.items():
                    if self._noted.get(key) is item:  # not noted again meanwhile
                        del self._noted[key]
        if self._listed is not None and not self._reconciled:
            self._reconcile(self._listed)

    def _reconcile(self, present: set[Key]) -> None:
        unseen = [
            (ended_as(record, "unseen"), namespace)
            for record, namespace in self.history.unfinished(self.started)
            if _key(record) not in present
        ]
        if unseen:
            self.history.put(unseen)
            log.info("%d job(s) ended while the service was not watching: recorded LOST", len(unseen))
            self.touch({r.user for r, _ in unseen})
        self._reconciled = True

    def expire(self, older_than: timedelta) -> int:
        """Delete the records of jobs that ended more than ``older_than`` ago; how many."""
        keys = self.history.expire(now() - older_than)
        if keys:
            self.on_expired(keys)
            self.touch({user for user, _ in keys})
            log.info("deleted the records of %d job(s) that ended over %s ago", len(keys), older_than)
        return len(keys)
