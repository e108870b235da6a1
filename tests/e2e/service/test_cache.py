"""The service's watch cache end to end (the real hub, the service as its own
process, the fake API server): queue and show cost no Kubernetes API request,
what changes behind the service's back shows, a 410 Gone and dropped watches
are recovered from, and a submit is seen by the next show at once."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import wait_for
from fakes.kube.fake_apiserver import DEFAULT_USER, RecordedRequest
from fakes.kube.notebook import NAMESPACE
from fakes.kube.resources import JOB
from fakes.kube.seeding import seeded_job

from e2e.hub.servers import http
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests

from .conftest import Service, User

pytestmark = pytest.mark.gateway
SERVICE_IDENTITY = DEFAULT_USER.replace("{namespace}", NAMESPACE)  # the service's kubeconfig token


def kbatch_job(user: str, job_id: str) -> dict[str, Any]:
    annotations = {names.ANN_NAME: f"made-{job_id}", names.ANN_USER: user, names.ANN_SCRIPT: "x.py"}
    name = manifests.job_name(user, job_id)
    return seeded_job(NAMESPACE, name, manifests.job_labels(user, job_id), annotations, "Complete", "python:3.11")


def ids(service: Service, user: User) -> list[str]:
    status, answer = user.http("GET", service.api("/jobs"))
    assert status == 200, answer
    return [job["id"] for job in answer["jobs"]]


def shows(service: Service, user: User, job_id: str) -> Callable[[], bool]:
    return lambda: job_id in ids(service, user)


def service_requests(service: Service) -> list[RecordedRequest]:
    """The service's own Kubernetes API requests but its watches."""
    return [
        r
        for r in service.server.requests(from_pods=False)
        if r.user == SERVICE_IDENTITY and r.query.get("watch") != "true"
    ]


def health(service: Service) -> dict[str, Any]:
    status, answer = http("GET", service.api("/health"))  # no token: /health is public
    assert status == 200, answer
    return dict(answer["watches"])


def lists(service: Service) -> dict[str, int]:
    """How many full lists each watch has made, whether or not it is up now."""
    answer = http("GET", service.api("/health"))[1]
    return {kind: watch["lists"] for kind, watch in answer["watches"].items()}


def drop_watches_and_wait(service: Service) -> None:
    """Cut both watches and wait until each has listed again and /health is 200.

    A /health read right after the cut may still be the old 200: the reflectors
    notice the cut a moment later, then list again after a backoff."""
    before = lists(service)
    service.server.drop_watches()
    wait_for(relisted_since(service, before), what="both watches listed again and up")


def relisted_since(service: Service, before: dict[str, int]) -> Callable[[], bool]:
    def both_relisted_and_up() -> bool:
        status, answer = http("GET", service.api("/health"))
        relisted = all(watch["lists"] > before[kind] for kind, watch in answer["watches"].items())
        return status == 200 and relisted

    return both_relisted_and_up


@pytest.fixture
def short_watches(service: Service) -> Iterator[None]:
    """Watches that the API server ends every second, so the service resumes often."""
    service.server.max_watch_seconds = 1
    drop_watches_and_wait(service)  # the open ones were asked for a minute
    yield
    service.server.max_watch_seconds = 1800


def test_queue_and_show_make_no_kubernetes_api_request(service: Service, alice: User) -> None:
    service.server.create("jobs", NAMESPACE, kbatch_job("alice", "q1"))
    wait_for(shows(service, alice, "q1"), what="the job in alice's queue")
    service.server.clear_requests()
    for _ in range(10):
        assert "q1" in ids(service, alice)
        assert alice.http("GET", service.api("/jobs/q1"))[0] == 200
        assert alice.http("GET", service.api("/"))[0] == 200  # the running-jobs count
    assert service_requests(service) == []


def test_a_job_made_or_deleted_behind_the_services_back_appears_and_is_remembered(
    service: Service, alice: User
) -> None:
    # Suspended: no pod runs its driver (which, without the job's files, would fail it
    # at once), so it has not ended by itself when it is deleted.
    job = kbatch_job("alice", "behind")
    job["spec"]["suspend"] = True
    service.server.create("jobs", NAMESPACE, job)
    wait_for(shows(service, alice, "behind"), what="the job made behind the service's back")
    service.server.store.delete(JOB, NAMESPACE, manifests.job_name("alice", "behind"))

    def cancelled() -> bool:
        status, job = alice.http("GET", service.api("/jobs/behind"))
        return status == 200 and job["state"] == "CANCELLED"

    # Its record stays in the database: deleted before it ended, it ended CANCELLED.
    wait_for(cancelled, what="the deleted job to be recorded CANCELLED")
    assert "behind" in ids(service, alice)
    reason = alice.http("GET", service.api("/jobs/behind"))[1]["reason"]
    assert reason == "its Kubernetes Job was deleted before it ended"


def test_a_410_gone_makes_the_service_list_again_and_its_queue_stays_right(
    service: Service, alice: User, short_watches: None
) -> None:
    lists = health(service)["jobs"]["lists"]
    service.server.store.insert(JOB, kbatch_job("alice", "unheard"))  # no watch event: only a list shows it
    service.server.compact()  # the next resume is from before the history: 410
    wait_for(shows(service, alice, "unheard"), what="the relist after the 410")
    assert health(service)["jobs"]["lists"] > lists
    assert alice.http("GET", service.api("/jobs/unheard"))[0] == 200


def test_dropped_watches_are_resumed(service: Service, alice: User) -> None:
    before = lists(service)
    service.server.drop_watches()
    service.server.create("jobs", NAMESPACE, kbatch_job("alice", "after-drop"))
    wait_for(shows(service, alice, "after-drop"), what="a job made after the watches were cut")
    # The pods' watch was cut too: up again once its own relist is done.
    wait_for(relisted_since(service, before), what="both watches listed again and up")


def test_a_submitted_job_is_shown_at_once(service: Service, alice: User) -> None:
    script = {"name": "hello.py", "content": base64.b64encode(b"print('hello')\n").decode()}
    status, record = alice.http(
        "POST", service.api("/jobs"), {"spec": {"dask_workers": "0", "chdir": "/tmp"}, "script": script}
    )
    assert status == 201, record
    status, shown = alice.http("GET", service.api(f"/jobs/{record['id']}"))  # no wait: the write is in the cache
    assert status == 200 and shown["id"] == record["id"], shown
    assert record["id"] in ids(service, alice)
    status, cancelled = alice.http("DELETE", service.api(f"/jobs/{record['id']}"))
    assert status == 200 and cancelled["state"] == "CANCELLED", cancelled
    status, shown = alice.http("GET", service.api(f"/jobs/{record['id']}"))
    assert status == 404 or shown["state"] == "CANCELLED", shown
