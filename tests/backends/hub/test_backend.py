"""The ``hub`` backend against a stand-in for the service's HTTP API: the dry
run's submit body, sent with ``?dry-run=1``, and the answer printed as the
direct backend prints its manifests (tests/e2e/service/test_dry_run.py runs it
through the real service); a job's logs, the bytes the service sent."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import pytest
import yaml

from kbatch_dask import settings
from kbatch_dask.backends.hub.backend import HubBackend
from kbatch_dask.errors import JobNotFound
from kbatch_dask.spec import JobSpec

PLAN = {
    "objects": [{"kind": "Job", "metadata": {"name": "kbatch-me-abcde"}}, {"kind": "Secret", "data": {"K": "x"}}],
    "notes": ["kbatch --dry-run: the objects the kbatch-dask service would create", "second line"],
}
LOG = b"caf\xe9 \xff\n" + "ok ✓\n".encode() + b"last \xe2\x9c"  # not UTF-8, and a character cut at the end


@pytest.fixture
def service() -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    """A service answering every POST with :data:`PLAN` and job abcde's logs with :data:`LOG`;
    the requests (path, body) it got."""
    received: list[tuple[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            data = json.dumps(PLAN).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            received.append((self.path, None))
            found = self.path.startswith("/services/kbatch-dask/api/v1/jobs/abcde/logs")
            data = LOG if found else json.dumps({"error": "no job"}).encode()
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for part in (data[:4], data[4:]):  # a character cut between two writes
                self.wfile.write(part)
                self.wfile.flush()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/services/kbatch-dask/", received
    server.shutdown()
    server.server_close()


def test_a_dry_run_posts_the_submit_body_with_dry_run_and_prints_the_answer(
    service: tuple[str, list[tuple[str, Any]]], tmp_path: Path
) -> None:
    url, received = service
    script = tmp_path / "train.py"
    script.write_text("print('train')\n")
    with dask.config.set({"kbatch.service.url": url, "kbatch.service.token": "t"}):
        backend = HubBackend(settings.load())
    spec = JobSpec(str(script), "train", "me", str(tmp_path), "~/o-%j.out")
    out = backend.dry_run(spec, {"K": "V"})
    ((path, body),) = received
    assert path == "/services/kbatch-dask/api/v1/jobs?dry-run=1"
    assert body == backend._body(spec, {"K": "V"})  # exactly what a submit sends
    assert out.startswith("# kbatch --dry-run: the objects the kbatch-dask service would create\n# second line\n")
    assert list(yaml.safe_load_all(out)) == PLAN["objects"]


def test_logs_are_the_bytes_the_service_sent_and_an_unknown_job_is_refused_at_the_call(
    service: tuple[str, list[tuple[str, Any]]],
) -> None:
    url, received = service
    with dask.config.set({"kbatch.service.url": url, "kbatch.service.token": "t"}):
        backend = HubBackend(settings.load())
    assert b"".join(backend.logs("abcde", tail=2)) == LOG
    assert received[-1][0] == "/services/kbatch-dask/api/v1/jobs/abcde/logs?stream=output&tail=2"
    with pytest.raises(JobNotFound):
        backend.logs("zzzzz")
