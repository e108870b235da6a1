"""The job records' database, on SQLite and on a real PostgreSQL server: the
migrations, records read back as they were written, what a later write may
change, the time-range queries and the retention."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from kbatch_dask.errors import BadInput
from kbatch_dask.records import DaskInfo, JobRecord, JobState
from kbatch_dask.service.history import History, migrations
from kbatch_dask.service.history.models import Base

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)


def record(job_id: str, user: str = "alice", state: JobState = JobState.SUCCEEDED, **changes: object) -> JobRecord:
    ended = state.is_terminal()
    base = JobRecord(
        id=job_id,
        name="train",
        user=user,
        backend="kubernetes",
        state=state,
        submitted=T0,
        started=T0 + timedelta(seconds=5),
        finished=T0 + timedelta(minutes=10) if ended else None,
        script="train.py",
        args=("--epochs", "3"),
        exit_code=0 if state is JobState.SUCCEEDED else None,
        output="/home/alice/kbatch-x.out",
        dask=DaskInfo("2:20", cluster="c1", dashboard="http://gw/clusters/c1/status", worker_memory=2**31),
        time_limit=3600,
        cpus=1.5,
        memory=8 * 2**30,
        gpus=1,
    )
    return base.replace(**changes)


@pytest.fixture
def history(database_url: str) -> History:
    opened = History(database_url)
    yield opened
    opened.close()


def test_migrations_upgrade_an_empty_database_downgrade_and_upgrade_again(database_url: str) -> None:
    history = History(database_url)  # migrates to the newest at open, as the service does
    try:
        assert migrations.current(history.engine) == migrations.head()
        assert "kbatch_jobs" in inspect(history.engine).get_table_names()
        migrations.downgrade(history.engine, "base")
        assert migrations.current(history.engine) is None
        assert "kbatch_jobs" not in inspect(history.engine).get_table_names()
        migrations.upgrade(history.engine)
        assert migrations.current(history.engine) == migrations.head()
        history.put([(record("a1"), "jhub")])
        assert history.get("alice", "a1") == record("a1")
    finally:
        history.close()


def test_the_migrations_make_exactly_the_tables_of_the_models(history: History) -> None:
    with history.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_a_record_reads_back_as_it_was_written(history: History) -> None:
    written = record("a1", state=JobState.FAILED, exit_code=3, reason="exit code 3")
    history.put([(written, "jhub")], spec={"cpus": 1.5, "env": ["TOKEN"]})
    read = history.get("alice", "a1")
    assert read == written and read is not None
    assert read.to_dict() == written.to_dict()
    assert read.submitted.tzinfo is not None and read.submitted == T0


def test_another_users_job_is_not_found_by_its_id(history: History) -> None:
    history.put([(record("a1"), "jhub")])
    assert history.get("bob", "a1") is None
    assert history.records("bob") == []


def test_an_end_is_not_undone_and_lost_does_not_replace_a_known_end(history: History) -> None:
    history.put([(record("a1", state=JobState.RUNNING), "jhub")])
    history.put([(record("a1", state=JobState.FAILED, exit_code=3), "jhub")])
    history.put([(record("a1", state=JobState.RUNNING), "jhub")])  # an older view, e.g. before the pods were listed
    history.put([(record("a1", state=JobState.LOST, reason="driver pod vanished"), "jhub")])  # its pods went first
    stored = history.get("alice", "a1")
    assert stored is not None and (stored.state, stored.exit_code) == (JobState.FAILED, 3)
    history.put([(record("b1", state=JobState.LOST), "jhub")])
    history.put([(record("b1", state=JobState.FAILED, exit_code=2), "jhub")])  # a closer look: replaces LOST
    stored = history.get("alice", "b1")
    assert stored is not None and (stored.state, stored.exit_code) == (JobState.FAILED, 2)


def test_records_over_a_time_range(history: History) -> None:
    day = timedelta(days=1)
    history.put(
        [
            (record("old", submitted=T0 - 3 * day, finished=T0 - 3 * day), "jhub"),
            (record("new", submitted=T0 + day, finished=T0 + day), "jhub"),
            (record("live", state=JobState.RUNNING, submitted=T0 - 5 * day), "jhub"),
            (record("bobs", user="bob"), "jhub"),
        ]
    )
    ids = [r.id for r in history.records("alice", since=T0 - day)]
    assert ids == ["live", "new"]  # oldest first; active jobs whatever their age
    assert [r.id for r in history.records("alice", since=T0 - day, until=T0)] == ["live"]
    assert [r.id for r in history.records("alice")] == ["live", "old", "new"]
    assert sorted(r.id for r in history.records(None)) == ["bobs", "live", "new", "old"]


def test_retention_deletes_the_records_of_jobs_ended_before_the_bound(history: History) -> None:
    day = timedelta(days=1)
    history.put(
        [
            (record("old", finished=T0 - 100 * day), "jhub"),
            (record("recent", finished=T0 - day), "jhub"),
            (record("live", state=JobState.RUNNING), "jhub"),
        ]
    )
    assert history.expire(T0 - 90 * day) == [("alice", "old")]
    assert sorted(r.id for r in history.records("alice")) == ["live", "recent"]


def test_a_url_sqlalchemy_cannot_use_is_one_line_naming_the_setting() -> None:
    with pytest.raises(BadInput) as bad:
        History("nosuchdb://user:secret@host/db")
    message = str(bad.value)
    assert message.startswith("kbatch.service.database-url 'nosuchdb://user:***@host/db'") and "\n" not in message
    assert "secret" not in message


def test_the_rollback_command_downgrades_and_upgrades(database_url: str) -> None:
    def run(*args: str) -> str:
        command = [sys.executable, "-m", "kbatch_dask.service.history", "--url", database_url, *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "at 0001" in run("upgrade")
    assert "at base (no tables)" in run("downgrade", "base")
    assert "at base (no tables)" in run("current")
    assert "at 0001" in run("upgrade")
    assert run("revisions").startswith("0001  job records")
