"""Job, the handle on a submitted job: its notebook display, its output as text and as bytes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import cast

from kbatch_dask.backends import Backend
from kbatch_dask.job import Job
from kbatch_dask.records import DaskInfo, JobRecord, JobState, now


class RecordsBackend:
    """A backend that answers ``get`` with the records it is given, one per call (the last one after)."""

    name = "local"

    def __init__(self, *records: JobRecord) -> None:
        self.records = list(records)
        self.gets = 0

    def get(self, job_id: str) -> JobRecord:
        self.gets += 1
        return self.records.pop(0) if len(self.records) > 1 else self.records[0]


def record(state: JobState, **changes: object) -> JobRecord:
    started = now() - timedelta(seconds=75)
    base = JobRecord("ab12c", "train", "alice", "local", state, started, "train.py", started=started)
    return base.replace(**changes)


def test_display_escapes_every_field_the_user_or_the_job_wrote() -> None:
    hostile = record(
        JobState.RUNNING,
        name="<script>alert(1)</script>",
        reason='waiting & "<b>boom</b>"',
        output="/home/a/<out>.txt",
        dask=DaskInfo("2", cluster="c1", dashboard='http://h/status" onclick="alert(2)'),
    )
    shown = Job(hostile, cast(Backend, RecordsBackend(hostile)))._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "&lt;b&gt;boom&lt;/b&gt;" in shown and "&amp;" in shown
    assert "/home/a/&lt;out&gt;.txt" in shown
    assert '" onclick="' not in shown and 'href="http://h/status&quot; onclick=&quot;alert(2)"' in shown


def test_display_of_a_running_job_is_fetched_afresh_and_holds_its_fields() -> None:
    pending = record(JobState.PENDING, started=None)
    running = record(
        JobState.RUNNING,
        output="/home/a/train-ab12c.out",
        dask=DaskInfo("2:10", cluster="c1", live_workers=3, dashboard="http://h/clusters/c1/status"),
    )
    backend = RecordsBackend(running)
    shown = Job(pending, cast(Backend, backend))._repr_html_()
    assert backend.gets == 1
    for field in ("ab12c", "train", "RUNNING", "3/2-10", "1:1", "/home/a/train-ab12c.out"):
        assert field in shown, field
    assert '<a href="http://h/clusters/c1/status" target="_blank">' in shown


def test_display_of_an_ended_job_asks_nothing_and_shows_why_it_ended() -> None:
    ended = record(JobState.TIMEOUT, reason="time limit 0:10 reached", finished=now(), dask=DaskInfo("2"))
    backend = RecordsBackend(ended)
    shown = Job(ended, cast(Backend, backend))._repr_html_()
    assert backend.gets == 0
    assert "TIMEOUT" in shown and "time limit 0:10 reached" in shown
    assert "-/2" in shown  # an ended job has no live workers


class LogsBackend:
    """A backend whose job wrote ``café``, its ``é`` cut between two chunks, then a byte that is not UTF-8."""

    CHUNKS = (b"caf\xc3", b"\xa9 \xff\n")

    def logs(
        self, job_id: str, follow: bool = False, stream: str = "output", tail: int | None = None
    ) -> Iterator[bytes]:
        return iter(self.CHUNKS)


def test_logs_are_text_for_python_and_bytes_as_written_for_log_bytes() -> None:
    job = Job(record(JobState.SUCCEEDED), cast(Backend, LogsBackend()))
    assert job.logs() == "café \ufffd\n"
    assert "".join(job.log_chunks()) == "café \ufffd\n"
    assert b"".join(job.log_bytes()) == b"caf\xc3\xa9 \xff\n"
