"""The fake's slow and reluctant sides, each as Kubernetes shows it: an API
server that never answers, pods that take seconds to start, suspended Jobs,
and foreground deletion that keeps a Job until its pods are gone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client

from .fake_apiserver import FakeApiServer
from .fake_kubelet import FakeKubelet
from .test_fake_apiserver import NS, job_manifest


def test_a_black_hole_accepts_requests_and_never_answers(fake_apiserver: FakeApiServer) -> None:
    batch = client.BatchV1Api(fake_apiserver.client())
    fake_apiserver.black_hole()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        batch.list_namespaced_job(NS, _request_timeout=(2, 0.3))
    assert isinstance(info.value.reason, urllib3.exceptions.ReadTimeoutError)  # connected, then silence
    held = fake_apiserver.requests("GET", "/jobs")
    assert held and all(r.status is None for r in held)
    fake_apiserver.black_hole(False)
    assert batch.list_namespaced_job(NS, _request_timeout=(2, 5)).items == []


def test_a_black_hole_for_pods_only_answers_everyone_else(fake_apiserver: FakeApiServer) -> None:
    pod_token = fake_apiserver.issue_token("system:serviceaccount:ns:default", pod="ns/driver")
    as_pod = client.CoreV1Api(fake_apiserver.client(token=pod_token))
    as_user = client.CoreV1Api(fake_apiserver.client())
    fake_apiserver.black_hole(caller="pod")
    assert as_user.list_namespaced_pod(NS, _request_timeout=(2, 5)).items == []
    with pytest.raises(urllib3.exceptions.MaxRetryError):
        as_pod.list_namespaced_pod(NS, _request_timeout=(2, 0.3))


def test_start_delay_keeps_a_bound_pod_creating_before_its_process_starts(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer
) -> None:
    fake_kubelet.start_delay = 1.0
    batch = client.BatchV1Api(fake_apiserver.client())
    created = time.monotonic()
    batch.create_namespaced_job(NS, job_manifest("slow-start", ["true"]))
    seen: list[dict[str, Any]] = []

    def creating(_: Any) -> bool:
        seen[:] = fake_apiserver.objects("pods", NS, label_selector="job-name=slow-start")
        statuses = (seen[0]["status"].get("containerStatuses") or []) if seen else []
        return bool(statuses and statuses[0]["state"].get("waiting"))

    fake_apiserver.wait_for("jobs", NS, "slow-start", creating)
    (pod,) = seen
    assert pod["spec"]["nodeName"] and pod["status"]["phase"] == "Pending"
    assert pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    assert fake_kubelet.process(pod["metadata"]["name"], NS) is None
    assert fake_kubelet.wait_for_job("slow-start", NS)["status"]["succeeded"] == 1
    assert time.monotonic() - created >= 1.0  # the process started only after the delay


def test_a_suspended_job_has_the_suspended_condition_and_no_pod_until_resumed(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer
) -> None:
    batch = client.BatchV1Api(fake_apiserver.client())
    batch.create_namespaced_job(NS, job_manifest("held", ["true"], suspend=True))

    def suspended(job: dict[str, Any] | None) -> bool:
        return any(c["type"] == "Suspended" for c in (job or {}).get("status", {}).get("conditions") or [])

    job = fake_apiserver.wait_for("jobs", NS, "held", suspended)
    assert job is not None
    (cond,) = job["status"]["conditions"]
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "JobSuspended", "Job suspended")
    assert fake_kubelet.pods_of("held", NS) == [] and "startTime" not in job["status"]
    batch.patch_namespaced_job("held", NS, {"spec": {"suspend": False}})
    done = fake_kubelet.wait_for_job("held", NS)
    resumed = [c for c in done["status"]["conditions"] if c["type"] == "Suspended"]
    assert [(c["status"], c["reason"]) for c in resumed] == [("False", "JobResumed")]
    assert done["status"]["succeeded"] == 1


def test_foreground_deletion_keeps_the_job_until_its_pod_is_gone(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    script = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        f"while not os.path.exists({str(release)!r}):\n    time.sleep(0.05)\n"
    )
    manifest = job_manifest("stubborn", ["python", "-c", script], pod={"terminationGracePeriodSeconds": 60})
    batch = client.BatchV1Api(fake_apiserver.client())
    batch.create_namespaced_job(NS, manifest)
    fake_apiserver.wait_for("jobs", NS, "stubborn", lambda j: bool(j and j["status"].get("ready")))
    (pod_name,) = fake_kubelet.pods_of("stubborn", NS)
    batch.delete_namespaced_job("stubborn", NS, propagation_policy="Foreground")
    pod = fake_apiserver.get("pods", NS, pod_name)
    job = fake_apiserver.get("jobs", NS, "stubborn")
    assert pod is not None and pod["metadata"]["deletionTimestamp"]  # terminating, its process ignoring SIGTERM
    assert job is not None and job["metadata"]["deletionTimestamp"]
    assert job["metadata"]["finalizers"] == ["foregroundDeletion"]
    release.touch()
    fake_apiserver.wait_for("jobs", NS, "stubborn", lambda j: j is None, timeout=20)
    assert fake_apiserver.get("pods", NS, pod_name) is None
