"""``POST /jobs/{id}/resubmit``: a job of the caller's submitted again, as a new
job, from the spec and script snapshot its own ConfigMap holds
(:mod:`~kbatch_dask.backends.kubernetes.snapshot`).

The client sends at most ``{"environment": {...}}`` (the CLI: its session's
variables; the page: nothing), as in ``POST /jobs``: the old job's Secret is
never read back. The service turns the snapshot into the ``POST /jobs`` body a
client would have sent for it and submits that through
:func:`~kbatch_dask.service.submission.parse` and
:meth:`~kbatch_dask.service.jobs.JobService.submit`: the same validation,
policy (its image must still be allowed), queue and limits as any submission,
with a new driver credential and hub token. A job of another user is a missing
one. The ConfigMap goes with its Job (its TTL, a cancel): the service keeps the
same snapshot in its archive as it submits, and reads that then. A job with
neither (submitted before the archive kept snapshots, or the archive lost) is a 409.
"""

from __future__ import annotations

import json
from typing import Any

from kbatch_dask.backends.hub.backend import submission_body
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.snapshot import read_snapshot
from kbatch_dask.errors import BadInput, Conflict, JobNotFound, KubeError
from kbatch_dask.records import JobRecord
from kbatch_dask.service import submission
from kbatch_dask.service.archive import archived_snapshot
from kbatch_dask.service.jobs import Caller, JobService


def resubmit(jobs: JobService, caller: Caller, job_id: str, request: bytes = b"") -> JobRecord:
    """Submit the caller's job ``job_id`` again; the new job's record. ``request``: the
    request's body (empty, or ``{"environment": {...}}``)."""
    environment = _environment(request)
    config_map: dict[str, Any] | None = None
    if jobs.cache.holds(caller.name, job_id):
        try:
            config_map = jobs.api.read_config_map(jobs.namespaces.of(caller.name), m.job_name(caller.name, job_id))
        except KubeError as exc:
            if exc.status != 404:
                raise
    elif jobs.records.find(caller.name, job_id) is None:
        raise JobNotFound(job_id)
    config_map = config_map or archived_snapshot(jobs.archive, caller.name, job_id)
    if config_map is None:
        raise Conflict(
            f"job {job_id} cannot be resubmitted: its script snapshot is gone (neither its ConfigMap nor the "
            "service's archive holds it); submit the script again"
        )
    old = read_snapshot(job_id, config_map)
    body = submission_body(old.spec, old.content, environment)
    return jobs.submit(caller, submission.parse(json.dumps(body).encode()))


def _environment(request: bytes) -> dict[str, Any]:
    """The request's environment, checked by :func:`~kbatch_dask.service.submission.parse` with the rest."""
    if not request.strip():
        return {}
    try:
        data = json.loads(request)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"the request body is not JSON: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or set(data) - {"environment"}:
        raise BadInput('the request body: expected nothing, or {"environment": {...}}')
    environment = data.get("environment", {})
    if not isinstance(environment, dict):
        raise BadInput("environment: expected a JSON object of variables")
    return environment
