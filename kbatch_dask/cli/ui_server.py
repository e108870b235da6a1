"""The server of ``kbatch ui``, as Jupyter serves a notebook: a random token in
the link logs the browser in (a signed cookie), so nobody else on the machine
reads or cancels the jobs without it; the cancel form is XSRF-checked."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import secrets
import webbrowser
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import click
from tornado import httpserver, netutil, web

from kbatch_dask.web.handlers import PageHandler, page_routes
from kbatch_dask.web.source import JobList

COOKIE = "kbatch-ui"


class LocalJobs:
    """The page's :class:`~kbatch_dask.web.source.JobSource`: this user's jobs through the API, as the CLI sees them."""

    admin = False

    def __init__(self, backend: str | None) -> None:
        self.backend = backend
        self.user = getpass.getuser()

    def listing(self, *, everyone: bool, user: str | None) -> JobList:
        from kbatch_dask import api

        return JobList.of([r.to_dict() for r in api.list_records(backend=self.backend)])

    def job(self, job_id: str, user: str | None) -> dict[str, Any]:
        from kbatch_dask.cli.shown import shown, shown_json

        return shown_json(*shown(job_id, self.backend))

    def logs(self, job_id: str, user: str | None, *, follow: bool) -> Iterator[bytes]:
        from kbatch_dask import api

        return api.get_job(job_id, self.backend).log_bytes(follow=follow)

    def cancel(self, job_id: str, user: str | None) -> dict[str, Any]:
        from kbatch_dask import api

        job = api.get_job(job_id, self.backend)
        job.cancel()
        return job.record.to_dict()

    def resubmit(self, job_id: str) -> dict[str, Any]:
        from kbatch_dask.resubmit import resubmit

        return resubmit(job_id, self.backend).record.to_dict()


class LocalPage(PageHandler):
    """Whoever holds the token: ``?token=`` once (then a cookie, and the link without it)."""

    jobs: LocalJobs
    token: str

    def initialize(self, base: str, host: str, jobs: LocalJobs, token: str) -> None:  # type: ignore[override]
        super().initialize(base, host)
        self.jobs = jobs
        self.token = token

    def prepare(self) -> None:
        given = self.get_query_argument("token", None)
        if given is not None and secrets.compare_digest(given, self.token) and self.request.method == "GET":
            self.set_signed_cookie(COOKIE, self.token, httponly=True, samesite="Strict", expires_days=None)
            rest = {k: v[-1].decode() for k, v in self.request.query_arguments.items() if k != "token"}
            self.redirect(self.request.path + (f"?{urlencode(rest)}" if rest else ""))

    def source(self) -> LocalJobs | None:
        cookie = self.get_signed_cookie(COOKIE)
        return self.jobs if cookie is not None and secrets.compare_digest(cookie.decode(), self.token) else None

    def login(self) -> None:
        raise web.HTTPError(403, "open the link `kbatch ui` printed (it holds the page's token)")


def make_app(jobs: LocalJobs, token: str) -> web.Application:
    return web.Application(
        page_routes("/", LocalPage, "local", {"jobs": jobs, "token": token}),
        cookie_secret=secrets.token_bytes(32),
        xsrf_cookies=True,  # the cancel form's POST, from a cookie login
    )


async def serve(jobs: LocalJobs, port: int, kept: Path, browser: bool) -> None:
    """Serve until interrupted; the link (with its token) kept in ``kept`` meanwhile, for ``kbatch ui --url``."""
    token = secrets.token_urlsafe(24)
    sockets = netutil.bind_sockets(port, "127.0.0.1")
    httpserver.HTTPServer(make_app(jobs, token)).add_sockets(sockets)
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/?token={token}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only: the link holds the token.
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "pid": os.getpid()}, f)
    click.echo(f"The jobs' page is at\n    {url}\n(Ctrl-C to stop)", err=True)
    if browser:
        webbrowser.open(url)
    try:
        await asyncio.Event().wait()
    finally:
        kept.unlink(missing_ok=True)
