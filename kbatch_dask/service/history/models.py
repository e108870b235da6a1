"""The tables of the job records (SQLAlchemy 2's typed declarative mapping).

One row per job: the columns the history is queried by (owner, times, state),
the requested resources it shows, and ``record``, the job's JSON as ``kbatch
show -o json`` has it, so that a job read back from the database has exactly
the shape of one read from Kubernetes. ``spec`` is the submission's options as
validated at submit. A change here is a new revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware times on every database: SQLite keeps none, so they are
    stored as UTC and read back as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(timezone.utc).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    pass


class JobRow(Base):
    """A job's record: kept after its Kubernetes Job and pods are gone."""

    __tablename__ = "kbatch_jobs"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)  # the hub user's name
    id: Mapped[str] = mapped_column(String(63), primary_key=True)  # the job id
    namespace: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    submitted: Mapped[datetime] = mapped_column(UtcDateTime)
    started: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cpus: Mapped[float | None] = mapped_column(Float)
    memory: Mapped[int | None] = mapped_column(BigInteger)  # bytes
    gpus: Mapped[int | None] = mapped_column(Integer)
    workers: Mapped[str | None] = mapped_column(String(32))  # as asked: "4" or "2:20"
    output: Mapped[str | None] = mapped_column(Text)
    dashboard: Mapped[str | None] = mapped_column(Text)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)  # JobRecord.to_dict()
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the submit options, as validated
    updated: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_kbatch_jobs_user_submitted", "user", "submitted"),
        Index("ix_kbatch_jobs_finished", "finished"),
        Index("ix_kbatch_jobs_state", "state"),
    )
