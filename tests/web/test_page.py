"""The page as the server renders it, read as HTML: the Resubmit button on a
job's page (a POST form with the XSRF token, for the job's owner), the
resubmit route of a real host (``kbatch ui``'s, XSRF-checked, landing on the
new job's page), the admin view's usage per user, and a job's log served as
the job wrote it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

from tornado.testing import AsyncHTTPTestCase
from tornado.web import Application

from kbatch_dask.cli.ui_server import LocalJobs, make_app
from kbatch_dask.errors import Conflict
from kbatch_dask.records import DaskInfo, JobRecord, JobState
from kbatch_dask.web import render

AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
LOG = (b"caf\xe9 \xff\n", "ok ✓\n".encode(), b"last \xe2\x9c")  # chunks, not all of them UTF-8


def record(job_id: str, user: str, state: JobState, **fields: Any) -> dict[str, Any]:
    return JobRecord(
        job_id, f"job-{job_id}", user, "local", state, AT - timedelta(hours=5), "/h/s.py", **fields
    ).to_dict()


class Page(HTMLParser):
    """The forms (action → their hidden fields) and the usage table's rows of a page."""

    def __init__(self, html: bytes) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self.usage: list[list[str]] = []
        self._form: str | None = None
        self._in_usage = self._in_cell = False
        self.feed(html.decode())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form" and a.get("method") == "post":
            self._form = str(a.get("action"))
            self.forms[self._form] = {"id": str(a.get("id"))}
        elif tag == "input" and self._form is not None and a.get("type") == "hidden":
            self.forms[self._form][str(a["name"])] = str(a["value"])
        elif tag == "table" and a.get("id") == "usage":
            self._in_usage = True
        elif tag == "tr" and self._in_usage:
            self.usage.append([])
        elif tag in ("td", "th") and self._in_usage:
            self._in_cell = True
            self.usage[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "table":
            self._in_usage = False
        elif tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.usage[-1][-1] += data.strip()


def test_a_jobs_page_offers_its_owner_resubmit_in_a_post_form_with_the_xsrf_token() -> None:
    view = render.View("/base/", "alice", xsrf="token-123")
    running = Page(render.job_page(record("r1", "alice", JobState.RUNNING, started=AT), view)).forms
    assert running["/base/jobs/r1/resubmit"] == {"id": "resubmit", "_xsrf": "token-123", "confirmed": "0"}
    assert running["/base/jobs/r1/cancel"]["id"] == "cancel"
    ended = Page(render.job_page(record("e1", "alice", JobState.FAILED, exit_code=3), view)).forms
    assert list(ended) == ["/base/jobs/e1/resubmit"]  # no cancel once ended; resubmit still


def test_an_admin_gets_no_resubmit_of_another_users_job() -> None:
    view = render.View("/", "alice", admin=True, xsrf="t")
    forms = Page(render.job_page(record("b1", "bob", JobState.FAILED), view)).forms
    assert forms == {}


class StubJobs(LocalJobs):
    """``kbatch ui``'s job source, with the jobs of this test instead of a backend's."""

    def __init__(self) -> None:
        super().__init__(None)
        self.resubmitted: list[str] = []

    def job(self, job_id: str, user: str | None) -> dict[str, Any]:
        return record(job_id, self.user, JobState.FAILED)

    def logs(self, job_id: str, user: str | None, *, follow: bool) -> Iterator[bytes]:
        return iter(LOG)

    def resubmit(self, job_id: str) -> dict[str, Any]:
        if job_id == "gone1":
            raise Conflict("job gone1 cannot be resubmitted: its script snapshot is gone")
        self.resubmitted.append(job_id)
        return record("new01", self.user, JobState.PENDING)


class TestResubmitRoute(AsyncHTTPTestCase):
    TOKEN = "the-token"

    def get_app(self) -> Application:
        self.jobs = StubJobs()
        return make_app(self.jobs, self.TOKEN)

    def _logged_in(self) -> tuple[str, str]:
        """The cookies of a browser that opened the link, and the XSRF token of a job page."""
        login = self.fetch(f"/?token={self.TOKEN}", follow_redirects=False)
        cookies = [c.split(";")[0] for c in login.headers.get_list("Set-Cookie")]
        page = self.fetch("/jobs/old01", headers={"Cookie": "; ".join(cookies)})
        cookies += [c.split(";")[0] for c in page.headers.get_list("Set-Cookie")]
        xsrf = Page(page.body).forms["/jobs/old01/resubmit"]["_xsrf"]
        return "; ".join(cookies), xsrf

    def _post(self, job_id: str, fields: dict[str, str], cookie: str, query: str = "", **headers: str) -> Any:
        body = urlencode(fields)
        return self.fetch(
            f"/jobs/{job_id}/resubmit{query}",
            method="POST",
            body=body,
            follow_redirects=False,
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded", **headers},
            raise_error=False,
        )

    def test_a_jobs_log_is_served_byte_for_byte(self) -> None:
        cookie, _ = self._logged_in()
        answer = self.fetch("/jobs/old01/log", headers={"Cookie": cookie})
        assert answer.code == 200 and answer.body == b"".join(LOG)

    def test_without_confirmation_it_asks_first_and_submits_nothing(self) -> None:
        cookie, xsrf = self._logged_in()
        answer = self._post("old01", {"_xsrf": xsrf, "confirmed": "0"}, cookie)
        assert answer.code == 200 and b"Resubmit job <code>old01</code>?" in answer.body
        form = Page(answer.body).forms[""]  # posts to itself, confirmed, with a (masked) XSRF token
        assert form["confirmed"] == "1" and form["_xsrf"]
        assert self.jobs.resubmitted == []

    def test_confirmed_it_lands_on_the_new_jobs_page(self) -> None:
        cookie, xsrf = self._logged_in()
        answer = self._post("old01", {"_xsrf": xsrf, "confirmed": "1"}, cookie)
        assert (answer.code, answer.headers["Location"]) == (303, "/jobs/new01")
        as_json = self._post("old01", {"_xsrf": xsrf, "confirmed": "1"}, cookie, Accept="application/json")
        assert as_json.code == 201 and b'"id": "new01"' in as_json.body
        assert self.jobs.resubmitted == ["old01", "old01"]

    def test_without_the_xsrf_token_it_is_refused_and_submits_nothing(self) -> None:
        cookie, _ = self._logged_in()
        answer = self._post("old01", {"confirmed": "1"}, cookie)
        assert answer.code == 403 and self.jobs.resubmitted == []

    def test_a_gone_snapshot_is_a_409_page_with_its_line(self) -> None:
        cookie, xsrf = self._logged_in()
        answer = self._post("gone1", {"_xsrf": xsrf, "confirmed": "1"}, cookie)
        assert answer.code == 409 and b"its script snapshot is gone" in answer.body
        # What the page's script asks for, to say the refusal's line.
        as_json = self._post("gone1", {"_xsrf": xsrf, "confirmed": "1"}, cookie, query="?format=json")
        assert (as_json.code, json.loads(as_json.body)) == (
            409,
            {"error": "job gone1 cannot be resubmitted: its script snapshot is gone"},
        )


JOBS = [
    # alice: running 2 h with --cpus 2 and 4 workers; pending (no run time yet); ended after
    # 2 h without --cpus, adaptive 2:20 capped at 8 workers.
    record("a1", "alice", JobState.RUNNING, started=AT - timedelta(hours=2), cpus=2, dask=DaskInfo("4")),
    record("a2", "alice", JobState.PENDING, cpus=1, dask=DaskInfo("2:10")),
    record(
        "a3",
        "alice",
        JobState.SUCCEEDED,
        started=AT - timedelta(hours=3),
        finished=AT - timedelta(hours=1),
        dask=DaskInfo("2:20", worker_limit=8),
    ),
    # bob: failed after 30 min with --cpus 4, no cluster.
    record(
        "b1", "bob", JobState.FAILED, started=AT - timedelta(minutes=40), finished=AT - timedelta(minutes=10), cpus=4
    ),
]
HEADER = ["User", "Running", "Pending", "Ended", "Driver core-hours", "Worker-hours"]


def test_the_admin_view_of_every_user_shows_usage_per_user_over_the_listed_jobs() -> None:
    everyone = render.View("/", "root", admin=True, everyone=True)
    assert Page(render.queue_page(JOBS, everyone, at=AT)).usage == [
        HEADER,
        ["alice", "1", "1", "1", "4.00", "24.00"],  # cores 2 x 2 h; workers 4 x 2 h + 8 x 2 h
        ["bob", "0", "0", "1", "2.00", "0.00"],  # 4 x 0.5 h
    ]
    running = render.View("/", "root", admin=True, everyone=True, state="RUNNING")
    assert Page(render.queue_page(JOBS, running, at=AT)).usage == [HEADER, ["alice", "1", "0", "0", "4.00", "8.00"]]
    of_bob = render.View("/", "root", admin=True, of_user="bob")
    bobs = [j for j in JOBS if j["user"] == "bob"]
    assert Page(render.queue_page(bobs, of_bob, at=AT)).usage == [HEADER, ["bob", "0", "0", "1", "2.00", "0.00"]]


def test_a_users_own_queue_has_no_usage_table() -> None:
    alices = [j for j in JOBS if j["user"] == "alice"]
    assert Page(render.queue_page(alices, render.View("/", "alice"), at=AT)).usage == []
    assert Page(render.queue_page(alices, render.View("/", "alice", admin=True), at=AT)).usage == []
