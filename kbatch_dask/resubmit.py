"""``kbatch resubmit``: a job again, as a new job with a new id, made from the
old job's own spec and the script snapshotted when it was submitted (never the
file as it is now), on the backend that holds it. The old job is untouched.

The new job gets a hub token of its own, as any submission does
(:mod:`kbatch_dask.hub.tokens`): the old job's ended with it. The kbatch-dask
service (backend ``hub``) mints its jobs' tokens itself.
"""

from __future__ import annotations

import os

from kbatch_dask import settings
from kbatch_dask.api import HUB_BACKEND
from kbatch_dask.backends import get_backend
from kbatch_dask.gateway import configured_gateway
from kbatch_dask.job import Job


def resubmit(job_id: str, backend: str | None = None) -> Job:
    """Submit job ``job_id`` again; the new job's handle.

    >>> resubmit("k3x9q").id  # doctest: +SKIP
    'p7m2a'
    """
    from kbatch_dask.hub import tokens as hub

    config = settings.load()
    where = get_backend(backend or config.backend, config)
    old = where.get(job_id)  # JobNotFound before any token is made
    with hub.job_token(
        name=old.name,
        time_limit=old.time_limit,
        needs_gateway=old.dask is not None and where.name != HUB_BACKEND,
        environ=os.environ,
        policy=hub.TokenPolicy.from_settings(config.hub, configured_gateway()),
    ) as credentials:
        record = where.resubmit(job_id, credentials.env, os.environ)
    job = Job(record, where)
    job.warnings = (credentials.warning,) if credentials.warning else ()
    return job
