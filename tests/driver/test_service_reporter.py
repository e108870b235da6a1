"""The driver's reporter for service jobs, against a small HTTP server that
answers as the service does (kbatch_dask/driver/service.py)."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kbatch_dask import settings
from kbatch_dask.backends.hub.protocol import MAX_LOG_BYTES_VAR
from kbatch_dask.driver.service import ServiceReporter
from kbatch_dask.driver.uploads import KeptTail, Uploads
from kbatch_dask.records import JobState

CREDENTIAL = "the-job-credential"


@dataclass
class FakeService:
    """Records what it is sent; answers ``statuses`` in turn (then 204), and
    ``pod_status`` to GET .../pod-status."""

    url: str = ""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # PUT: the bytes uploaded
    statuses: list[int] = field(default_factory=list)
    pod_status: dict[str, Any] = field(default_factory=lambda: {"cancel_requested": False, "disrupted": None})


@pytest.fixture
def fake() -> Iterator[FakeService]:
    state = FakeService()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict[str, Any] | None) -> None:
            if self.headers.get("Authorization") != f"Bearer {CREDENTIAL}":
                status = 401
            else:
                status = state.statuses.pop(0) if state.statuses else (200 if self.command == "GET" else 204)
            state.requests.append((self.command, self.path, body))
            data = json.dumps(state.pod_status).encode() if status == 200 else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self._answer(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))

        def do_GET(self) -> None:
            self._answer(None)

        def do_PUT(self) -> None:
            self._answer(self.rfile.read(int(self.headers["Content-Length"])))

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/services/kbatch-dask"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def reporter(url: str, said: list[str], credential: str = CREDENTIAL) -> ServiceReporter:
    return ServiceReporter(url, "j1", credential, said.append, pod_name="kbatch-alice-j1-abc", sleep=lambda s: None)


def test_each_report_is_one_event_with_the_jobs_credential(fake: FakeService) -> None:
    said: list[str] = []
    r = reporter(fake.url, said)
    r.started()
    r.cluster("c1", "http://dash", 2)
    r.owned(("a", "b"))
    r.finished(JobState.FAILED, 3, "exit code 3")
    path = "/services/kbatch-dask/api/v1/jobs/j1/events"
    assert fake.requests == [
        ("POST", path, {"event": "started"}),
        ("POST", path, {"event": "cluster", "name": "c1", "dashboard": "http://dash", "worker_limit": 2}),
        ("POST", path, {"event": "owned", "clusters": ["a", "b"]}),
        ("POST", path, {"event": "finished", "state": "FAILED", "exit_code": 3, "reason": "exit code 3"}),
    ]
    assert said == []


def test_the_driver_asks_the_service_about_cancels_and_disruptions(fake: FakeService) -> None:
    r = reporter(fake.url, [])
    assert (r.cancel_requested(), r.disrupted()) == (False, None)
    fake.pod_status = {"cancel_requested": True, "disrupted": "EvictionByEvictionAPI"}
    assert (r.cancel_requested(), r.disrupted()) == (True, "EvictionByEvictionAPI")
    assert fake.requests[0][:2] == ("GET", "/services/kbatch-dask/api/v1/jobs/j1/pod-status?pod=kbatch-alice-j1-abc")


def test_a_job_the_service_no_longer_has_counts_as_cancelled(fake: FakeService) -> None:
    # The service answers 401 alike for a Job deleted (a cancel that did not wait) and a wrong credential.
    assert reporter(fake.url, [], credential="not-any-more").cancel_requested() is True


def test_the_end_is_retried_while_the_service_restarts(fake: FakeService) -> None:
    fake.statuses = [503, 502]
    said: list[str] = []
    reporter(fake.url, said).finished(JobState.SUCCEEDED, 0, None)
    assert len([r for r in fake.requests if r[0] == "POST"]) == 3
    assert said == []


def test_an_unreachable_service_is_said_once_and_the_job_runs_on(fake: FakeService) -> None:
    said: list[str] = []
    r = ServiceReporter("http://127.0.0.1:9/", "j1", CREDENTIAL, said.append, sleep=lambda s: None, finish_for=0)
    r.started()
    r.cluster("c1", None, None)
    assert r.cancel_requested() is False and r.disrupted() is None
    r.finished(JobState.SUCCEEDED, 0, None)
    assert len(said) == 2  # one for the progress, one for the end
    assert "cannot report the job's progress" in said[0] and "cannot report the job's end (SUCCEEDED)" in said[1]
    assert CREDENTIAL not in " ".join(said)


JOB = "/services/kbatch-dask/api/v1/jobs/j1/"


def uploads(tmp_path: Any, output: bytes | None = b"out\n", error: bytes | None = None, **limits: int) -> Uploads:
    paths = {}
    for name, data in (("output", output), ("error", error), ("result", b"pickled")):
        if data is not None:
            (tmp_path / name).write_bytes(data)
            paths[name] = str(tmp_path / name)
    return Uploads(
        paths.get("output"),
        paths.get("error"),
        paths["result"],
        limits.get("max_log_bytes", 1000),
        limits.get("max_result_bytes", 1000),
    )


def uploading(fake: FakeService, said: list[str], files: Uploads) -> ServiceReporter:
    return ServiceReporter(fake.url, "j1", CREDENTIAL, said.append, sleep=lambda s: None, uploads=files)


def test_the_result_error_file_and_output_are_uploaded_before_the_end(fake: FakeService, tmp_path: Any) -> None:
    said: list[str] = []
    uploading(fake, said, uploads(tmp_path, error=b"err\n")).finished(JobState.SUCCEEDED, 0, None)
    assert [r[:3] for r in fake.requests[:3]] == [
        ("PUT", JOB + "result", b"pickled"),
        ("PUT", JOB + "logs?stream=error", b"err\n"),
        ("PUT", JOB + "logs?stream=output", b"out\n"),
    ]
    assert fake.requests[3][:2] == ("POST", JOB + "events") and fake.requests[3][2]["event"] == "finished"
    assert said == []


def test_the_report_summary_is_uploaded_after_the_logs_and_before_the_end(fake: FakeService, tmp_path: Any) -> None:
    (tmp_path / "kbatch-j1.report.json").write_bytes(b'{"job": "j1"}\n')
    files = dataclasses.replace(uploads(tmp_path), report=str(tmp_path / "kbatch-j1.report.json"))
    uploading(fake, [], files).finished(JobState.SUCCEEDED, 0, None)
    assert [r[1].removeprefix(JOB) for r in fake.requests] == ["result", "logs?stream=output", "report", "events"]
    assert fake.requests[2][2] == b'{"job": "j1"}\n'


def test_a_job_without_a_report_uploads_none(fake: FakeService, tmp_path: Any) -> None:
    files = dataclasses.replace(uploads(tmp_path), report=str(tmp_path / "never-written.report.json"))
    uploading(fake, [], files).finished(JobState.FAILED, 1, None)
    assert "report" not in [r[1].removeprefix(JOB) for r in fake.requests]


def test_a_long_output_is_uploaded_as_its_tail_under_a_line_saying_what_was_cut(
    fake: FakeService, tmp_path: Any
) -> None:
    lines = b"".join(b"line %04d\n" % i for i in range(1000))  # 10 bytes each
    uploading(fake, [], uploads(tmp_path, output=lines, max_log_bytes=500)).finished(JobState.SUCCEEDED, 0, None)
    (data,) = [r[2] for r in fake.requests if r[1].endswith("stream=output")]
    first, *rest = data.decode().splitlines()
    assert len(data) <= 500 and rest[-1] == "line 0999" and rest[0].startswith("line ")
    kept = len(data) - len(first) - 1
    assert first == f"kbatch: the first {len(lines) - kept} bytes were cut (kbatch.service.archive.max-log-bytes 500)"


def test_failed_uploads_are_retried_a_few_times_each_said_and_the_end_still_reported(
    fake: FakeService, tmp_path: Any
) -> None:
    fake.statuses = [503, 503, 503, 413]  # the result three times, then the output once: a 413 is not retried
    said: list[str] = []
    uploading(fake, said, uploads(tmp_path)).finished(JobState.FAILED, 1, "exit code 1")
    assert [r[1].removeprefix(JOB) for r in fake.requests] == ["result"] * 3 + ["logs?stream=output", "events"]
    assert fake.requests[-1][2]["state"] == "FAILED"
    assert len(said) == 4  # two retries, each upload's failure
    assert "retrying" in said[0] and "retrying" in said[1]
    assert "result was not uploaded" in said[2] and "output file was not uploaded" in said[3] and "413" in said[3]
    # The output says that the result is missing.
    assert (
        fake.requests[3][2]
        == b"out\nkbatch: the job's result was not uploaded to the service (the driver's log says why)\n"
    )


def test_a_result_over_the_services_limit_is_not_sent_and_the_job_log_says_so(fake: FakeService, tmp_path: Any) -> None:
    said: list[str] = []
    uploading(fake, said, uploads(tmp_path, error=b"err\n", max_result_bytes=3)).finished(JobState.SUCCEEDED, 0, None)
    assert [r[1].removeprefix(JOB) for r in fake.requests] == ["logs?stream=error", "logs?stream=output", "events"]
    (note,) = said
    assert "kbatch.service.archive.max-result-bytes" in note and fake.requests[0][2] == b"err\n" + note.encode() + b"\n"


def test_uploads_to_a_service_that_does_not_answer_are_bounded(tmp_path: Any) -> None:
    said: list[str] = []
    r = ServiceReporter(
        "http://127.0.0.1:9/",
        "j1",
        CREDENTIAL,
        said.append,
        sleep=lambda s: None,
        finish_for=0,
        uploads=uploads(tmp_path),
    )
    r.finished(JobState.SUCCEEDED, 0, None)
    assert len([s for s in said if "not uploaded" in s]) == 2  # the result and the output, each given up
    assert "cannot report the job's end" in said[-1]


def test_without_an_output_file_the_tail_of_the_pod_log_is_the_output_uploaded(
    fake: FakeService, tmp_path: Any
) -> None:
    pod_log = io.BytesIO()
    kept = KeptTail(pod_log, 300)
    for i in range(100):
        kept.write(b"line %04d\n" % i)
    files = Uploads.of(None, None, None, {MAX_LOG_BYTES_VAR: "300"}, settings.load().service.archive, kept)
    uploading(fake, [], files).finished(JobState.SUCCEEDED, 0, None)
    assert pod_log.getvalue().endswith(b"line 0099\n")  # the pod's log has it all
    ((path, data),) = [r[1:] for r in fake.requests if r[0] == "PUT"]
    assert path == JOB + "logs?stream=output" and len(data) <= 300
    first, *rest = data.decode().splitlines()
    assert len(rest) > 20 and rest == [f"line {i:04d}" for i in range(100 - len(rest), 100)]
    assert (
        first == f"kbatch: the first {10 * (100 - len(rest))} bytes were cut (kbatch.service.archive.max-log-bytes 300)"
    )
