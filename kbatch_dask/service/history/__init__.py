"""The service's durable job records: what ``kqueue --all``, ``kbatch show``
and ``kbatch history`` read once a job's Kubernetes Job and pods are gone (the
TTL), and what a restarted service knows of jobs that ended while it was down.

- :mod:`.models`: the table (SQLAlchemy 2); :mod:`.migrations`: its Alembic
  revisions, run at start; ``python -m kbatch_dask.service.history`` upgrades,
  shows and rolls back (``downgrade``) the schema by hand.
- :mod:`.store`: :class:`~.store.History`, reads and writes, one short
  transaction each.
- :mod:`.recorder`: :class:`~.recorder.Recorder`, which writes the watch
  cache's changes in a thread of its own and answers reads of jobs no longer
  in the cache (the database, and what is not written yet).

Why synchronous SQLAlchemy in threads rather than its asyncio API: the writes
come from the watch cache's threads and from submits and cancels that already
run off the event loop (the Kubernetes client blocks), so a sync API is what
most callers need; the few reads on a request (a job no longer in the cache, a
listing that was not memoised) go through the service's ``off_loop`` like the
Kubernetes calls. The asyncio API would add aiosqlite and a second way to
reach the same database, and it runs SQLite in a thread anyway.
"""

from __future__ import annotations

from kbatch_dask.service.history.recorder import Recorder
from kbatch_dask.service.history.store import History

__all__ = ["History", "Recorder"]
