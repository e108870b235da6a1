"""The fake cluster's nodes: scheduling by nodeName and required node affinity,
ReadWriteOnce / ReadWriteOncePod attachment, and pod garbage collection when a
node goes — checked through the real ``kubernetes`` client."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .fake_apiserver import FakeApiServer
from .fake_kubelet import FakeKubelet
from .notebook import home_claim
from .resources import POD, PVC
from .test_fake_apiserver import NS, job_manifest

CLAIM = "home"


@pytest.fixture
def core(fake_apiserver: FakeApiServer) -> client.CoreV1Api:
    return client.CoreV1Api(fake_apiserver.client())


def pinned(node: str, key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    """A required node affinity to ``node`` (by its hostname label or, with
    ``key="metadata.name"``, by its name)."""
    kind = "matchFields" if key == "metadata.name" else "matchExpressions"
    term = {kind: [{"key": key, "operator": "In", "values": [node]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def pod_body(name: str, command: list[str], *, claim: str | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "python:3.11-slim", "command": command}
    volumes = []
    if claim:
        container["volumeMounts"] = [{"name": "home", "mountPath": "/home/jovyan"}]
        volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": claim}}]
    return {
        "metadata": {"name": name},
        "spec": {"restartPolicy": "Never", "containers": [container], "volumes": volumes, **spec},
    }


def holder(server: FakeApiServer, name: str, node: str, claim: str = CLAIM) -> None:
    """A running pod on ``node`` that uses ``claim`` (a notebook, say), stored as is."""
    body = pod_body(name, ["sleep", "3600"], claim=claim, nodeName=node)
    body["metadata"]["namespace"] = NS
    server.store.insert(POD, {**body, "status": {"phase": "Running"}})


def claim(server: FakeApiServer, *modes: str) -> None:
    server.store.insert(PVC, {**home_claim(CLAIM, modes), "metadata": {"name": CLAIM, "namespace": NS}})


def stored_pod(server: FakeApiServer, name: str, predicate: Any) -> dict[str, Any]:
    found = server.wait_for("pods", NS, name, lambda p: p is not None and predicate(p))
    assert found is not None
    return found


def waiting_reason(pod: dict[str, Any]) -> str | None:
    statuses = pod["status"].get("containerStatuses") or [{}]
    return (statuses[0].get("state") or {}).get("waiting", {}).get("reason")


def test_pods_spread_over_two_nodes_and_honour_node_name_and_required_affinity(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, core: client.CoreV1Api
) -> None:
    assert fake_kubelet.nodes == ["fake-node", "fake-node-2"]
    core.create_namespaced_pod(NS, pod_body("first", ["sleep", "60"]))
    first = stored_pod(fake_apiserver, "first", lambda p: p["status"]["phase"] == "Running")
    core.create_namespaced_pod(NS, pod_body("second", ["sleep", "60"]))
    second = stored_pod(fake_apiserver, "second", lambda p: p["status"]["phase"] == "Running")
    assert {first["spec"]["nodeName"], second["spec"]["nodeName"]} == {"fake-node", "fake-node-2"}

    core.create_namespaced_pod(NS, pod_body("by-hostname", ["true"], affinity=pinned("fake-node-2")))
    core.create_namespaced_pod(NS, pod_body("by-name", ["true"], affinity=pinned("fake-node", "metadata.name")))
    core.create_namespaced_pod(NS, pod_body("by-node-name", ["true"], nodeName="fake-node-2"))
    for name, node in (("by-hostname", "fake-node-2"), ("by-name", "fake-node"), ("by-node-name", "fake-node-2")):
        done = stored_pod(fake_apiserver, name, lambda p: p["status"]["phase"] == "Succeeded")
        assert done["spec"]["nodeName"] == node

    core.create_namespaced_pod(NS, pod_body("nowhere", ["true"], affinity=pinned("no-such-node")))
    nowhere = stored_pod(fake_apiserver, "nowhere", lambda p: bool(p["status"].get("conditions")))
    (scheduled,) = nowhere["status"]["conditions"]
    assert (scheduled["type"], scheduled["status"], scheduled["reason"]) == ("PodScheduled", "False", "Unschedulable")
    assert "didn't match Pod's node affinity/selector" in scheduled["message"]
    assert "nodeName" not in nowhere["spec"]


def test_a_read_write_once_claim_attached_to_another_node_waits_with_a_multi_attach_error(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, core: client.CoreV1Api
) -> None:
    claim(fake_apiserver, "ReadWriteOnce")
    holder(fake_apiserver, "notebook", "fake-node")
    assert core.read_namespaced_persistent_volume_claim(CLAIM, NS).status.access_modes == ["ReadWriteOnce"]

    core.create_namespaced_pod(NS, pod_body("same-node", ["true"], claim=CLAIM, nodeName="fake-node"))
    assert stored_pod(fake_apiserver, "same-node", lambda p: p["status"]["phase"] == "Succeeded")  # RWO: one node

    core.create_namespaced_pod(NS, pod_body("elsewhere", ["true"], claim=CLAIM, affinity=pinned("fake-node-2")))
    stuck = stored_pod(fake_apiserver, "elsewhere", lambda p: waiting_reason(p) == "ContainerCreating")
    assert (stuck["status"]["phase"], stuck["spec"]["nodeName"]) == ("Pending", "fake-node-2")

    def attach_events() -> list[Any]:
        selector = "involvedObject.name=elsewhere,reason=FailedAttachVolume"
        return list(core.list_namespaced_event(NS, field_selector=selector).items)

    fake_apiserver.wait_for("pods", NS, "elsewhere", lambda p: bool(attach_events()))
    (event,) = attach_events()
    assert (event.type, event.source.component) == ("Warning", "attachdetach-controller")
    assert event.message == 'Multi-Attach error for volume "pvc-home" Volume is already used by pod(s) notebook'
    assert fake_apiserver.get("pods", NS, "elsewhere")["status"]["phase"] == "Pending"  # type: ignore[index]

    core.delete_namespaced_pod("notebook", NS)  # the notebook stops: the volume detaches
    assert stored_pod(fake_apiserver, "elsewhere", lambda p: p["status"]["phase"] == "Succeeded")


def test_a_read_write_many_claim_is_shared_across_nodes(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, core: client.CoreV1Api
) -> None:
    claim(fake_apiserver, "ReadWriteMany")
    holder(fake_apiserver, "notebook", "fake-node")
    core.create_namespaced_pod(NS, pod_body("elsewhere", ["true"], claim=CLAIM, nodeName="fake-node-2"))
    assert stored_pod(fake_apiserver, "elsewhere", lambda p: p["status"]["phase"] == "Succeeded")


def test_a_read_write_once_pod_claim_in_use_keeps_any_other_pod_unschedulable(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, core: client.CoreV1Api
) -> None:
    claim(fake_apiserver, "ReadWriteOncePod")
    holder(fake_apiserver, "notebook", "fake-node")
    core.create_namespaced_pod(NS, pod_body("second", ["true"], claim=CLAIM))
    stuck = stored_pod(fake_apiserver, "second", lambda p: bool(p["status"].get("conditions")))
    (scheduled,) = stuck["status"]["conditions"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert "ReadWriteOncePod access mode" in scheduled["message"]
    core.delete_namespaced_pod("notebook", NS)
    assert stored_pod(fake_apiserver, "second", lambda p: p["status"]["phase"] == "Succeeded")


def test_removing_a_node_garbage_collects_its_pods_and_the_job_retries_elsewhere(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, core: client.CoreV1Api
) -> None:
    batch = client.BatchV1Api(fake_apiserver.client())
    batch.create_namespaced_job(NS, job_manifest("long", ["sleep", "3600"], backoffLimit=1))
    fake_apiserver.wait_for("jobs", NS, "long", lambda j: bool(j and j["status"].get("ready")))
    (first,) = fake_kubelet.pods_of("long", NS)
    process = fake_kubelet.process(first, NS)
    node = fake_apiserver.get("pods", NS, first)["spec"]["nodeName"]  # type: ignore[index]

    fake_kubelet.remove_node(node)
    assert fake_apiserver.get("pods", NS, first) is None  # at once: nobody is left to terminate it
    with pytest.raises(ApiException) as log:
        core.read_namespaced_pod_log(first, NS)
    assert log.value.status == 404  # its log went with it
    assert process is not None and process.wait(timeout=10) == -9

    def retried(job: dict[str, Any] | None) -> bool:
        return bool(job and job["status"].get("failed") == 1 and job["status"].get("ready"))

    fake_apiserver.wait_for("jobs", NS, "long", retried)
    second = fake_kubelet.pods_of("long", NS)[-1]
    assert second != first
    assert fake_apiserver.get("pods", NS, second)["spec"]["nodeName"] == fake_kubelet.nodes[0] != node  # type: ignore[index]

    fake_kubelet.remove_node(fake_kubelet.nodes[0])
    job = fake_kubelet.wait_for_job("long", NS)
    assert (job["status"]["failed"], job["status"]["conditions"][-1]["reason"]) == (2, "BackoffLimitExceeded")
    assert not fake_apiserver.objects("pods", NS, "job-name=long")
