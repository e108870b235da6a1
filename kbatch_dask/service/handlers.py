"""The routes of API v1 (SERVICE.md), thin: parse the request, call
:class:`~kbatch_dask.service.jobs.JobService` off the event loop (the
Kubernetes client blocks), answer JSON. Reads served from the watch cache
wait for it to be up (:data:`CACHE_WAIT`, then 503); the running-jobs count
runs on the loop (memory only), queue and show off it, since a job no longer
in the cache is read from the database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any, TypeVar

from tornado import web
from tornado.routing import Rule

from kbatch_dask import versions
from kbatch_dask.backends.kubernetes.slugs import is_dns_label
from kbatch_dask.errors import BackendError, BadInput, JobNotFound, KubeError
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.service import resubmission, submission
from kbatch_dask.service.auth import ApiHandler
from kbatch_dask.service.driver_handlers import driver_routes
from kbatch_dask.service.errors import JsonErrors, refuse
from kbatch_dask.service.jobs import ListQuery
from kbatch_dask.service.logs import log
from kbatch_dask.service.metrics import CONTENT_TYPE

T = TypeVar("T")
CACHE_WAIT = 5.0  # seconds a read waits for the cache's first list (or a relist) before a 503
STREAMS = {"output": "output", "stdout": "output", "error": "error", "stderr": "error", "all": "all"}


async def off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(call, *args, **kwargs)


def job_json(record: JobRecord) -> dict[str, Any]:
    return record.to_dict()


class RootHandler(ApiHandler):
    async def get(self) -> None:
        caller = self.caller()
        await self.context.jobs.cache.wait_up(CACHE_WAIT)
        active = self.context.jobs.active(caller)
        self.finish(
            {
                "user": caller.name,
                "admin": (await self.admin_caller()).admin,
                "version": versions.package_version(),
                "api": list(versions.API_VERSIONS),
                "limits": self.context.jobs.policy.summary(),
                "namespace-mode": "per-user" if self.context.jobs.namespaces.per_user else "shared",
                "usage": {"active-jobs": active, "queued-jobs": self.context.jobs.admission.queued(caller.name)},
            }
        )


class JobsHandler(ApiHandler):
    _etag: str | None = None

    async def get(self) -> None:
        caller = await self.admin_caller() if self._about_others() else self.caller()
        states = (
            JobState.parse_list(self.get_query_argument("state", "")) if self.get_query_argument("state", "") else ()
        )
        since, until = self.get_query_argument("since", None), self.get_query_argument("until", None)
        await self.context.jobs.cache.wait_up(CACHE_WAIT)
        query = ListQuery(
            everyone=self._flag("all"),
            user=self.get_query_argument("user", None),
            states=states,
            since=_iso("since", since) if since else None,
            until=_iso("until", until) if until else None,
        )
        # An unchanged list is answered from memory at once; building one may query the database.
        jobs = self.context.jobs
        kept = jobs.kept_list_json(caller, query)
        listing = kept if kept is not None else await off_loop(jobs.list_json, caller, query)
        self._etag = listing.etag
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(listing.body)

    def compute_etag(self) -> str | None:
        # The list's own, kept with it: tornado would hash the whole body again per request.
        return self._etag or super().compute_etag()

    async def post(self) -> None:
        caller = self.caller()
        if self._flag("dry-run"):
            # What a submit would create, refused alike; not a submission, so not counted as one.
            await self.context.jobs.cache.wait_up(CACHE_WAIT)  # the running-jobs limit reads it
            self.finish(await off_loop(self.context.jobs.dry_run, caller, self._submission()))
            return
        with self.context.metrics.submission():
            record = await off_loop(self.context.jobs.submit, caller, self._submission())
        log.info("submitted job %s", record.id, extra={"user": caller.name, "job": record.id})
        self.set_status(201)
        self.finish(job_json(record))

    def _submission(self) -> submission.Submission:
        limit = self.context.max_body_size
        if len(self.request.body) > limit:
            refuse(413, f"the request body is over {limit} bytes (kbatch.service.max-body-size)")
        return submission.parse(self.request.body)

    def _about_others(self) -> bool:
        return self._flag("all") or self.get_query_argument("user", None) is not None

    def _flag(self, name: str) -> bool:
        return self.get_query_argument(name, "0").lower() in ("1", "true", "yes")


class JobHandler(ApiHandler):
    """``/jobs/{id}`` and what hangs off it; another user's id is a missing one."""

    about_job = True  # its log lines name the job (service.logs.about)

    async def _caller_and_user(self, job_id: str) -> tuple[Any, str | None]:
        if not is_dns_label(job_id):
            raise JobNotFound(job_id)
        user = self.get_query_argument("user", None)
        caller = await self.admin_caller() if user else self.caller()
        return caller, user

    async def get(self, job_id: str) -> None:
        caller, user = await self._caller_and_user(job_id)
        await self.context.jobs.cache.wait_up(CACHE_WAIT)
        self.finish(job_json(await off_loop(self.context.jobs.get, caller, job_id, user)))

    async def delete(self, job_id: str) -> None:
        caller, user = await self._caller_and_user(job_id)
        self.finish(job_json(await off_loop(self.context.jobs.cancel, caller, job_id, user)))


class HoldHandler(JobHandler):
    """``POST /jobs/{id}/hold`` and ``/release``: a job waiting in the queue; 409 for another."""

    def initialize(self, context: Any, release: bool = False) -> None:
        super().initialize(context)
        self.release = release

    async def post(self, job_id: str) -> None:
        caller, user = await self._caller_and_user(job_id)
        await self.context.jobs.cache.wait_up(CACHE_WAIT)
        act = self.context.jobs.release if self.release else self.context.jobs.hold
        self.finish(job_json(await off_loop(act, caller, job_id, user)))


class ResubmitHandler(JobHandler):
    """``POST /jobs/{id}/resubmit``: the caller's own job again, as a new one (:mod:`.resubmission`)."""

    async def post(self, job_id: str) -> None:
        caller = self.caller()  # never another user's job: its script and environment are theirs
        if not is_dns_label(job_id):
            raise JobNotFound(job_id)
        await self.context.jobs.cache.wait_up(CACHE_WAIT)
        with self.context.metrics.submission():
            body, limit = self.request.body, self.context.max_body_size
            if len(body) > limit:
                refuse(413, f"the request body is over {limit} bytes (kbatch.service.max-body-size)")
            record = await off_loop(resubmission.resubmit, self.context.jobs, caller, job_id, body)
        log.info("resubmitted job %s as %s", job_id, record.id, extra={"user": caller.name, "job": record.id})
        self.set_status(201)
        self.finish(job_json(record))


class LogsHandler(JobHandler):
    async def get(self, job_id: str) -> None:
        caller, user = await self._caller_and_user(job_id)
        stream = STREAMS.get(self.get_query_argument("stream", "output"))
        if stream is None:
            raise BadInput(f"?stream={self.get_query_argument('stream')}: expected output, stderr or all")
        tail = self.get_query_argument("tail", None)
        if tail is not None and not tail.isdigit():
            raise BadInput(f"?tail={tail}: expected a number of lines")
        follow = self.get_query_argument("follow", "0").lower() in ("1", "true", "yes")
        chunks: Iterator[bytes] = await off_loop(
            self.context.jobs.logs,
            caller,
            job_id,
            user=user,
            follow=follow,
            stream=stream,
            tail=int(tail) if tail is not None else None,
        )
        first = await off_loop(next, chunks, None)  # errors (no such job, no pod) before the first byte
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        while first is not None:
            self.write(first)
            await self.flush()
            first = await off_loop(next, chunks, None)
        self.finish()


class ResultHandler(JobHandler):
    async def get(self, job_id: str) -> None:
        caller, user = await self._caller_and_user(job_id)
        await self.context.jobs.cache.wait_up(CACHE_WAIT)
        record = await off_loop(self.context.jobs.get, caller, job_id, user)
        if not record.state.is_terminal():
            refuse(409, f"job {job_id} is {record.state.value}: its result comes when it ends")
        data = await off_loop(self.context.jobs.result, caller, job_id, user)
        if data is None:
            refuse(404, f"job {job_id} has no result (only function jobs have one, once they end)")
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)


class ReportHandler(JobHandler):
    """The job report's summary its driver uploaded (``kbatch report`` derives the rest)."""

    async def get(self, job_id: str) -> None:
        caller, user = await self._caller_and_user(job_id)
        await self.context.jobs.cache.wait_up(CACHE_WAIT)
        record, saved = await off_loop(self.context.jobs.report, caller, job_id, user)
        if saved is None and not record.state.is_terminal():
            refuse(409, f"job {job_id} is {record.state.value}: its report comes when it ends")
        if saved is None:
            refuse(404, f"job {job_id} has no report (its driver uploaded none: no Dask cluster, or the report is off)")
        self.finish(saved.summary)


class HealthHandler(JsonErrors):
    """Liveness without auth and without user data: are both watches of the
    cache up, how long since each last heard from Kubernetes, does the
    database answer? 503 when not."""

    def initialize(self, context: Any) -> None:
        self.context = context

    async def get(self) -> None:
        cache = self.context.jobs.cache
        try:
            await off_loop(self.context.jobs.records.history.ping)
            database = "ok"
        except BackendError as exc:
            database = str(exc)
        self.set_status(200 if cache.up and database == "ok" else 503)
        records = self.context.jobs.records.pending  # not written yet: the database's backlog
        answer = {"kubernetes": "ok" if cache.up else "down", "database": database, "records-pending": records}
        self.finish({**answer, "watches": cache.health()})


class MetricsHandler(JsonErrors):
    """Prometheus' text page, without auth: no label holds user data (see :mod:`.metrics`)."""

    def initialize(self, context: Any) -> None:
        self.context = context

    async def get(self) -> None:
        try:
            by_state = await off_loop(self.context.jobs.count_by_state)
        except KubeError:
            by_state = None  # the page still answers, with kbatch_dask_kubernetes_up 0
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.context.metrics.page(by_state))


class OtherApiHandler(JsonErrors):
    """A path of an API version this service does not speak: say which version to install."""

    def prepare(self) -> None:
        refuse(400, versions.api_problem(self.path_args[0]))


class NotFoundHandler(JsonErrors):
    def prepare(self) -> None:
        refuse(404, f"no such endpoint: {self.request.method} {self.request.path}")


def _iso(name: str, text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"?{name}={text}: expected an ISO date and time, e.g. 2026-01-31T12:00:00+00:00") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # compared with aware times


def routes(prefix: str, context: Any) -> list[Rule | tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The API's routes under the service's prefix."""
    api = f"{prefix.rstrip('/')}/api/v1"
    job = r"/jobs/([^/]+)"
    kw = {"context": context}
    return [
        *driver_routes(api, job, kw),  # first: the drivers' uploads share paths with users' reads
        (api + "/?", RootHandler, kw),
        (api + "/jobs/?", JobsHandler, kw),
        (api + job + "/?", JobHandler, kw),
        (api + job + "/logs", LogsHandler, kw),
        (api + job + "/result", ResultHandler, kw),
        (api + job + "/report", ReportHandler, kw),
        (api + job + "/hold", HoldHandler, kw),
        (api + job + "/resubmit", ResubmitHandler, kw),
        (api + job + "/release", HoldHandler, {**kw, "release": True}),
        (api + "/health", HealthHandler, kw),
        (api + "/metrics", MetricsHandler, kw),
        (f"{prefix.rstrip('/')}/api/(?!{'|'.join(versions.API_VERSIONS)}(?:/|$))([^/]+).*", OtherApiHandler, {}),
    ]
