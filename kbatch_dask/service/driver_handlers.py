"""The routes job drivers call (:mod:`.driver_events`): authenticated by the
job's own credential (``Authorization: Bearer …``) and nothing else — no hub
token, no cookie. A wrong or missing credential, another job's, or a job the
service does not have are all the same 401."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado import web

from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.errors import BadInput
from kbatch_dask.service.driver_events import DriverEvents
from kbatch_dask.service.errors import JsonErrors, refuse

SCHEME = "bearer"


class DriverHandler(JsonErrors):
    events: DriverEvents
    about_job = True  # its log lines name the job (service.logs.about)
    job_owner: dict[str, str] | None = None  # once the credential was checked: whose job it is

    def initialize(self, context: Any) -> None:
        self.events = context.jobs.driver_events

    def check_xsrf_cookie(self) -> None:
        """A credential in a header, never a cookie: nothing to forge."""

    def _credential(self) -> str | None:
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() == SCHEME and value.strip() else None

    async def verified_job(self, job_id: str) -> dict[str, Any]:
        job = await asyncio.to_thread(self.events.job, job_id, self._credential())
        if job is None:
            refuse(401, f"not the credential of job {job_id}'s driver")
        self.job_owner = {"name": str(((job.get("metadata") or {}).get("annotations") or {}).get(names.ANN_USER, ""))}
        return job


class EventsHandler(DriverHandler):
    async def post(self, job_id: str) -> None:
        job = await self.verified_job(job_id)
        try:
            body = json.loads(self.request.body)
        except (UnicodeDecodeError, ValueError):
            raise BadInput("the event is not JSON") from None
        await asyncio.to_thread(self.events.apply, job, body)
        self.set_status(204)
        self.finish()


class PodStatusHandler(DriverHandler):
    async def get(self, job_id: str) -> None:
        job = await self.verified_job(job_id)
        pod = self.get_query_argument("pod", None)
        self.finish(await asyncio.to_thread(self.events.pod_status, job, pod))


def driver_routes(api: str, job: str, kw: dict[str, Any]) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    return [(api + job + "/events", EventsHandler, kw), (api + job + "/pod-status", PodStatusHandler, kw)]
