"""The Alembic migrations of the job records' schema, run by the service at
start (:func:`upgrade`) and by ``python -m kbatch_dask.service.history`` (its
``downgrade`` is the documented rollback)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["engine"] = engine  # env.py runs on it: no URL (and no password) in Alembic's config
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default); a no-op when it is there."""
    command.upgrade(_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (``-1``: one step; ``base``: no tables)."""
    command.downgrade(_config(engine), revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at; None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The newest revision this version of kbatch-dask ships."""
    head = ScriptDirectory(str(HERE)).get_current_head()
    assert head is not None
    return head


def revisions() -> list[tuple[str, str]]:
    """Every shipped revision, oldest first, with its message."""
    script = ScriptDirectory(str(HERE))
    return [(r.revision, r.doc or "") for r in reversed(list(script.walk_revisions()))]
