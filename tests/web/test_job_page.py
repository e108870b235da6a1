"""The job page rendered server-side from ``kbatch show -o json``'s JSON (its
``report`` and ``dependency`` too), read as the HTML text a browser without
JavaScript gets; and the page's handler asking the host for the state of each
job a job depends on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from kbatch_dask.errors import JobNotFound
from kbatch_dask.records import DaskInfo, JobRecord, JobState
from kbatch_dask.report import GIB, of
from kbatch_dask.settings import Report
from kbatch_dask.web import render
from kbatch_dask.web.handlers import dependency_states
from kbatch_dask.web.source import JobList

STARTED = datetime(2026, 11, 21, 21, 40, tzinfo=timezone.utc)
XSS = "<img src=x onerror=alert(1)>"


def record(job_id: str = "k3x9q", **changes: Any) -> JobRecord:
    fields: dict[str, Any] = {
        "id": job_id,
        "name": XSS,
        "user": "alice",
        "backend": "hub",
        "state": JobState.SUCCEEDED,
        "submitted": STARTED,
        "started": STARTED,
        "finished": STARTED + timedelta(seconds=110),
        "script": "train.py",
        "output": f"/home/alice/kbatch-{job_id}.out",
        "dask": DaskInfo(workers="2"),
        **changes,
    }
    return JobRecord(**fields)


def summary() -> dict[str, Any]:
    return {
        "metered_from": STARTED.timestamp() + 5,
        "first_worker": STARTED.timestamp() + 8,
        "collected": STARTED.timestamp() + 105,
        "workers": {
            "peak": 2,
            "mean": 2.0,
            "seconds": 200.0,
            "threads_peak": 2,
            "thread_seconds": 200.0,
            "memory_limit_byte_seconds": 200.0 * 4 * GIB,
        },
        "tasks": {
            "count": 40,
            "erred": 0,
            "compute_seconds": 20.0,
            "prefixes": [{"prefix": XSS, "seconds": 20.0, "count": 40, "erred": 0}],
        },
        "memory": {"peak_bytes": GIB // 2, "limit_bytes": 4 * GIB, "spill_written_bytes": 3 * GIB},
        "transfer_bytes": 0,
    }


def shown(r: JobRecord, html: str | None = None, priced: bool = False) -> dict[str, Any]:
    """What ``kbatch show -o json`` prints of ``r``, with its report."""
    prices = Report(True, True, 1.0, None, "EUR") if priced else None
    report = of(summary(), r, prices, html).to_dict()
    return dict(json.loads(json.dumps({**r.to_dict(), "report": report})))


def page(job: dict[str, Any], states: dict[str, str | None] | None = None, user: str = "alice") -> str:
    return render.job_page(job, render.View("/services/kbatch-dask/", user), states).decode()


def test_the_job_page_shows_the_report_line_and_its_table_escaped() -> None:
    html = page(shown(record(), priced=True))
    assert "CPU 10%, memory 12%, 200 worker-seconds (kbatch report k3x9q)" in html
    for label, text in (
        ("Wall time", "1:50"),
        ("CPU efficiency", "10% (compute-seconds / worker thread-seconds)"),
        ("Spill", "3.0 GiB written to disk"),
        ("Cost", "~0.06 EUR (0.06 core-hours, 0.22 GiB-hours)"),
        ("Hint", "workers spilled 3.0 GiB to disk: try more --worker-memory"),
    ):
        assert f'<th scope="row">{label}</th><td>{text}</td>' in html
    assert "&lt;img src=x onerror=alert(1)&gt; 20.0 s (40)" in html  # the top task prefix, as text
    assert "<img" not in html
    # Dask's HTML report, where its backend found it, is named as text: no host serves it.
    assert '<th scope="row">Dask report</th>' not in html  # none found
    with_path = page(shown(record(), html="/home/alice/kbatch-k3x9q.report.html"))
    assert '<th scope="row">Dask report</th><td>/home/alice/kbatch-k3x9q.report.html</td>' in with_path
    assert 'href="/home/alice' not in with_path


def test_a_job_without_a_report_or_dependency_has_neither_section() -> None:
    html = page({**record(dask=None).to_dict(), "report": None})
    assert 'id="report"' not in html and 'id="dependency"' not in html


def test_the_dependency_links_each_job_with_its_state_and_a_gone_one_as_unknown() -> None:
    job = {**record("m7p2r", state=JobState.PENDING, dependency="afterok:k3x9q:zz9zz").to_dict(), "report": None}
    html = page(job, {"k3x9q": "SUCCEEDED", "zz9zz": None})
    assert "<code>--dependency afterok:k3x9q:zz9zz</code>: starts once every job below has ended SUCCEEDED" in html
    assert '<a href="/services/kbatch-dask/jobs/k3x9q"><code>k3x9q</code></a>' in html
    assert '<span class="state state-succeeded">SUCCEEDED</span>' in html
    assert '<a href="/services/kbatch-dask/jobs/zz9zz"><code>zz9zz</code></a>' in html
    assert '<span class="reason">no longer known</span>' in html
    # An admin looking at alice's job: the links stay on alice's jobs.
    assert '<a href="/services/kbatch-dask/jobs/k3x9q?user=alice">' in page(job, {}, user="root")


def test_a_singleton_names_the_job_name_it_waits_on_escaped() -> None:
    html = page({**record(dependency="singleton").to_dict(), "report": None})
    assert "<code>--dependency singleton</code>: starts once no earlier job of its user with its name is active" in html
    assert '(<span class="name">&lt;img src=x onerror=alert(1)&gt;</span>)' in html
    assert '<ul class="dependencies">' not in html


class Jobs:
    """A host's jobs: two known, any other missing (or someone else's)."""

    user = "alice"
    admin = False

    def __init__(self) -> None:
        self.known = {"k3x9q": record("k3x9q").to_dict(), "p4q5r": record("p4q5r", state=JobState.FAILED).to_dict()}
        self.asked: list[tuple[str, str | None]] = []

    def listing(self, *, everyone: bool, user: str | None) -> JobList:
        return JobList.of(list(self.known.values()))

    def job(self, job_id: str, user: str | None) -> dict[str, Any]:
        self.asked.append((job_id, user))
        if job_id not in self.known:
            raise JobNotFound(job_id)
        return self.known[job_id]

    def logs(self, job_id: str, user: str | None, *, follow: bool) -> Iterator[bytes]:
        return iter(())

    def cancel(self, job_id: str, user: str | None) -> dict[str, Any]:
        return self.known[job_id]


def test_the_page_asks_the_host_for_each_dependency_of_the_jobs_owner() -> None:
    jobs = Jobs()
    job = record("m7p2r", dependency="afternotok:k3x9q:p4q5r:zz9zz").to_dict()
    assert dependency_states(jobs, job, "alice") == {"k3x9q": "SUCCEEDED", "p4q5r": "FAILED", "zz9zz": None}
    assert jobs.asked == [("k3x9q", "alice"), ("p4q5r", "alice"), ("zz9zz", "alice")]
    assert dependency_states(jobs, record(dependency="singleton").to_dict(), None) == {}
