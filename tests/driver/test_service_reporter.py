"""The driver's reporter for service jobs, against a small HTTP server that
answers as the service does (kbatch_dask/driver/service.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from kbatch_dask.driver.service import ServiceReporter
from kbatch_dask.records import JobState

CREDENTIAL = "the-job-credential"


@dataclass
class FakeService:
    """Records what it is sent; answers ``statuses`` in turn (then 204), and
    ``pod_status`` to GET .../pod-status."""

    url: str = ""
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
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
