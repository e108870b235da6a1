"""The Kubernetes backend on a cluster of two nodes: a ReadWriteOnce home volume
(z2jh's default storage), and pods garbage-collected when their node goes.

As in ``test_kubernetes.py``: the real ``kbatch`` commands against the fake API
server, the fake kubelet running the driver pod, a real embedded Dask-Gateway.
The notebook pod runs on the first node (``fake-node``) with its home claim."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dask.config
import pytest
from conftest import wait_for
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
from fakes.kube.notebook import CLAIM, NAMESPACE, NODE, POD_NAME, notebook_session
from fakes.kube.resources import POD

from e2e import kubernetes_scenarios as scenarios
from e2e.test_kubernetes import FakeSession
from kbatch_dask.backends.local.backend import LocalBackend

pytestmark = pytest.mark.gateway


def make_session(server: FakeApiServer, kubelet: FakeKubelet, home: Path, access_modes: tuple[str, ...]) -> FakeSession:
    user_home = Path(os.environ["HOME"])
    with dask.config.set({"gateway.address": None}):  # the embedded gateway, whatever other tests configured
        settings = LocalBackend(str(home)).gateway(start=True)
    assert settings is not None
    env = {**notebook_session(server, kubelet, user_home, access_modes), **settings.env}
    secrets = (settings.env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"],)
    return FakeSession(server, kubelet, user_home, env, secrets, Path(os.environ["KBATCH_DASK_HOME"]))


@pytest.fixture
def rwo(
    home: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kube_env: Path,  # noqa: F811
) -> Iterator[FakeSession]:
    """A notebook whose home claim is ReadWriteOnce."""
    yield make_session(fake_apiserver, fake_kubelet, home, ("ReadWriteOnce",))


@pytest.fixture
def rwx(
    home: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kube_env: Path,  # noqa: F811
) -> Iterator[FakeSession]:
    """A notebook whose home claim is ReadWriteMany (NFS, say)."""
    yield make_session(fake_apiserver, fake_kubelet, home, ("ReadWriteMany",))


def test_a_read_write_once_home_pins_the_job_to_the_notebooks_node(rwo: FakeSession) -> None:
    record = scenarios.read_write_once_home_pinned(rwo, NODE)
    output = Path(record["output"])
    assert output.parent == rwo.home and "ran beside the notebook" in output.read_text()  # on the home volume


def test_a_read_write_many_home_is_not_pinned(rwx: FakeSession) -> None:
    script = rwx.write("anywhere.py", "print('anywhere', flush=True)\n")
    job_id = rwx.submit(script, "--dask-workers", "0")
    rwx.wait_done(job_id, 60)
    pod = scenarios.job_pod(rwx, job_id)
    assert "affinity" not in pod["spec"] and pod["spec"]["nodeName"] != NODE  # the other, less loaded node
    assert "anywhere" in Path(rwx.show(job_id)["output"]).read_text()


def test_without_the_home_volume_the_output_reaches_the_user_through_the_log(rwo: FakeSession) -> None:
    scenarios.read_write_once_home_left_out(rwo, CLAIM)


def test_refuse_submits_nothing_and_says_why_in_one_line(rwo: FakeSession) -> None:
    line = scenarios.refused(rwo, "rwo-home refuse", {**rwo.env, "DASK_KBATCH__KUBERNETES__RWO_HOME": "refuse"})
    assert f"your volume {CLAIM} (ReadWriteOnce: only pods on the notebook's node can mount it)" in line


def test_the_queue_shows_a_pod_stuck_on_a_multi_attach_error_until_the_notebook_goes(rwo: FakeSession) -> None:
    # An admin's template that sends jobs to another node overrides the pin: the
    # pod lands where the claim cannot be attached.
    elsewhere = {"key": "kubernetes.io/hostname", "operator": "In", "values": ["fake-node-2"]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [elsewhere]}]}}}  # fmt: skip
    rwo.env["DASK_KBATCH__KUBERNETES__POD_TEMPLATE"] = repr({"affinity": affinity})
    script = rwo.write("stuck.py", "print('attached at last', flush=True)\n")
    job_id = rwo.submit(script, "--dask-workers", "0")

    def stuck() -> dict[str, str] | None:
        (record,) = [r for r in rwo.queue() if r["id"] == job_id]
        return record if (record["reason"] or "").startswith("FailedAttachVolume") else None

    record = wait_for(stuck, timeout=60, what="the queue to show the attach error")
    assert record["state"] == "PENDING"
    assert record["reason"] == (
        f'FailedAttachVolume: Multi-Attach error for volume "pvc-{CLAIM}" Volume is already used by pod(s) {POD_NAME}'
    )
    assert rwo.show(job_id)["reason"] == record["reason"]

    rwo.server.store.remove(POD, NAMESPACE, POD_NAME)  # the notebook stops: the claim detaches
    rwo.wait_done(job_id, 60)
    assert rwo.show(job_id)["state"] == "SUCCEEDED"


# -- pods garbage-collected with their node ------------------------------------------


def test_show_and_logs_work_from_the_job_and_its_output_file_once_the_node_is_gone(rwx: FakeSession) -> None:
    script = rwx.write("short.py", "print('all done', flush=True)\n")
    job_id = rwx.submit(script, "--dask-workers", "0")
    rwx.wait_done(job_id, 60)
    node = scenarios.job_pod(rwx, job_id)["spec"]["nodeName"]
    rwx.kubelet.remove_node(node)
    assert not rwx.objects("pods")  # garbage-collected, their logs with them
    record = rwx.show(job_id)
    assert (record["state"], record["exit_code"]) == ("SUCCEEDED", 0), record
    assert record["started"] and record["finished"]
    assert "all done" in rwx.logs(job_id)  # from the output file on the home volume


def test_a_job_whose_node_goes_while_it_runs_is_lost_with_its_output_so_far(rwx: FakeSession) -> None:
    script = rwx.write("long.py", "import time\nprint('step 1', flush=True)\ntime.sleep(600)\n")
    job_id = rwx.submit(script, "--dask-workers", "0")
    output = wait_for(lambda: rwx.show(job_id)["output"], timeout=60, what="the output path")
    wait_for(lambda: "step 1" in Path(output).read_text() if Path(output).exists() else False, timeout=60,
             what="the first step")  # fmt: skip
    rwx.kubelet.remove_node(scenarios.job_pod(rwx, job_id)["spec"]["nodeName"])
    rwx.wait_done(job_id, 60)
    record = rwx.show(job_id)
    assert (record["state"], record["reason"]) == ("LOST", "driver pod vanished"), record
    assert record["started"]  # what the driver recorded before it went
    assert "step 1" in rwx.logs(job_id)


def test_a_retried_job_whose_node_goes_runs_again_on_another_node(rwx: FakeSession) -> None:
    script = rwx.write(
        "again.py",
        "import os, time\nfirst = not os.path.exists('ran')\nopen('ran', 'w').close()\n"
        "print('attempt', os.environ['KBATCH_DASK_POD_NAME'], flush=True)\ntime.sleep(600 if first else 0)\n",
    )
    job_id = rwx.submit("--retries", "1", script, "--dask-workers", "0")
    wait_for(lambda: (rwx.home / "ran").exists(), timeout=60, what="the first attempt's script")
    first = scenarios.job_pod(rwx, job_id)
    rwx.kubelet.retry_delay = 10  # Kubernetes' first back-off: no pod exists meanwhile
    rwx.kubelet.remove_node(first["spec"]["nodeName"])
    between = rwx.show(job_id)
    assert (between["state"], between["reason"]) == ("PENDING", "retrying after the driver pod vanished"), between
    rwx.wait_done(job_id, 60)
    record = rwx.show(job_id)
    assert (record["state"], record["attempt"]) == ("SUCCEEDED", 2), record
    assert scenarios.job_pod(rwx, job_id)["spec"]["nodeName"] != first["spec"]["nodeName"]
