"""Alembic's environment: migrate on the engine the caller put in the config
(:mod:`kbatch_dask.service.history.migrations`), never from a URL of its own."""

from __future__ import annotations

from alembic import context

from kbatch_dask.service.history.models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    # render_as_batch: SQLite alters a table by copying it, Alembic's batch mode does that.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
