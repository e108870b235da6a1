"""The page's tornado handlers, for either host.

A host subclasses :class:`PageHandler` once, saying who asks
(:meth:`PageHandler.source`) and what to do with nobody (:meth:`PageHandler.login`),
and passes that class to :func:`page_routes`. Under the page's root:

- ``GET /``: the queue (``?state=``, ``?name=``; admins ``?all=1``, ``?user=``);
  ``?format=json``: the list as the API answers it, with an ETag (304 while unchanged);
- ``GET jobs/{id}``: one job, with its Dask report and its dependency's jobs and
  their states; ``?format=json``: its ``kbatch show -o json``;
- ``GET jobs/{id}/log``: its output as text, ``?follow=1`` until it ends;
- ``POST jobs/{id}/cancel``: cancel (XSRF-checked by the host; ``confirmed=1``,
  else a page that asks first);
- ``POST jobs/{id}/resubmit``: the asker's own job submitted again (XSRF-checked,
  ``confirmed=1`` as for cancel), then the new job's page;
- ``GET static/…``: the stylesheet and the script.

Every answer carries a Content-Security-Policy that allows this origin's own
script and stylesheet only: no inline script, no other site, no framing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tornado import web
from tornado.log import gen_log

from kbatch_dask.errors import BadInput, Conflict, JobNotFound, KbatchError, Refused
from kbatch_dask.web import render
from kbatch_dask.web.source import JobSource

T = TypeVar("T")
STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


async def off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(call, *args, **kwargs)


def status_of(exc: KbatchError) -> int:
    """The page's status for one of kbatch's errors.

    >>> status_of(JobNotFound("x")), status_of(BadInput("y")), status_of(Refused("z")), status_of(Conflict("w"))
    (404, 400, 403, 409)
    """
    # Refused and Conflict are kinds of BadInput: asked first.
    for kind, status in ((JobNotFound, 404), (Refused, 403), (Conflict, 409), (BadInput, 400)):
        if isinstance(exc, kind):
            return status
    return 503


class PageHandler(web.RequestHandler):
    """What every page answer shares: the headers, the view, errors as a page."""

    base: str
    host: str

    def initialize(self, base: str, host: str) -> None:
        self.base = base
        self.host = host

    def source(self) -> JobSource | None:
        """The jobs of whoever asks; None when nobody is logged in (the host's to say)."""
        raise NotImplementedError

    def login(self) -> None:
        """Answer a request from nobody (the host's: the hub's login, or a 403)."""
        raise web.HTTPError(403)

    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Cache-Control", "no-cache")

    def asker(self) -> JobSource:
        source = self.source()
        if source is None:
            self.login()
            raise web.Finish()
        return source

    def view(self, source: JobSource | None = None) -> render.View:
        arg = self.get_query_argument
        state = arg("state", "").upper()
        if state and state not in render.STATES:
            raise BadInput(f"?state={state}: expected one of {' '.join(render.STATES)}")
        return render.View(
            base=self.base,
            user=source.user if source else "",
            admin=bool(source and source.admin),
            xsrf=self.xsrf_token.decode(),
            everyone=arg("all", "") in ("1", "true"),
            of_user=arg("user", ""),
            state=state,
            name=arg("name", ""),
            host=self.host,
        )

    def wants_json(self) -> bool:
        return self.get_query_argument("format", "") == "json"

    def of_user(self) -> str | None:
        return self.get_query_argument("user", None) or None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, KbatchError):
            status_code = status_of(exc)
            self.set_status(status_code)
            message = " ".join(str(exc).split())
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args
        else:
            message = self._reason
        self.clear_header("Content-Type")
        if self.wants_json():
            self.finish({"error": message})
            return
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(render.error_page(status_code, message, render.View(self.base, "", host=self.host)))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, KbatchError):  # an answer (404, 400, …), not a fault: one line
            gen_log.info("%s %s: %s", self.request.method, self.request.path, " ".join(str(value).split()))
        else:
            super().log_exception(typ, value, tb)

    def html(self, page: bytes) -> None:
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(page)


class QueuePage(PageHandler):
    _etag: str | None = None

    async def get(self) -> None:
        source = self.asker()
        view = self.view(source)
        if (view.everyone or view.of_user) and not source.admin:
            raise BadInput("?all=1 and ?user= are for admins: leave them out to see your own jobs")
        listing = await off_loop(source.listing, everyone=view.everyone, user=view.of_user or None)
        if self.wants_json():
            self._etag = listing.etag
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            self.finish(listing.body)
            return
        self.html(render.queue_page(listing.jobs(), view))

    def compute_etag(self) -> str | None:
        return self._etag  # the list's own; the HTML (its xsrf field changes) has none


class JobPage(PageHandler):
    async def get(self, job_id: str) -> None:
        source = self.asker()
        job = await off_loop(source.job, job_id, self.of_user())
        if self.wants_json():
            self.finish(job)
            return
        states = await off_loop(dependency_states, source, job, self.of_user())
        self.html(render.job_page(job, self.view(source), states))


def dependency_states(source: JobSource, job: dict[str, Any], user: str | None) -> dict[str, str | None]:
    """The state of each job ``job`` depends on (its owner's: a dependency is on one's own
    jobs); None for one no longer known."""
    states: dict[str, str | None] = {}
    for job_id in render.dependency_ids(job):
        try:
            states[job_id] = str(source.job(job_id, user)["state"])
        except JobNotFound:
            states[job_id] = None
    return states


class JobLog(PageHandler):
    async def get(self, job_id: str) -> None:
        source = self.asker()
        follow = self.get_query_argument("follow", "0") == "1"
        chunks: Iterator[bytes] = await off_loop(source.logs, job_id, self.of_user(), follow=follow)
        chunk = await off_loop(next, chunks, None)  # a missing job is a 404 before the first byte
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        while chunk is not None:
            self.write(chunk)
            await self.flush()
            chunk = await off_loop(next, chunks, None)
        self.finish()


class CancelJob(PageHandler):
    async def post(self, job_id: str) -> None:
        source = self.asker()
        if self.get_body_argument("confirmed", "0") != "1":
            self.html(render.confirm_page(job_id, self.view(source), render.CANCEL))
            return
        job = await off_loop(source.cancel, job_id, self.of_user())
        if "application/json" in self.request.headers.get("Accept", ""):
            self.finish(job)
            return
        user = self.of_user()
        self.redirect(f"{self.base}jobs/{job_id}" + (f"?user={user}" if user else ""), status=303)


class ResubmitJob(PageHandler):
    async def post(self, job_id: str) -> None:
        source = self.asker()
        if self.get_body_argument("confirmed", "0") != "1":
            self.html(render.confirm_page(job_id, self.view(source), render.RESUBMIT))
            return
        job = await off_loop(source.resubmit, job_id)
        if "application/json" in self.request.headers.get("Accept", ""):
            self.set_status(201)
            self.finish(job)
            return
        self.redirect(f"{self.base}jobs/{job['id']}", status=303)


class Static(web.StaticFileHandler):
    def set_default_headers(self) -> None:
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")


def page_routes(
    base: str, host_class: type[PageHandler], host: str, extra: dict[str, Any] | None = None
) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    """The page's routes under ``base`` (ending in ``/``), each handler made of
    its page and the host's class (``extra``: more of the host's initialize arguments)."""
    kw = {"base": base, "host": host, **(extra or {})}
    job = r"jobs/([a-z0-9][a-z0-9-]{0,62})"

    def made(page: type[PageHandler]) -> type[PageHandler]:
        return type(page.__name__, (page, host_class), {})

    return [
        (base, made(QueuePage), kw),
        (base + job + "/?", made(JobPage), kw),
        (base + job + "/log", made(JobLog), kw),
        (base + job + "/cancel", made(CancelJob), kw),
        (base + job + "/resubmit", made(ResubmitJob), kw),
        (base + r"static/(page\.css|page\.js)", Static, {"path": str(STATIC)}),
    ]
