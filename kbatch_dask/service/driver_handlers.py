"""The routes job drivers call (:mod:`.driver_events`, and the uploads of
:mod:`.archive`): authenticated by the job's own credential (``Authorization:
Bearer …``) and nothing else — no hub token, no cookie. A wrong or missing
credential, another job's, or a job the service does not have are all the same
401. An upload replaces the last one of its kind (a driver retries), and one
over the limits of ``kbatch.service.archive`` is a 413."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado import httputil
from tornado.routing import PathMatches, Rule

from kbatch_dask.backends.hub.protocol import LOG_UPLOADS, MAX_REPORT_BYTES, Upload
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.errors import BadInput
from kbatch_dask.report import summary_of
from kbatch_dask.service.archive import KINDS, Archive
from kbatch_dask.service.driver_events import DriverEvents, ended
from kbatch_dask.service.errors import JsonErrors, refuse
from kbatch_dask.settings import ServiceArchive

SCHEME = "bearer"


def owner_of(job: dict[str, Any]) -> str:
    """The hub user whose job it is (the Job's annotation, set by the service at submit)."""
    return str(((job.get("metadata") or {}).get("annotations") or {}).get(names.ANN_USER, ""))


class DriverHandler(JsonErrors):
    events: DriverEvents
    about_job = True  # its log lines name the job (service.logs.about)
    job_owner: dict[str, str] | None = None  # once the credential was checked: whose job it is

    def initialize(self, context: Any) -> None:
        self.events = context.jobs.driver_events
        self.archive: Archive = context.jobs.archive
        self.limits: ServiceArchive = context.archive_limits

    def check_xsrf_cookie(self) -> None:
        """A credential in a header, never a cookie: nothing to forge."""

    def _credential(self) -> str | None:
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() == SCHEME and value.strip() else None

    async def verified_job(self, job_id: str) -> dict[str, Any]:
        job = await asyncio.to_thread(self.events.job, job_id, self._credential())
        if job is None:
            refuse(401, f"not the credential of job {job_id}'s driver")
        self.job_owner = {"name": owner_of(job)}
        return job


class EventsHandler(DriverHandler):
    async def post(self, job_id: str) -> None:
        job = await self.verified_job(job_id)
        try:
            body = json.loads(self.request.body)
        except (UnicodeDecodeError, ValueError):
            raise BadInput("the event is not JSON") from None
        await asyncio.to_thread(self.events.apply, job, body)
        if body.get("event") == "started" and not ended(job):
            # Each attempt starts afresh: a retried job's earlier result is never taken for its last.
            for kind in KINDS:
                await asyncio.to_thread(self.archive.delete, owner_of(job), job_id, kind)
        self.set_status(204)
        self.finish()


class UploadHandler(DriverHandler):
    """``PUT .../result``, ``PUT .../logs?stream=output|error`` and ``PUT .../report``:
    what the driver uploads before it reports the end, kept in the service's archive."""

    async def put(self, job_id: str, what: str) -> None:
        job = await self.verified_job(job_id)
        kind: Upload
        if what == "report":
            kind, limit, setting = "report", MAX_REPORT_BYTES, None  # a summary's size is the meter's to bound
        elif what == "result":
            kind, limit, setting = "result", self.limits.max_result_bytes, "max-result-bytes"
        else:
            stream = self.get_query_argument("stream", "")
            if stream not in LOG_UPLOADS:
                raise BadInput(f"?stream={stream}: expected one of {', '.join(LOG_UPLOADS)}")
            kind = "error" if stream == "error" else "output"
            limit, setting = self.limits.max_log_bytes, "max-log-bytes"
        if len(self.request.body) > limit:
            named = f" (kbatch.service.archive.{setting})" if setting else ""
            refuse(413, f"the {kind} upload is over {limit} bytes{named}")
        if kind == "report":
            summary_of(self.request.body)  # served to its owner as the report's JSON: only the driver's shape (400)
        await asyncio.to_thread(self.archive.put, owner_of(job), job_id, kind, self.request.body)
        self.set_status(204)
        self.finish()


class PodStatusHandler(DriverHandler):
    async def get(self, job_id: str) -> None:
        job = await self.verified_job(job_id)
        pod = self.get_query_argument("pod", None)
        self.finish(await asyncio.to_thread(self.events.pod_status, job, pod))


class PutMatches(PathMatches):
    """The path, for PUT only: the uploads share their paths with the users' GETs
    (``/result``, ``/logs``), which another handler, with other auth, answers."""

    def match(self, request: httputil.HTTPServerRequest) -> dict[str, Any] | None:
        return super().match(request) if request.method == "PUT" else None


def driver_routes(api: str, job: str, kw: dict[str, Any]) -> list[Rule]:
    """The drivers' routes; before the users' ones, which would take the uploads' paths."""
    return [
        Rule(PathMatches(api + job + "/events$"), EventsHandler, kw),
        Rule(PathMatches(api + job + "/pod-status$"), PodStatusHandler, kw),
        Rule(PutMatches(api + job + "/(result|logs|report)$"), UploadHandler, kw),
    ]
