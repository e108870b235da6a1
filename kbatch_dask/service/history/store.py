"""The job records in the database: written at submit and from the watch
cache's changes, read for jobs whose Kubernetes objects are gone.

Every call is synchronous and short (one transaction); the service makes them
from threads (see the package's docstring). Writes are serialised by a lock:
the service is one process, and its writers (a submit, a cancel, the
recorder's thread) may touch the same job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kbatch_dask.errors import BackendError, BadInput
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.service.history import migrations
from kbatch_dask.service.history.models import JobRow

ACTIVE = (JobState.PENDING.value, JobState.RUNNING.value)
Key = tuple[str, str]  # (user, job id)


def connect(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///FILE``, ``postgresql+psycopg://…``);
    BadInput naming the setting for one SQLAlchemy cannot use."""
    try:
        engine = create_engine(url, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise BadInput(f"kbatch.service.database-url {_safe(url)!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        # Threads share the file: wait for a lock rather than fail at once.
        event.listen(engine, "connect", lambda conn, _record: conn.execute("PRAGMA busy_timeout = 10000"))
    return engine


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "(unreadable URL)"


def _keeps(old: JobRow, new: JobRecord) -> bool:
    """Whether the stored row stays as it is rather than take ``new``: an end is
    final (a later look without its pods says less), and LOST, a conclusion from
    missing objects, never replaces an end known more precisely."""
    if old.state in ACTIVE:
        return False
    return not new.state.is_terminal() or new.state is JobState.LOST


class History:
    """The job records of the database at ``url``, migrated to the newest schema on open."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = _safe(url)
        self.engine = connect(url)
        self._writing = threading.Lock()
        if migrate:
            self._guarded(migrations.upgrade, self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _guarded(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except SQLAlchemyError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"the database {self.url} (kbatch.service.database-url): {first}") from None

    # -- writes -----------------------------------------------------------------

    def put(self, records: Iterable[tuple[JobRecord, str]], spec: Mapping[str, Any] | None = None) -> None:
        """Store each ``(record, namespace)``, with the submission's ``spec`` when given."""
        self._guarded(self._put, list(records), spec)

    def _put(self, records: list[tuple[JobRecord, str]], spec: Mapping[str, Any] | None) -> None:
        with self._writing, Session(self.engine) as session, session.begin():
            for record, namespace in records:
                row = session.get(JobRow, (record.user, record.id))
                if row is None:
                    row = JobRow(user=record.user, id=record.id, namespace=namespace, spec=None)
                    session.add(row)
                elif _keeps(row, record):
                    continue
                _fill(row, record)
                row.namespace = namespace or row.namespace
                if spec is not None:
                    row.spec = dict(spec)

    def expire(self, ended_before: datetime) -> list[Key]:
        """Delete the records of jobs that ended before ``ended_before``; their keys."""
        return list(self._guarded(self._expire, ended_before))

    def _expire(self, ended_before: datetime) -> list[Key]:
        with self._writing, Session(self.engine) as session, session.begin():
            old = JobRow.finished < ended_before
            keys = [(u, i) for u, i in session.execute(select(JobRow.user, JobRow.id).where(old))]
            session.execute(delete(JobRow).where(old))
        return keys

    # -- reads ------------------------------------------------------------------

    def get(self, user: str, job_id: str) -> JobRecord | None:
        return self._guarded(self._get, user, job_id)  # type: ignore[no-any-return]

    def _get(self, user: str, job_id: str) -> JobRecord | None:
        with Session(self.engine) as session:
            row = session.get(JobRow, (user, job_id))
            return JobRecord.from_dict(row.record) if row else None

    def records(
        self, user: str | None, since: datetime | None = None, until: datetime | None = None
    ) -> list[JobRecord]:
        """``user``'s records (None: everyone's), oldest first: those pending or
        running, and those that ended at or after ``since``; none submitted after ``until``."""
        return list(self._guarded(self._records, user, since, until))

    def _records(self, user: str | None, since: datetime | None, until: datetime | None) -> list[JobRecord]:
        query = select(JobRow.record).order_by(JobRow.submitted, JobRow.id)
        if user is not None:
            query = query.where(JobRow.user == user)
        if since is not None:
            query = query.where(
                or_(JobRow.state.in_(ACTIVE), func.coalesce(JobRow.finished, JobRow.submitted) >= since)
            )
        if until is not None:
            query = query.where(JobRow.submitted <= until)
        with Session(self.engine) as session:
            return [JobRecord.from_dict(data) for data in session.scalars(query)]

    def unfinished(self, updated_before: datetime) -> list[tuple[JobRecord, str]]:
        """Records still pending or running, last written before ``updated_before``, with their namespace."""
        return list(self._guarded(self._unfinished, updated_before))

    def _unfinished(self, updated_before: datetime) -> list[tuple[JobRecord, str]]:
        query = select(JobRow.record, JobRow.namespace).where(JobRow.state.in_(ACTIVE), JobRow.updated < updated_before)
        with Session(self.engine) as session:
            return [(JobRecord.from_dict(data), ns) for data, ns in session.execute(query)]

    def ping(self) -> None:
        """A query: BackendError when the database does not answer (``GET /health``)."""
        self._guarded(self._ping)

    def _ping(self) -> None:
        with Session(self.engine) as session:
            session.execute(select(1))


def _fill(row: JobRow, record: JobRecord) -> None:
    row.name = record.name
    row.state = record.state.value
    row.reason = record.reason
    row.exit_code = record.exit_code
    row.submitted = record.submitted
    row.started = record.started
    row.finished = record.finished
    row.cpus, row.memory, row.gpus = record.cpus, record.memory, record.gpus
    row.workers = record.dask.workers if record.dask else None
    row.output = record.output
    row.dashboard = record.dask.dashboard if record.dask else None
    row.record = record.to_dict()
    row.updated = now()
