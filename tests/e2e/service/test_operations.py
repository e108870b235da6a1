"""The service's guarantees to an admin (SERVICE.md, "What the service
guarantees" and "Compatibility and operations"): a restart mid-job loses
nothing, an unreachable Kubernetes API is a 503 and one CLI line, concurrent
submissions are neither lost nor let past the limit, versions, metrics and
structured logs. See conftest.py for the servers."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

from kbatch_dask.versions import package_version, user_agent

from .conftest import Service, User, make_user, run

pytestmark = pytest.mark.gateway

MAX_RUNNING = 6
MAX_QUEUED = 2
# Seconds: the service's kbatch.kubernetes.api-*-timeout while the API is
# unreachable (short, so the test is; too short for a busy machine otherwise).
API_TIMEOUT = 2


@pytest.fixture(scope="module")
def service_settings() -> dict[str, str]:
    return {
        "DASK_KBATCH__SERVICE__LOG_FORMAT": "json",
        "DASK_KBATCH__SERVICE__LIMITS__MAX_RUNNING_JOBS": str(MAX_RUNNING),
        "DASK_KBATCH__SERVICE__LIMITS__MAX_QUEUED_JOBS": str(MAX_QUEUED),
    }


def request(
    method: str, url: str, token: str | None = None, body: Any = None, agent: str | None = None
) -> tuple[int, Any]:
    """One request with a long client timeout (the service's own timeouts are under test); (status, JSON or text)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {token}"
    if agent:
        headers["User-Agent"] = agent
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=120) as answer:
            status, raw = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def script_body(text: str = "print('hello')\n", **spec: str) -> dict[str, Any]:
    return {
        "spec": {"dask_workers": "0", "chdir": "/tmp", **spec},
        "script": {"name": "hello.py", "content": base64.b64encode(text.encode()).decode()},
    }


def log_lines(service: Service) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.log.read_text().splitlines() if line.strip()]


# Waits for the test's go-ahead (a file in its working directory) so that it is
# surely running while the test acts.
WAITER = """\
import os, time
print("started", flush=True)
while not os.path.exists("{go}"):
    time.sleep(0.1)
print("finished", flush=True)
"""


def submit_waiter(user: User, go: Path, *options: str) -> str:
    (user.home / "waiter.py").write_text(WAITER.format(go=go.name))
    proc = run(user, "--parsable", "--dask-workers", "0", *options, "waiter.py")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1]
    wait_for(lambda: "started" in run(user, "logs", job_id).stdout, timeout=60, what="the job to start")
    return job_id


def test_a_restart_mid_job_loses_nothing(service: Service, alice: User) -> None:
    go = alice.home / f"go-{secrets.token_hex(3)}"
    job_id = submit_waiter(alice, go)
    service.stop()
    service.start()  # with nothing of the job but what Kubernetes holds
    record = json.loads(run(alice, "show", "-o", "json", job_id).stdout)
    assert (record["state"], record["user"], record["script"]) == ("RUNNING", "alice", "waiter.py")
    assert "started" in run(alice, "logs", job_id).stdout
    go.touch()
    waited = run(alice, "wait", job_id, timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert run(alice, "logs", job_id).stdout.splitlines()[:2] == ["started", "finished"]
    assert job_id in [r["id"] for r in json.loads(run(alice, "queue", "--all", "-o", "json").stdout)]


@pytest.fixture
def short_api_timeouts(service: Service) -> Iterator[None]:
    """The service restarted with API timeouts of API_TIMEOUT seconds, for one test."""
    settings = {f"DASK_KBATCH__KUBERNETES__API_{kind}_TIMEOUT": str(API_TIMEOUT) for kind in ("CONNECT", "READ")}
    service.stop()
    service.env.update(settings)
    service.start()
    yield
    service.stop()
    for key in settings:
        del service.env[key]
    service.start()


@pytest.mark.usefixtures("short_api_timeouts")
def test_an_unreachable_kubernetes_api_is_503_and_one_cli_line(service: Service, alice: User) -> None:
    """Writes need the API: each is a 503 within the API timeouts and one CLI line. Reads
    are served from the watch cache, so they still answer what the service last saw."""
    (alice.home / "hello.py").write_text("print('hello')\n")
    service.server.black_hole(True, caller="client")  # the service's calls; running drivers are not affected
    try:
        status, answer = request("POST", service.api("/jobs"), alice.token, script_body())
        assert status == 503, (status, answer)
        assert set(answer) == {"error"} and "kbatch.kubernetes.api-read-timeout" in answer["error"], answer
        assert request("GET", service.api("/jobs"), alice.token)[0] == 200  # from memory
        assert request("GET", service.api("/jobs/zzzzz"), alice.token)[0] == 404
        proc = run(alice, "--dask-workers", "0", "hello.py")
        (line,) = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and line.startswith("Error: the kbatch-dask service answered 503:"), proc.stderr
        assert f"did not answer within {API_TIMEOUT} s" in line
    finally:
        service.server.black_hole(False)


def test_versions_are_told_and_incompatible_clients_told_what_to_install(service: Service, alice: User) -> None:
    status, root = request("GET", service.api("/"), alice.token, agent=user_agent())
    assert status == 200 and (root["version"], root["api"]) == (package_version(), ["v1"])
    major_minor = ".".join(package_version().split(".")[:2])
    install = f'pip install "kbatch-dask=={major_minor}.*"'
    for agent in ("kbatch-dask/0.0", "kbatch-dask/garbled", "kbatch-dask"):
        status, answer = request("GET", service.api("/jobs"), alice.token, agent=agent)
        assert status == 400 and install in answer["error"], (agent, answer)
    status, answer = request("GET", f"{service.url}api/v2/jobs", alice.token, agent="kbatch-dask/9.0")
    assert status == 400 and "speaks API v1" in answer["error"] and install in answer["error"], answer
    # A newer client's fields are refused by name, never dropped; other clients are served.
    newer = {**script_body(), "priority": 5}
    status, answer = request("POST", service.api("/jobs"), alice.token, newer, agent="kbatch-dask/9.0")
    assert status == 400 and "unknown field 'priority'" in answer["error"], answer
    assert request("GET", service.api("/jobs"), alice.token, agent="curl/8.5.0")[0] == 200
    # The CLI says who it is (a 404's access line is always written; a successful read's only at DEBUG).
    assert run(alice, "show", "nosuch").returncode != 0
    clients = {line.get("client") for line in log_lines(service) if line.get("user") == "alice"}
    assert user_agent() in clients, clients


def metric_samples(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(service.api("/metrics"), timeout=60) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        text = answer.read().decode()
    assert "alice" not in text  # no user data in labels
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_parse_and_a_refusal_increments_its_counter(service: Service, alice: User) -> None:
    refused = ("kbatch_dask_refusals_total", (("reason", "max-cpus"),))
    outcome = ("kbatch_dask_submissions_total", (("outcome", "refused"),))
    before = metric_samples(service)
    (alice.home / "hello.py").write_text("print('hello')\n")
    proc = run(alice, "--cpus", "8", "hello.py")
    assert proc.returncode == 2, proc.stderr
    after = metric_samples(service)
    assert after[refused] == before.get(refused, 0) + 1
    assert after[outcome] == before.get(outcome, 0) + 1
    assert after[("kbatch_dask_kubernetes_up", ())] == 1
    assert ("kbatch_dask_queue_length", ()) in after
    assert {labels for name, labels in after if name == "kbatch_dask_jobs"} >= {(("state", "SUCCEEDED"),)}
    posts = [
        value
        for (name, labels), value in after.items()
        if name == "kbatch_dask_request_duration_seconds_count" and ("handler", "JobsHandler") in labels
    ]
    assert sum(posts) >= 1


def test_logs_are_json_with_user_and_job_and_never_the_environment(service: Service, alice: User) -> None:
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    (alice.home / "env.py").write_text("print('ran')\n")
    proc = run(alice, "--parsable", "--dask-workers", "0", "--env", f"API_KEY={secret}", "env.py")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1]
    assert run(alice, "wait", job_id, timeout=120).returncode == 0
    run(alice, "cancel", job_id)  # a write (here of an ended job): its access line is always written
    lines = log_lines(service)  # every line is one JSON object, or this fails
    about_job = [line for line in lines if job_id in json.dumps(line)]
    assert any(line["message"] == f"submitted job {job_id}" for line in about_job), about_job
    assert any(line.get("path", "").endswith(f"/jobs/{job_id}") for line in about_job), about_job
    assert any(line.get("path", "").endswith(f"/jobs/{job_id}/events") for line in about_job), about_job
    for line in about_job:
        assert (line.get("user"), line.get("job")) == ("alice", job_id), line
    assert secret not in service.log.read_text()


def test_concurrent_submissions_of_five_users_are_each_accepted_or_refused_once(service: Service) -> None:
    homes = [service.workdir / f"home-batch{i}" for i in range(5)]
    for home in homes:
        home.mkdir()
    users = [make_user(service, f"batch{i}", home) for i, home in enumerate(homes)]
    nodes = list(service.kubelet.nodes)
    service.kubelet.nodes.clear()  # every pod stays Pending: jobs stay active, and nothing runs on 2 cores
    try:

        def submit(user: User) -> tuple[str, int, Any]:
            return (user.name, *request("POST", service.api("/jobs"), user.token, script_body(), agent=user_agent()))

        with ThreadPoolExecutor(50) as pool:
            answers = list(pool.map(submit, [user for user in users for _ in range(10)]))
        ids = [answer["id"] for _, status, answer in answers if status == 201]
        assert len(ids) == len(set(ids)), "ids are unique"
        for user in users:
            mine = [(status, answer) for name, status, answer in answers if name == user.name]
            accepted = {answer["id"] for status, answer in mine if status == 201}
            refused = [answer["error"] for status, answer in mine if status == 403]
            # MAX_RUNNING started, MAX_QUEUED waiting for quota, the rest refused.
            assert (len(accepted), len(refused)) == (MAX_RUNNING + MAX_QUEUED, 10 - MAX_RUNNING - MAX_QUEUED), mine
            assert all("max-queued-jobs" in message for message in refused), refused
            reasons = [answer["reason"] for status, answer in mine if status == 201]
            assert reasons.count("waiting for quota") == MAX_QUEUED, reasons
            status, listed = request("GET", service.api("/jobs"), user.token)
            assert status == 200 and {r["id"] for r in listed["jobs"]} == accepted  # exactly their own
            stored = service.objects("jobs")
            assert {
                j["metadata"]["labels"]["kbatch-dask.io/job-id"]
                for j in stored
                if j["metadata"]["labels"]["kbatch-dask.io/user"] == user.name
            } == accepted  # none lost, none extra
    finally:
        for user in users:
            for record in request("GET", service.api("/jobs"), user.token)[1]["jobs"]:
                request("DELETE", service.api(f"/jobs/{record['id']}"), user.token)
        # Nodes back once the cancelled Jobs are gone, or their 30 pods would start now.
        wait_for(lambda: not any(batch_jobs(service)), timeout=60, what="the cancelled Jobs to go")
        service.kubelet.nodes[:] = nodes


def batch_jobs(service: Service) -> list[dict[str, Any]]:
    return [j for j in service.objects("jobs") if j["metadata"]["labels"]["kbatch-dask.io/user"].startswith("batch")]
