"""A job whose image no registry has fails fast through the service: FAILED with
the kubelet's reason once its pod has waited kbatch.service.start-timeout, its
Job deleted, its hub token revoked, its place free for the next job."""

from __future__ import annotations

import pytest
from conftest import wait_for
from fakes.kube.notebook import NAMESPACE
from fakes.kube.resources import JOB

from kbatch_dask.backends.kubernetes import manifests

from .conftest import Service, User, run

pytestmark = pytest.mark.gateway

MISSING = "pangeo/no-such-image:1"  # allowed by the policy (pangeo/*), in no registry


@pytest.fixture(scope="module")
def service_settings() -> dict[str, str]:
    return {"DASK_KBATCH__SERVICE__START_TIMEOUT": "2", "DASK_KBATCH__SERVICE__LIMITS__MAX_RUNNING_JOBS": "1"}


def test_a_pod_that_can_never_start_fails_its_job_and_frees_its_place(service: Service, alice: User) -> None:
    service.kubelet.missing_image(MISSING)
    tokens = len(service.hub.tokens("alice"))
    (alice.home / "never.py").write_text("print('never runs')\n")
    proc = run(alice, "--parsable", "--image", MISSING, "--dask-workers", "1", "never.py")
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[-1]
    name = manifests.job_name("alice", job_id)
    assert len(service.hub.tokens("alice")) == tokens + 1  # minted for its gateway cluster

    wait_for(lambda: not service.server.objects("jobs", NAMESPACE, f"kbatch-dask.io/job-id={job_id}"), timeout=60)
    changes = service.server.store.changes(JOB, name)
    ended = [obj for event, obj in changes if event == "MODIFIED" and obj["metadata"].get("deletionTimestamp")]
    annotations = ended[0]["metadata"]["annotations"]  # what the queue showed while its pod went
    assert annotations["kbatch-dask.io/state"] == "FAILED"
    reason = annotations["kbatch-dask.io/reason"]
    assert reason.startswith(("ErrImagePull: ", "ImagePullBackOff: ")) and MISSING in reason
    assert reason.endswith("(pending over kbatch.service.start-timeout, 0:02)")
    assert changes[-1][0] == "DELETED"
    wait_for(lambda: len(service.hub.tokens("alice")) == tokens, timeout=30, what="its hub token revoked")
    assert "can never start" in service.log.read_text()

    (alice.home / "next.py").write_text("print('next one')\n")
    proc = run(alice, "--parsable", "--dask-workers", "0", "--wait", "next.py")  # max-running-jobs 1: its place
    assert proc.returncode == 0, proc.stderr
