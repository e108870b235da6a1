"""Job records to HTML, pure: the CLI's JSON in (``kbatch show -o json``'s, with its
``report``), a page out.

Every value goes through tornado's autoescaping (``{{ }}``), the XSRF token too. A dashboard link is only ever an
``http(s)`` URL, so a record cannot smuggle ``javascript:`` into an ``href``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tornado import template

from kbatch_dask import report
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.render import workers_cell
from kbatch_dask.spec.dependency import Dependency
from kbatch_dask.spec.units import format_duration
from kbatch_dask.web.usage import per_user

TEMPLATES = template.Loader(str(Path(__file__).parent / "templates"), autoescape="xhtml_escape")
STATES = tuple(s.value for s in JobState)
# What each --dependency kind waits for (spec/dependency.py), said on the job's page.
WAITS_FOR = {
    "afterok": "starts once every job below has ended SUCCEEDED",
    "afterany": "starts once every job below has ended, however",
    "afternotok": "starts once every job below has ended, none SUCCEEDED",
    "singleton": "starts once no earlier job of its user with its name is active",
}


@dataclass(frozen=True)
class View:
    """Who looks, from where, through which filters."""

    base: str  # the page's root path, ending in "/"
    user: str
    admin: bool = False
    xsrf: str = ""  # the host's XSRF token: in the cancel form, and sent by the script with every request
    everyone: bool = False  # an admin's ?all=1
    of_user: str = ""  # an admin's ?user=NAME
    state: str = ""  # ?state=RUNNING: only jobs in that state
    name: str = ""  # ?name=: only jobs whose name holds it (any case)
    host: str = "hub"  # "hub" (the service) or "local" (kbatch ui)

    def query(self) -> str:
        """The list's owner part of a URL query (``all=1`` / ``user=NAME``), for links and polls.

        >>> View("/", "alice", admin=True, of_user="bob").query()
        'user=bob'
        """
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in (("all", "1" if self.everyone else ""), ("user", self.of_user)) if v})


def safe_url(url: str | None) -> str | None:
    """``url`` if it is a web address, else None.

    >>> safe_url("http://h/dash"), safe_url("javascript:alert(1)")
    ('http://h/dash', None)
    """
    return url if url and url.lower().startswith(("http://", "https://", "/")) else None


def row(job: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    """What the queue shows of one job (the script builds the same from the JSON)."""
    record = JobRecord.from_dict(job)
    dask = record.dask
    live = dask is not None and not record.state.is_terminal()
    return {
        "id": record.id,
        "name": record.name,
        "user": record.user,
        "state": record.state.value,
        "reason": record.reason or "",
        "elapsed": format_duration(record.elapsed(at or now())),
        "workers": workers_cell(record) if dask else "",
        "dashboard": safe_url(dask.dashboard) if live and dask else None,
        "output": record.output or "",
    }


def matches(job: dict[str, Any], view: View) -> bool:
    """Whether ``job`` passes the view's state filter and name search.

    >>> matches({"state": "RUNNING", "name": "Train"}, View("/", "a", state="RUNNING", name="rai"))
    True
    """
    return (not view.state or job["state"] == view.state) and view.name.lower() in str(job["name"]).lower()


def queue_page(jobs: list[dict[str, Any]], view: View, at: datetime | None = None) -> bytes:
    """The queue: every job of ``jobs`` that passes the filters, newest first as given;
    for an admin looking at other users' jobs, the usage per user of those listed."""
    listed = [job for job in jobs if matches(job, view)]
    rows = [row(job, at) for job in listed]
    users = sorted({str(job["user"]) for job in jobs})
    usage = per_user(listed, at) if view.admin and (view.everyone or view.of_user) else []
    return bytes(
        TEMPLATES.load("queue.html").generate(
            view=view, rows=rows, states=STATES, users=users, total=len(jobs), usage=usage
        )
    )


def report_view(job: dict[str, Any]) -> dict[str, Any] | None:
    """The job's report (the ``report`` of ``kbatch show -o json``) as the page shows it:
    ``kbatch show``'s line and ``kbatch report``'s rows (its state is the page's); None without one.
    Dask's HTML report is a file beside the job's output, named as text: neither host serves it."""
    data = job.get("report")
    if not data:
        return None
    return {"line": report.line(data), "rows": [(label, text) for label, text in report.rows(data) if label != "State"]}


def dependency_ids(job: dict[str, Any]) -> tuple[str, ...]:
    """The jobs ``job`` depends on (none for ``singleton``).

    >>> dependency_ids({"dependency": "afterok:k3x9q:m7p2r"}), dependency_ids({"dependency": None})
    (('k3x9q', 'm7p2r'), ())
    """
    text = job.get("dependency")
    return Dependency.parse(text).ids if text else ()


def dependency_view(job: dict[str, Any], states: dict[str, str | None]) -> dict[str, Any] | None:
    """The job's ``--dependency``: its kind, what it waits for, and each job with
    its state (``states``; None: gone or never known); None without one."""
    text = job.get("dependency")
    if not text:
        return None
    dependency = Dependency.parse(text)
    jobs = [{"id": job_id, "state": states.get(job_id)} for job_id in dependency.ids]
    return {"kind": dependency.kind, "text": str(dependency), "waits_for": WAITS_FOR[dependency.kind], "jobs": jobs}


def job_page(job: dict[str, Any], view: View, dependency_states: dict[str, str | None] | None = None) -> bytes:
    """One job: everything ``kbatch show`` knows, its log, its report and dependency, and cancel while it lives."""
    fields = [
        ("Submitted", job.get("submitted")),
        ("Started", job.get("started")),
        ("Finished", job.get("finished")),
        ("Reason", job.get("reason")),
        ("Exit code", job.get("exit_code")),
        ("Script", " ".join([job["script"], *job.get("args", [])])),
        ("Output", job.get("output")),
        ("Error file", job.get("error")),
        ("Executed notebook", job.get("notebook_output")),
        ("Working directory", job.get("workdir")),
        ("Time limit", format_duration(job["time_limit"]) if job.get("time_limit") else None),
        ("Attempt", job.get("attempt")),
        ("Cluster", (job.get("dask") or {}).get("cluster")),
        ("Host", job.get("host")),
        ("Comment", job.get("comment")),
    ]
    return bytes(
        TEMPLATES.load("job.html").generate(
            view=view,
            job=row(job),
            ended=JobState(job["state"]).is_terminal(),
            fields=[(label, value) for label, value in fields if value not in (None, "")],
            raw=json.dumps(job, indent=2),
            report=report_view(job),
            dependency=dependency_view(job, dependency_states or {}),
        )
    )


def error_page(status: int, message: str, view: View) -> bytes:
    return bytes(TEMPLATES.load("error.html").generate(view=view, status=status, message=message))


@dataclass(frozen=True)
class Question:
    """What the page asks before an action posted without the script's confirmation."""

    verb: str  # "Cancel": the question's, "Cancel job X?"
    yes: str
    no: str


CANCEL = Question("Cancel", "Yes, cancel it", "No, keep it running")
RESUBMIT = Question("Resubmit", "Yes, submit it again", "No, leave it")


def confirm_page(job_id: str, view: View, question: Question = CANCEL) -> bytes:
    """Asked before a cancel (or a resubmit) posted without the script's confirmation."""
    return bytes(TEMPLATES.load("confirm.html").generate(view=view, job_id=job_id, question=question))
