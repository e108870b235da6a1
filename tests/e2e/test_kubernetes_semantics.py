"""The Kubernetes backend against the parts of real Kubernetes that the happy
path hides, shown by the fake: an API server that never answers (a
NetworkPolicy's black hole), pods that take seconds to start, foreground
deletion, and Kueue owning a Job's ``suspend``."""

from __future__ import annotations

import pytest
from conftest import wait_for
from fakes.kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE
from kubernetes.client import BatchV1Api

from e2e import kubernetes_scenarios as scenarios
from e2e.test_kubernetes import FakeSession, session  # noqa: F401  (the fixture)

pytestmark = pytest.mark.gateway

TIMEOUTS = {"DASK_KBATCH__KUBERNETES__API_CONNECT_TIMEOUT": "1", "DASK_KBATCH__KUBERNETES__API_READ_TIMEOUT": "1"}


def test_an_api_that_never_answers_fails_the_queue_with_one_line_naming_it(session: FakeSession) -> None:  # noqa: F811
    session.server.black_hole()
    proc = session.run("queue", "--backend", "kubernetes", env={**session.env, **TIMEOUTS}, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"Error: the Kubernetes API at {session.server.url} did not answer within 1 s")
    assert "NetworkPolicy" in lines[0] and "singleuser.networkPolicy" in lines[0]


def test_a_driver_whose_api_stops_answering_stops_its_cluster_and_ends_by_itself(
    session: FakeSession,  # noqa: F811
) -> None:
    script = session.write(
        "forever.py",
        "import time\nfrom dask.distributed import get_client\n"
        "get_client().wait_for_workers(1, timeout=120)\nprint('ready', flush=True)\ntime.sleep(600)\n",
    )
    env = [f"--env={key}={value}" for key, value in TIMEOUTS.items()]
    job_id = session.submit(*env, script, "--dask-workers", "1")
    wait_for(lambda: "ready" in session.logs(job_id), timeout=120, interval=0.5, what="the script to run")
    cluster = session.show(job_id)["dask"]["cluster"]
    name = session.job_name(job_id)
    (pod,) = session.kubelet.pods_of(name, NAMESPACE)
    session.server.black_hole(caller="pod")  # the driver's calls go unanswered; this session's are answered
    proc = session.run("cancel", "--backend", "kubernetes", job_id)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: session.server.get("pods", NAMESPACE, pod) is None, timeout=60, what="the driver pod to end")
    log = (session.kubelet.root / "pods" / NAMESPACE / pod / "container.log").read_text().splitlines()
    wait_for(lambda: session.cluster_stopped(cluster), timeout=30, what="the cluster to stop")
    stopped = next(i for i, line in enumerate(log) if f"cluster {cluster} stopped" in line)
    # Its end not recorded, said once, after the cluster stopped: the driver was not killed waiting.
    (unanswered,) = [i for i, line in enumerate(log) if "did not answer within 1 s" in line]
    assert stopped < unanswered and "cannot record the job's end" in log[unanswered]


def test_a_slow_pod_start_does_not_eat_the_time_limit(session: FakeSession) -> None:  # noqa: F811
    session.kubelet.start_delay = 4.0  # ContainerCreating longer than --time
    scenarios.time_limit_per_attempt(session, timeout=60)


def test_cancel_shows_cancelled_until_the_pod_is_gone_and_the_driver_records_its_end(
    session: FakeSession,  # noqa: F811
) -> None:
    session.server.clear_requests()
    scenarios.cancel_shows_cancelled_until_the_pod_is_gone(session, timeout=60)
    (end,) = [r for r in session.server.requests("PATCH", "/jobs/", from_pods=True)][-1:]
    assert end.status == 200  # the driver's last word landed on the Job (kept by the foreground deletion)


def test_a_kueue_job_waits_for_quota_and_kbatch_never_resumes_it(session: FakeSession) -> None:  # noqa: F811
    env = {**session.env, "DASK_KBATCH__KUBERNETES__QUEUE_NAME": "team-a"}
    script = session.write("queued.py", "print('admitted', flush=True)\n")
    proc = session.run("--backend", "kubernetes", "--parsable", script, "--dask-workers", "0", env=env)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1]
    name = session.job_name(job_id)

    def suspended_condition() -> bool:
        job = session.server.get("jobs", NAMESPACE, name) or {}
        return any(c["type"] == "Suspended" for c in job.get("status", {}).get("conditions") or [])

    wait_for(suspended_condition, timeout=30, what="the Job's Suspended condition")
    job = session.server.get("jobs", NAMESPACE, name)
    assert job is not None and job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    patches = session.server.requests("PATCH", f"/jobs/{name}", from_pods=False)
    assert patches == []  # created suspended, never resumed by kbatch
    (record,) = [r for r in session.queue() if r["id"] == job_id]
    assert (record["state"], record["reason"]) == ("PENDING", "waiting for quota")
    shown = session.run("queue", "--backend", "kubernetes", "-o", "wide", env=env)
    (row,) = [line.split("  ") for line in shown.stdout.splitlines() if line.startswith(job_id)]
    assert "PENDING" in row and "waiting for quota" in row, shown.stdout
    BatchV1Api(session.server.client()).patch_namespaced_job(
        name, NAMESPACE, {"spec": {"suspend": False}}
    )  # Kueue admits it
    session.kubelet.wait_for_job(name, timeout=60)
    assert session.show(job_id)["state"] == "SUCCEEDED"
    assert "admitted" in session.logs(job_id)
