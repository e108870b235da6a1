"""The gateway's plain-HTTP transport over a socket (``direct_http``) answers as it
did through urllib: JSON bodies however they are framed, refusals with the
gateway's own error, a redirect followed, an unreachable address one error. And
the queue asks the gateway once (its cluster list, no health check first)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kbatch_dask.errors import GatewayError, GatewayUnreachable
from kbatch_dask.gateway import GatewaySettings
from kbatch_dask.gateway.client import health
from kbatch_dask.gateway.dashboards import live_workers
from kbatch_dask.gateway.transports import HttpTransport, auth_headers
from kbatch_dask.listing import with_clusters
from kbatch_dask.records import DaskInfo, JobRecord, JobState, now

CLUSTERS = {"abc": {"status": "RUNNING", "dashboard_route": "/clusters/abc/status"}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict[str, str]] = []  # noqa: RUF012  (the requests' headers, for the tests to read)

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes, chunked: bool = False, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[:3], body[3:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_GET(self) -> None:
        Handler.seen.append({**self.headers, "path": self.path})
        if self.path.startswith("/api/v1/clusters/"):
            self._send(200, json.dumps(CLUSTERS).encode())
        elif self.path == "/chunked":
            self._send(200, json.dumps(CLUSTERS).encode(), chunked=True)
        elif self.path == "/moved":
            self._send(307, b"", Location="/api/v1/clusters/")
        elif self.path == "/api/health":
            self._send(200, b'{"status": "pass"}')
        elif self.path == "/clusters/abc/json/counts.json":
            self._send(200, b'{"workers": 3}')
        else:
            self._send(404, b'{"error": "no such cluster"}')

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._send(200, json.dumps({"got": json.loads(body)}).encode())


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.seen.clear()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def transport(address: str) -> HttpTransport:
    settings = GatewaySettings(address, None, address, "basic", {"username": "me", "password": "pw"})
    headers = auth_headers(settings)
    assert headers is not None
    return HttpTransport(settings, headers)


def test_json_answers_framed_by_length_or_in_chunks_and_the_auth_header_sent(server: str) -> None:
    t = transport(server)
    assert t.request("GET", "/api/v1/clusters/?status=RUNNING") == CLUSTERS
    assert t.request("GET", "/chunked") == CLUSTERS
    assert t.request("POST", "/api/v1/clusters/", {"cluster_options": {}}) == {"got": {"cluster_options": {}}}
    assert Handler.seen[0]["Authorization"] == "Basic bWU6cHc="


def test_a_refusal_carries_the_gateways_error_and_status(server: str) -> None:
    with pytest.raises(GatewayError) as caught:
        transport(server).request("GET", "/api/v1/nothing")
    assert caught.value.status == 404 and "no such cluster" in str(caught.value)
    assert not isinstance(caught.value, GatewayUnreachable)  # the gateway itself answered


def test_a_redirect_is_followed(server: str) -> None:
    assert transport(server).request("GET", "/moved") == CLUSTERS


def test_an_address_nothing_listens_on_is_unreachable(server: str) -> None:
    from kbatch_dask.backends.local.embedded_gateway import free_ports

    (port,) = free_ports(1)
    with pytest.raises(GatewayUnreachable, match="unreachable"):
        transport(f"http://127.0.0.1:{port}").request("GET", "/api/v1/clusters/")
    assert health(f"http://127.0.0.1:{port}", timeout=2) is not None


def test_health_and_live_worker_counts(server: str) -> None:
    assert health(server, timeout=2) is None
    dashboard = f"{server}/clusters/abc/status"
    missing = f"{server}/clusters/gone/status"
    assert live_workers([dashboard, missing]) == {dashboard: 3, missing: None}


class OneGatewayBackend:
    """A backend whose gateway is the test's server, as the local backend gives an
    embedded gateway that is recorded as running (``probe`` False: not asked first)."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.probed: list[bool] = []

    def gateway(self, *, start: bool = False, probe: bool = True) -> GatewaySettings | None:
        self.probed.append(probe)
        if self.address is None:
            return None
        return GatewaySettings(self.address, None, self.address, "basic", {"username": "me", "password": "pw"})


def running_job(cluster: str) -> JobRecord:
    return JobRecord("k3x9q", "t", "me", "local", JobState.RUNNING, now(), "t.py", dask=DaskInfo("2", cluster=cluster))


def test_the_queue_asks_the_gateway_once_for_its_clusters(server: str) -> None:
    backend = OneGatewayBackend(server)
    (joined,) = with_clusters(backend, [running_job("abc")], live_timeout=1)  # type: ignore[arg-type]
    assert backend.probed == [False]
    assert [seen["path"] for seen in Handler.seen] == [
        "/api/v1/clusters/?status=PENDING,RUNNING,STOPPING,STOPPED,FAILED",
        "/clusters/abc/json/counts.json",  # the live count, from the dashboard
    ]
    assert joined.dask is not None and joined.dask.live_workers == 3


def test_the_queue_of_a_gateway_that_refuses_shows_unknown_cluster_states(server: str) -> None:
    from kbatch_dask.backends.local.embedded_gateway import free_ports

    (port,) = free_ports(1)
    job = running_job("abc")
    for backend in (OneGatewayBackend(f"http://127.0.0.1:{port}"), OneGatewayBackend(None)):
        assert with_clusters(backend, [job], live_timeout=1) == [job]  # type: ignore[arg-type]
