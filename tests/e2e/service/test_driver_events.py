"""A service job's driver holds no Kubernetes credentials: it reports to the
service with the job's own credential, and its cluster uses a hub token the
service minted and revokes at the end (kbatch_dask/service/driver_events.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import wait_for
from fakes.kube.notebook import NAMESPACE
from fakes.kube.pod_setup import SERVICE_ACCOUNT_DIR

from e2e.hub.conftest import hub_gateway  # noqa: F401
from e2e.hub.servers import HubGateway, http

from .conftest import Service, User, run
from .test_service import show, submit

pytestmark = pytest.mark.gateway

# Runs on its cluster, then waits for the test to look at it while it runs.
HELD = """\
import os, time
import dask.bag as db
from dask.distributed import get_client

get_client().wait_for_workers(1, timeout=60)
print("total", db.range(100, npartitions=4).sum().compute(), flush=True)
while not os.path.exists("release-{name}"):
    time.sleep(0.2)
"""
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"
TOKEN_ANNOTATION = "kbatch-dask.io/hub-token-id"


def job_of(service: Service, job_id: str) -> dict[str, Any]:
    (job,) = service.server.objects("jobs", label_selector=f"kbatch-dask.io/job-id={job_id}")
    return job


def secret_env(service: Service, job_id: str) -> dict[str, str]:
    name = job_of(service, job_id)["metadata"]["name"]
    (secret,) = [s for s in service.objects("secrets") if s["metadata"]["name"] == name]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def events(service: Service, job_id: str, authorization: str | None, body: Any) -> int:
    """POST an event as a driver would, with ``authorization`` as the whole header value."""
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    request = urllib.request.Request(
        service.api(f"/jobs/{job_id}/events"), json.dumps(body).encode(), headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@dataclass
class Finished:
    job_id: str
    credential: str
    token: str  # the service-minted hub token of its cluster
    token_id: str
    pod: str
    accepted_while_running: bool
    session_token: str


@pytest.fixture(scope="module")
def finished(service: Service, alice: User, hub_gateway: HubGateway) -> Iterator[Finished]:  # noqa: F811
    job_id = submit(alice, "held.py", HELD.format(name="held"), "--dask-workers", "1", "-t", "10:00")
    wait_for(lambda: "total 4950" in run(alice, "logs", job_id).stdout, timeout=120, what="the job's cluster to work")
    env = secret_env(service, job_id)
    token_id = job_of(service, job_id)["metadata"]["annotations"][TOKEN_ANNOTATION]
    accepted = hub_gateway.accepts(env["JUPYTERHUB_API_TOKEN"])
    (pod,) = service.kubelet.pods_of(job_of(service, job_id)["metadata"]["name"], NAMESPACE)
    (alice.home / "release-held").write_text("")
    proc = run(alice, "wait", job_id, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    yield Finished(
        job_id, env["KBATCH_DASK_JOB_CREDENTIAL"], env["JUPYTERHUB_API_TOKEN"], token_id, pod, accepted, alice.token
    )


def test_the_job_pod_has_no_service_account_token_and_still_records_its_progress(
    service: Service, alice: User, finished: Finished
) -> None:
    job = job_of(service, finished.job_id)
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    root = service.kubelet.pod_root(finished.pod, NAMESPACE)
    assert not (root / SERVICE_ACCOUNT_DIR.lstrip("/")).exists()  # the fake mounts one only with automount on
    record = show(alice, finished.job_id)
    assert record["state"] == "SUCCEEDED" and record["exit_code"] == 0
    assert record["started"] and record["finished"]
    assert record["dask"]["cluster"] and record["dask"]["dashboard"]
    annotations = job["metadata"]["annotations"]
    assert annotations["kbatch-dask.io/state"] == "SUCCEEDED"  # from the driver's finished event


def test_the_cluster_used_a_service_minted_token_revoked_at_the_end(
    service: Service, alice: User, finished: Finished
) -> None:
    assert finished.token != finished.session_token
    assert finished.accepted_while_running  # the gateway took it while the job ran
    assert not service.hub.token_works(finished.token)  # revoked, not merely expired
    assert finished.token_id not in [t["id"] for t in service.hub.tokens("alice")]
    assert TOKEN_ANNOTATION not in job_of(service, finished.job_id)["metadata"]["annotations"]


def test_the_credential_is_in_no_plain_field_listing_or_log(service: Service, alice: User, finished: Finished) -> None:
    plain = json.dumps([service.objects("jobs"), service.objects("configmaps"), service.objects("pods")])
    shown = run(alice, "show", "-o", "json", finished.job_id).stdout + run(alice, "queue", "-o", "json").stdout
    logs = run(alice, "logs", finished.job_id).stdout
    log = service.log.read_text(errors="replace")
    for secret in (finished.credential, finished.token):
        assert secret not in plain and secret not in shown and secret not in logs and secret not in log


def test_events_need_the_jobs_own_credential_and_change_nothing_otherwise(
    service: Service, alice: User, finished: Finished
) -> None:
    job_id = submit(alice, "sleeper.py", SLEEPER, "--dask-workers", "0")
    wait_for(lambda: "sleeping" in run(alice, "logs", job_id).stdout, timeout=60, what="the job to run")
    credential = secret_env(service, job_id)["KBATCH_DASK_JOB_CREDENTIAL"]
    before = job_of(service, job_id)["metadata"]["annotations"]
    event = {"event": "cluster", "name": "forged", "dashboard": None, "worker_limit": None}
    for authorization in (
        None,
        "Bearer ",
        "Bearer wrong",
        f"Bearer {finished.credential}",  # another job's
        f"token {credential}",  # the right value in another scheme
        f"token {alice.token}",  # the owner's hub token
        f"Bearer {alice.token}",
    ):
        assert events(service, job_id, authorization, event) == 401, authorization
    assert events(service, "no-such-job", f"Bearer {credential}", event) == 401
    status, _ = http("GET", service.api(f"/jobs/{job_id}/pod-status"), alice.token)
    assert status == 401
    assert job_of(service, job_id)["metadata"]["annotations"] == before
    # Its own credential: applied, and the driver may ask about its Job.
    assert events(service, job_id, f"Bearer {credential}", {"event": "owned", "clusters": ["c1"]}) == 204
    assert job_of(service, job_id)["metadata"]["annotations"]["kbatch-dask.io/owned-clusters"] == "c1"
    status, answer = http("GET", service.api(f"/jobs/{job_id}/pod-status"), credential, scheme="Bearer")
    assert (status, answer) == (200, {"cancel_requested": False, "disrupted": None})
    assert events(service, job_id, f"Bearer {credential}", {"event": "started", "extra": 1}) == 400
    run(alice, "cancel", job_id)


def test_events_for_an_ended_job_are_ignored(service: Service, finished: Finished) -> None:
    before = job_of(service, finished.job_id)["metadata"]["annotations"]
    body = {"event": "finished", "state": "FAILED", "exit_code": 3, "reason": "late"}
    assert events(service, finished.job_id, f"Bearer {finished.credential}", body) == 204
    assert job_of(service, finished.job_id)["metadata"]["annotations"] == before
    assert before["kbatch-dask.io/state"] == "SUCCEEDED"
