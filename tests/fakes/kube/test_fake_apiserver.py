"""The Kubernetes test double, checked with the real ``kubernetes`` client (and kubectl).

If these pass, a backend test that passes against the double exercised real
client code paths against Kubernetes-shaped answers.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import KUBECTL
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from .fake_apiserver import FakeApiServer
from .fake_kubelet import FakeKubelet, job_outcome

NS = "ns"


@pytest.fixture
def core(fake_apiserver: FakeApiServer) -> client.CoreV1Api:
    return client.CoreV1Api(fake_apiserver.client())


@pytest.fixture
def batch(fake_apiserver: FakeApiServer) -> client.BatchV1Api:
    return client.BatchV1Api(fake_apiserver.client())


def job_manifest(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container = {"name": "driver", "image": "python:3.11-slim", "command": command}
    container.update(spec.pop("container", {}))
    pod_spec = {"restartPolicy": "Never", "containers": [container], **spec.pop("pod", {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "kbatch-dask"}},
        "spec": {"backoffLimit": 0, "template": {"spec": pod_spec}, **spec},
    }


def raw(response: Any) -> Any:
    return json.loads(response.data)


def post_raw(server: FakeApiServer, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST without the client's own validation (it refuses some invalid bodies itself)."""
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    response = server.client().call_api("POST", server.url + path, headers, body)
    return response.status, json.loads(response.read())


def api_error(call: Any, *args: Any, **kwargs: Any) -> ApiException:
    with pytest.raises(ApiException) as info:
        call(*args, **kwargs)
    return info.value


# -- API server -------------------------------------------------------------------


def test_create_sets_server_metadata(core: client.CoreV1Api) -> None:
    first = core.create_namespaced_config_map(NS, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    second = core.create_namespaced_config_map(NS, {"metadata": {"generateName": "gen-"}})
    assert first.metadata.uid and first.metadata.uid != second.metadata.uid
    assert first.metadata.namespace == NS and first.metadata.creation_timestamp is not None
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert second.metadata.name.startswith("gen-") and len(second.metadata.name) == len("gen-") + 5
    patched = core.patch_namespaced_config_map("a", NS, {"data": {"k": "w"}})
    assert int(patched.metadata.resource_version) > int(second.metadata.resource_version)


def test_list_with_label_and_field_selectors(core: client.CoreV1Api) -> None:
    for name, labels in [("a", {"app": "x", "tier": "1"}), ("b", {"app": "y"}), ("c", {"tier": "2"})]:
        core.create_namespaced_config_map(NS, {"metadata": {"name": name, "labels": labels}})
    core.create_namespaced_config_map("other", {"metadata": {"name": "d", "labels": {"app": "x"}}})

    def names(**kwargs: Any) -> list[str]:
        return [i.metadata.name for i in core.list_namespaced_config_map(NS, **kwargs).items]

    assert names() == ["a", "b", "c"]
    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app!=x") == ["b", "c"]
    assert names(label_selector="app") == ["a", "b"]
    assert names(label_selector="!app") == ["c"]
    assert names(label_selector="tier in (1, 2),app notin (y)") == ["a", "c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    everywhere = core.list_config_map_for_all_namespaces(label_selector="app=x")
    assert sorted(i.metadata.name for i in everywhere.items) == ["a", "d"]
    assert api_error(core.list_namespaced_config_map, NS, field_selector="data.k=v").status == 400


def test_raw_list_pagination(core: client.CoreV1Api) -> None:
    for i in range(7):
        core.create_namespaced_config_map(NS, {"metadata": {"name": f"cm-{i}", "labels": {"page": "yes"}}})
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"_continue": token} if token else {}
        body = raw(
            core.list_namespaced_config_map(NS, label_selector="page=yes", limit=3, _preload_content=False, **kwargs)
        )
        pages += 1
        assert body["kind"] == "ConfigMapList" and body["metadata"]["resourceVersion"]
        assert all("kind" not in item for item in body["items"])  # as the real server: no per-item kind
        seen += [item["metadata"]["name"] for item in body["items"]]
        token = body["metadata"].get("continue")
        if not token:
            break
    assert pages == 3 and seen == [f"cm-{i}" for i in range(7)]


def test_errors_are_status_bodies_with_the_right_codes(core: client.CoreV1Api, batch: client.BatchV1Api) -> None:
    missing = api_error(core.read_namespaced_secret, "nope", NS)
    assert missing.status == 404
    assert json.loads(missing.body)["message"] == 'secrets "nope" not found'
    core.create_namespaced_secret(NS, {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    exists = api_error(core.create_namespaced_secret, NS, {"metadata": {"name": "s"}})
    assert (exists.status, json.loads(exists.body)["reason"]) == (409, "AlreadyExists")
    assert core.read_namespaced_secret("s", NS).data == {"a": "Yg=="}  # stringData folded into data


@pytest.mark.parametrize(
    ("resource", "body", "field"),
    [
        ("configmap", {"metadata": {"name": "Not_A_Name"}}, "metadata.name"),
        ("configmap", {"metadata": {"name": "big"}, "data": {"script.py": "x" * (2 * 1024 * 1024 - 100)}}, "[]"),
        ("secret", {"metadata": {"name": "big"}, "data": {"k": base64.b64encode(b"x" * 1_100_000).decode()}}, "data"),
        ("configmap", {"metadata": {"name": "l", "labels": {"user": "a" * 64}}}, "metadata.labels"),
        ("configmap", {"metadata": {"name": "l", "labels": {"bad key!": "v"}}}, "metadata.labels"),
        (
            "raw-job",
            {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"restartPolicy": "Never"}}}},
            "spec.template.spec.containers",
        ),
        ("job", job_manifest("j", ["true"], pod={"restartPolicy": "Always"}), "spec.template.spec.restartPolicy"),
        ("job", job_manifest("j" * 64, ["true"]), "spec.template.metadata.labels"),
        ("job", job_manifest("j", ["true"], container={"resources": {"limits": {"memory": "4GG"}}}), None),
    ],
)
def test_invalid_objects_get_422(
    fake_apiserver: FakeApiServer,
    core: client.CoreV1Api,
    batch: client.BatchV1Api,
    resource: str,
    body: dict[str, Any],
    field: str | None,
) -> None:
    if resource == "raw-job":
        code, status = post_raw(fake_apiserver, f"/apis/batch/v1/namespaces/{NS}/jobs", body)
    else:
        create = {
            "configmap": core.create_namespaced_config_map,
            "secret": core.create_namespaced_secret,
            "job": batch.create_namespaced_job,
        }[resource]
        error = api_error(create, NS, body)
        code, status = error.status, json.loads(error.body)
    assert (code, status["kind"], status["reason"], status["status"]) == (422, "Status", "Invalid", "Failure")
    if field is not None:
        assert field in [cause["field"] for cause in status["details"]["causes"]], status


def test_body_over_the_request_limit_is_413(core: client.CoreV1Api) -> None:
    error = api_error(
        core.create_namespaced_config_map, NS, {"metadata": {"name": "x"}, "data": {"k": "x" * 4_000_000}}
    )
    assert error.status == 413


def test_rbac_denials_and_access_reviews(fake_apiserver: FakeApiServer, batch: client.BatchV1Api) -> None:
    fake_apiserver.deny("create", "batch", "jobs")
    error = api_error(batch.create_namespaced_job, NS, job_manifest("j", ["true"]))
    assert error.status == 403
    assert json.loads(error.body)["message"] == (
        'jobs.batch is forbidden: User "system:serviceaccount:ns:default" cannot create resource "jobs" '
        'in API group "batch" in the namespace "ns"'
    )
    assert batch.list_namespaced_job(NS).items == []  # list is still allowed
    auth = client.AuthorizationV1Api(fake_apiserver.client())

    def allowed(verb: str) -> bool:
        review = {"spec": {"resourceAttributes": {"namespace": NS, "verb": verb, "group": "batch", "resource": "jobs"}}}
        return bool(auth.create_self_subject_access_review(review).status.allowed)

    assert (allowed("create"), allowed("list")) == (False, True)
    fake_apiserver.allow("create", "batch", "jobs")
    assert allowed("create")


def test_unknown_token_is_401(fake_apiserver: FakeApiServer) -> None:
    core = client.CoreV1Api(fake_apiserver.client(token="wrong"))
    assert api_error(core.list_namespaced_pod, NS).status == 401


def test_status_is_only_changed_through_the_status_subresource(batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job(NS, {**job_manifest("j", ["true"]), "status": {"active": 3}})
    assert batch.read_namespaced_job("j", NS).status.active is None
    patched = batch.patch_namespaced_job("j", NS, {"status": {"succeeded": 1}, "metadata": {"labels": {"x": "y"}}})
    assert patched.status.succeeded is None and patched.metadata.labels["x"] == "y"
    via_status = batch.patch_namespaced_job_status(
        "j", NS, {"spec": {"parallelism": 7}, "status": {"active": 1}, "metadata": {"labels": {"x": "z"}}}
    )
    assert via_status.status.active == 1
    assert via_status.spec.parallelism == 1 and via_status.metadata.labels["x"] == "y"
    generation = via_status.metadata.generation
    replaced = batch.replace_namespaced_job("j", NS, {**batch.api_client.sanitize_for_serialization(via_status)})
    assert replaced.status.active == 1 and replaced.metadata.generation == generation
    template_change = batch.api_client.sanitize_for_serialization(replaced)
    template_change["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert api_error(batch.replace_namespaced_job, "j", NS, template_change).status == 422  # immutable template


def test_patch_annotations_three_ways(batch: client.BatchV1Api, fake_apiserver: FakeApiServer) -> None:
    batch.create_namespaced_job(NS, job_manifest("j", ["true"]))
    batch.patch_namespaced_job("j", NS, {"metadata": {"annotations": {"kbatch/cluster": "c1", "a": "1"}}})
    batch.patch_namespaced_job(
        "j", NS, {"metadata": {"annotations": {"a": None}}}, _content_type="application/merge-patch+json"
    )
    batch.patch_namespaced_job(
        "j", NS, [{"op": "add", "path": "/metadata/annotations/kbatch~1dashboard", "value": "http://d"}]
    )
    annotations = batch.read_namespaced_job("j", NS).metadata.annotations
    assert annotations == {"kbatch/cluster": "c1", "kbatch/dashboard": "http://d"}
    assert len(fake_apiserver.requests("PATCH", "/jobs/j")) == 3


def test_owner_garbage_collection(
    core: client.CoreV1Api, batch: client.BatchV1Api, fake_apiserver: FakeApiServer
) -> None:
    def make(name: str) -> None:
        job = batch.create_namespaced_job(NS, job_manifest(name, ["true"]))
        owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job.metadata.uid, "controller": True}
        meta = {"name": f"{name}-payload", "ownerReferences": [owner]}
        core.create_namespaced_config_map(NS, {"metadata": meta, "data": {"a": "b"}})
        core.create_namespaced_secret(NS, {"metadata": meta, "stringData": {"a": "b"}})

    make("bg")
    batch.delete_namespaced_job("bg", NS, propagation_policy="Background")
    assert fake_apiserver.get("configmaps", NS, "bg-payload") is None
    assert fake_apiserver.get("secrets", NS, "bg-payload") is None

    make("orphan")
    batch.delete_namespaced_job("orphan", NS)  # a Job's default policy is Orphan, as in Kubernetes
    left = fake_apiserver.get("configmaps", NS, "orphan-payload")
    assert left is not None and "ownerReferences" not in left["metadata"]

    make("fg")
    batch.delete_namespaced_job("fg", NS, body={"propagationPolicy": "Foreground"})
    assert fake_apiserver.get("jobs", NS, "fg") is None and fake_apiserver.get("secrets", NS, "fg-payload") is None


def test_pod_log_of_a_seeded_pod(fake_apiserver: FakeApiServer, core: client.CoreV1Api) -> None:
    fake_apiserver.seed_jobs(NS, 1, log="one\ntwo\nthree\n")
    pod = fake_apiserver.objects("pods", NS)[0]["metadata"]["name"]
    assert core.read_namespaced_pod_log(pod, NS) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log(pod, NS, tail_lines=1) == "three\n"
    assert fake_apiserver.requests("GET", "/log")[-1].query == {"tailLines": "1"}
    unstarted = core.create_namespaced_pod(
        NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    )
    error = api_error(core.read_namespaced_pod_log, unstarted.metadata.name, NS)
    assert error.status == 400 and "is waiting to start" in json.loads(error.body)["message"]


def test_seeded_jobs_list_fast(fake_apiserver: FakeApiServer, batch: client.BatchV1Api) -> None:
    started = time.monotonic()
    fake_apiserver.seed_jobs(NS, 1000, labels={"app.kubernetes.io/managed-by": "kbatch-dask", "user": "alice"})
    fake_apiserver.seed_jobs(NS, 10, labels={"user": "bob"}, outcome="Failed", name_prefix="bob-")
    fake_apiserver.clear_requests()
    body = raw(batch.list_namespaced_job(NS, label_selector="user=alice", limit=2000, _preload_content=False))
    assert len(body["items"]) == 1000
    assert body["items"][0]["status"]["conditions"][-1]["type"] == "Complete"
    assert len(fake_apiserver.requests()) == 1
    assert time.monotonic() - started < 5


def test_watch(fake_apiserver: FakeApiServer, core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "before"}})
    events: list[tuple[str, str]] = []

    def consume() -> None:
        for event in watch.Watch().stream(core.list_namespaced_config_map, NS, timeout_seconds=1):
            events.append((event["type"], event["object"].metadata.name))

    reader = threading.Thread(target=consume)
    reader.start()
    fake_apiserver.wait_for("configmaps", NS, "before", lambda _: bool(fake_apiserver.requests("GET", "/configmaps")))
    time.sleep(0.1)  # the watch is subscribed right after its request is recorded
    core.create_namespaced_config_map(NS, {"metadata": {"name": "after"}})
    core.delete_namespaced_config_map("after", NS)
    reader.join(timeout=5)
    assert events == [("ADDED", "before"), ("ADDED", "after"), ("DELETED", "after")]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_get_jobs(fake_apiserver: FakeApiServer, tmp_path: Path) -> None:
    fake_apiserver.seed_jobs(NS, 3, labels={"user": "alice"})
    fake_apiserver.seed_jobs(NS, 2, labels={"user": "bob"}, name_prefix="bob-")
    config = fake_apiserver.kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    command = [str(KUBECTL), "--kubeconfig", str(config), "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(
        [*command, "get", "jobs", "-l", "user=alice", "-o", "json"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["seeded-00000", "seeded-00001", "seeded-00002"]
    assert (
        fake_apiserver.requests("GET", "/apis/batch/v1/namespaces/ns/jobs")[-1].query["labelSelector"] == "user=alice"
    )


# -- kubelet ----------------------------------------------------------------------


def hello_job(name: str) -> dict[str, Any]:
    # The file's path is an argument, so the kubelet translates it into the pod root.
    script = "import os, sys; print('hi', os.environ['TOKEN'], open(sys.argv[1]).read().strip())"
    return job_manifest(
        name,
        ["python", "-c", script, "/etc/kbatch/greeting"],
        pod={
            "volumes": [
                {
                    "name": "payload",
                    "configMap": {"name": f"{name}-payload", "items": [{"key": "g", "path": "greeting"}]},
                }
            ]
        },
        container={
            "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": f"{name}-env", "key": "token"}}}],
            "volumeMounts": [{"name": "payload", "mountPath": "/etc/kbatch"}],
        },
    )


def test_kubelet_runs_a_job_to_success(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    # Job first, then its ConfigMap and Secret: the pod waits for them, as in Kubernetes.
    batch.create_namespaced_job(NS, hello_job("hello"))
    time.sleep(0.1)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "hello-payload"}, "data": {"g": "from a configmap"}})
    core.create_namespaced_secret(NS, {"metadata": {"name": "hello-env"}, "stringData": {"token": "s3cret"}})
    job = fake_kubelet.wait_for_job("hello", NS)
    assert job["status"]["succeeded"] == 1 and job["status"]["conditions"][-1]["type"] == "Complete"
    (pod_name,) = fake_kubelet.pods_of("hello", NS)
    pod = core.read_namespaced_pod(pod_name, NS)
    assert pod.status.phase == "Succeeded"
    assert pod.metadata.labels["job-name"] == "hello" and pod.metadata.owner_references[0].uid == job["metadata"]["uid"]
    assert pod.status.container_statuses[0].state.terminated.reason == "Completed"
    assert core.read_namespaced_pod_log(pod_name, NS) == "hi s3cret from a configmap\n"
    launch = fake_kubelet.launch_of(pod_name, NS)
    assert launch is not None and launch.argv[0] == sys.executable
    assert "KUBERNETES_SERVICE_HOST" not in launch.env and launch.env["HOSTNAME"] == pod_name


def test_kubelet_failing_job_with_retries(
    fake_kubelet: FakeKubelet, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job(NS, job_manifest("fails", ["python", "-c", "raise SystemExit(3)"], backoffLimit=1))
    job = fake_kubelet.wait_for_job("fails", NS)
    assert job["status"]["failed"] == 2
    assert [c["type"] for c in job["status"]["conditions"]] == ["FailureTarget", "Failed"]
    assert job["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    pods = fake_kubelet.pods_of("fails", NS)
    assert len(pods) == 2
    terminated = core.read_namespaced_pod(pods[-1], NS).status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")


def test_kubelet_deadline_exceeded(
    fake_kubelet: FakeKubelet, batch: client.BatchV1Api, fake_apiserver: FakeApiServer
) -> None:
    manifest = job_manifest("slow", ["sleep", "60"], activeDeadlineSeconds=1, pod={"terminationGracePeriodSeconds": 1})
    batch.create_namespaced_job(NS, manifest)
    fake_apiserver.wait_for("jobs", NS, "slow", lambda j: bool(j and j["status"].get("active")))
    (pod_name,) = fake_kubelet.pods_of("slow", NS)
    process = fake_kubelet.process(pod_name, NS)
    job = fake_kubelet.wait_for_job("slow", NS, timeout=10)
    failed = job["status"]["conditions"][-1]
    assert (failed["type"], failed["reason"]) == ("Failed", "DeadlineExceeded")
    assert process is not None and process.poll() is not None
    assert fake_apiserver.get("pods", NS, pod_name) is None  # the Job controller deleted it


@pytest.mark.parametrize("propagation", ["Background", "Foreground"])
def test_deleting_a_job_terminates_its_process_gracefully(
    fake_kubelet: FakeKubelet, batch: client.BatchV1Api, fake_apiserver: FakeApiServer, tmp_path: Path, propagation: str
) -> None:
    marker = tmp_path / "terminated"
    script = (
        "import signal, sys, time, pathlib\n"
        f"signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(marker)!r}).write_text('bye'), sys.exit(143)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    batch.create_namespaced_job(NS, job_manifest("victim", ["python", "-c", script]))
    fake_apiserver.wait_for("jobs", NS, "victim", lambda j: bool(j and j["status"].get("ready")))
    (pod_name,) = fake_kubelet.pods_of("victim", NS)
    core = client.CoreV1Api(fake_apiserver.client())
    fake_apiserver.wait_for("pods", NS, pod_name, lambda p: core.read_namespaced_pod_log(pod_name, NS) == "ready\n")
    batch.delete_namespaced_job("victim", NS, propagation_policy=propagation)
    if propagation == "Background":
        assert fake_apiserver.get("jobs", NS, "victim") is None  # the Job goes first, its pods after
    fake_apiserver.wait_for("pods", NS, pod_name, lambda p: p is None, timeout=10)
    assert fake_apiserver.get("jobs", NS, "victim") is None
    process = fake_kubelet.process(pod_name, NS)
    assert process is None or process.poll() is not None
    assert marker.read_text() == "bye"


def test_follow_log_streams_until_exit(
    fake_kubelet: FakeKubelet, batch: client.BatchV1Api, fake_apiserver: FakeApiServer
) -> None:
    script = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)\n"
    batch.create_namespaced_job(NS, job_manifest("chatty", ["python", "-c", script]))
    fake_apiserver.wait_for("jobs", NS, "chatty", lambda j: bool(j and j["status"].get("ready")))
    (pod_name,) = fake_kubelet.pods_of("chatty", NS)
    core = client.CoreV1Api(fake_apiserver.client())
    response = core.read_namespaced_pod_log(pod_name, NS, follow=True, _preload_content=False)
    streamed = b"".join(response.stream())
    assert streamed == b"0\n1\n2\n"


def test_hold_keeps_a_pod_pending(
    fake_kubelet: FakeKubelet, batch: client.BatchV1Api, fake_apiserver: FakeApiServer
) -> None:
    fake_kubelet.hold("stuck", "Unschedulable")
    fake_kubelet.hold("pull", "ImagePullBackOff")
    batch.create_namespaced_job(NS, job_manifest("stuck", ["true"]))
    batch.create_namespaced_job(NS, job_manifest("pull", ["true"]))

    def pod(job: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def has_conditions(_: Any) -> bool:
            found[:] = fake_apiserver.objects("pods", NS, label_selector=f"job-name={job}")
            return bool(found and found[0]["status"].get("conditions"))

        fake_apiserver.wait_for("jobs", NS, job, has_conditions)
        return found[0]

    stuck = pod("stuck")
    assert stuck["status"]["phase"] == "Pending" and "nodeName" not in stuck["spec"]
    assert stuck["status"]["conditions"][0] == stuck["status"]["conditions"][0] | {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
    }
    waiting = pod("pull")["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ImagePullBackOff"
    fake_kubelet.release("stuck")
    assert fake_kubelet.wait_for_job("stuck", NS)["status"]["succeeded"] == 1


def test_a_missing_image_is_err_image_pull_then_image_pull_back_off_for_good(
    fake_kubelet: FakeKubelet, batch: client.BatchV1Api, fake_apiserver: FakeApiServer
) -> None:
    fake_kubelet.missing_image("pangeo/nope:1")
    batch.create_namespaced_job(NS, job_manifest("nope", ["true"], container={"image": "pangeo/nope:1"}))
    seen: list[str] = []

    def waiting(_: Any) -> bool:
        pods = fake_apiserver.objects("pods", NS, label_selector="job-name=nope")
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        state = (statuses or [{}])[0].get("state", {}).get("waiting", {})
        if state.get("reason") and state["reason"] not in seen:
            seen.append(state["reason"])
            assert "pangeo/nope:1" in state["message"] and pods[0]["status"]["phase"] == "Pending"
        return "ImagePullBackOff" in seen

    fake_apiserver.wait_for("jobs", NS, "nope", waiting)
    assert seen == ["ErrImagePull", "ImagePullBackOff"]
    assert fake_apiserver.objects("jobs", NS)[0]["status"].get("active") == 1  # never ends by itself


def test_oom_kill(fake_kubelet: FakeKubelet, batch: client.BatchV1Api, fake_apiserver: FakeApiServer) -> None:
    batch.create_namespaced_job(NS, job_manifest("hungry", ["sleep", "60"]))
    fake_apiserver.wait_for("jobs", NS, "hungry", lambda j: bool(j and j["status"].get("ready")))
    (pod_name,) = fake_kubelet.pods_of("hungry", NS)
    fake_kubelet.oom_kill(pod_name, NS)
    fake_kubelet.wait_for_job("hungry", NS)
    terminated = fake_apiserver.get("pods", NS, pod_name)["status"]["containerStatuses"][0]["state"]["terminated"]  # type: ignore[index]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)


def test_pod_reaches_the_api_with_its_own_kubeconfig(
    fake_kubelet: FakeKubelet, batch: client.BatchV1Api, fake_apiserver: FakeApiServer, tmp_path: Path
) -> None:
    """The in-cluster convention (load_incluster_config() fails, load_kube_config() works),
    pod identity in the request log and RBAC, a home volume and translated paths."""
    script = (
        "import os\n"
        "from kubernetes import client, config\n"
        "try:\n"
        "    config.load_incluster_config()\n"
        "except config.ConfigException:\n"
        "    config.load_kube_config()\n"
        "pod = client.CoreV1Api().read_namespaced_pod(os.environ['HOSTNAME'], 'ns')\n"
        "try:\n"
        "    client.BatchV1Api().patch_namespaced_job(pod.metadata.labels['job-name'], 'ns', {'metadata': {}})\n"
        "except client.ApiException as exc:\n"
        "    print('patch refused', exc.status)\n"
        "with open(os.environ['OUT'], 'w') as out:\n"
        "    out.write(os.getcwd())\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    fake_kubelet.map_volume("home-alice", home)
    fake_apiserver.deny("patch", "batch", "jobs", caller="pod")
    manifest = job_manifest(
        "inpod",
        ["python", "-c", script],
        pod={"volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home-alice"}}]},
        container={
            "workingDir": "/home/jovyan/work",
            "env": [{"name": "OUT", "value": "/home/jovyan/out.txt"}],
            "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
        },
    )
    (home / "work").mkdir()
    batch.create_namespaced_job(NS, manifest)
    job = fake_kubelet.wait_for_job("inpod", NS, timeout=30)
    (pod_name,) = fake_kubelet.pods_of("inpod", NS)
    log = client.CoreV1Api(fake_apiserver.client()).read_namespaced_pod_log(pod_name, NS)
    assert job["status"].get("succeeded") == 1, log
    assert log == "patch refused 403\n"
    assert Path((home / "out.txt").read_text()).resolve() == (home / "work").resolve()
    (from_pod,) = fake_apiserver.requests("GET", f"/pods/{pod_name}", from_pods=True)
    assert (from_pod.user, from_pod.pod, from_pod.status) == ("system:serviceaccount:ns:default", f"ns/{pod_name}", 200)


def test_sigkill_after_the_grace_period(fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    manifest = job_manifest("stubborn", ["python", "-c", stubborn], pod={"terminationGracePeriodSeconds": 1})
    client.BatchV1Api(fake_apiserver.client()).create_namespaced_job(NS, manifest)
    fake_apiserver.wait_for("jobs", NS, "stubborn", lambda j: bool(j and j["status"].get("ready")))
    (pod_name,) = fake_kubelet.pods_of("stubborn", NS)
    process = fake_kubelet.process(pod_name, NS)
    assert process is not None
    core = client.CoreV1Api(fake_apiserver.client())
    fake_apiserver.wait_for("pods", NS, pod_name, lambda p: core.read_namespaced_pod_log(pod_name, NS) == "up\n")
    started = time.monotonic()
    terminating = core.delete_namespaced_pod(pod_name, NS)
    assert terminating.metadata.deletion_timestamp is not None  # graceful: the pod stays while it terminates
    fake_apiserver.wait_for("pods", NS, pod_name, lambda p: p is None, timeout=10)
    assert process.wait(timeout=5) == -9 and 0.9 < time.monotonic() - started < 5
    job = fake_kubelet.wait_for_job("stubborn", NS)  # a deleted pod counts as a failure (backoffLimit 0)
    assert job["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"


def test_volumes_and_environment(fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer) -> None:
    core, batch = client.CoreV1Api(fake_apiserver.client()), client.BatchV1Api(fake_apiserver.client())
    core.create_namespaced_secret(NS, {"metadata": {"name": "creds"}, "stringData": {"key": "k1", "other": "o"}})
    core.create_namespaced_config_map(NS, {"metadata": {"name": "settings"}, "data": {"A": "1", "B": "2"}})
    script = (
        "import os, stat, sys\n"
        "secret, scratch = sys.argv[1:]\n"
        "print(sorted(os.listdir(secret)), oct(stat.S_IMODE(os.stat(os.path.join(secret, 'k')).st_mode)))\n"
        "print(os.path.isdir(scratch), os.environ['CFG_A'], os.environ['CFG_B'], os.environ['JOB'], os.environ['NS'])\n"
        "same = os.path.realpath(os.environ['HOME_DIR']) == os.getcwd()\n"
        "print(same, 'KUBERNETES_SERVICE_HOST' in os.environ, os.environ['EXTRA'])\n"
    )
    container = {
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "JOB", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['job-name']"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "HOME_DIR", "value": "/scratch"},
            {"name": "KUBERNETES_SERVICE_HOST", "value": "10.0.0.1"},
        ],
        "workingDir": "/scratch",
        "volumeMounts": [{"name": "secret", "mountPath": "/secret"}, {"name": "scratch", "mountPath": "/scratch"}],
    }
    volumes = [
        {"name": "secret", "secret": {"secretName": "creds", "items": [{"key": "key", "path": "k", "mode": 0o600}]}},
        {"name": "scratch", "emptyDir": {}},
    ]
    fake_kubelet.extra_env["EXTRA"] = "from-the-test"
    manifest = job_manifest(
        "env", ["python", "-c", script, "/secret", "/scratch"], pod={"volumes": volumes}, container=container
    )
    batch.create_namespaced_job(NS, manifest)
    job = fake_kubelet.wait_for_job("env", NS)
    (pod_name,) = fake_kubelet.pods_of("env", NS)
    log = core.read_namespaced_pod_log(pod_name, NS)
    assert job["status"].get("succeeded") == 1, log
    assert log == "['k'] 0o600\nTrue 1 2 env ns\nTrue False from-the-test\n"


def test_version_and_discovery(fake_apiserver: FakeApiServer) -> None:
    api = fake_apiserver.client()
    assert client.VersionApi(api).get_code().minor == "33"  # the client asks for /version/
    groups = client.ApisApi(api).get_api_versions()
    assert [g.name for g in groups.groups] == ["authorization.k8s.io", "batch", "rbac.authorization.k8s.io"]
    resources = client.BatchV1Api(api).get_api_resources()
    assert {r.name for r in resources.resources} == {"jobs", "jobs/status"}


# -- disruptions: eviction, podFailurePolicy, podReplacementPolicy ------------------

IGNORE_DISRUPTIONS = {
    "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
}
# Up at once, then slow to stop: SIGTERM is ignored until the grace period's SIGKILL.
SLOW_TO_STOP = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
)


def _running_pod(fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, job: str, index: int) -> str:
    """The name of the Job's ``index``-th pod, once its process has said it is up."""
    core = client.CoreV1Api(fake_apiserver.client())

    def running(_: Any) -> bool:
        made = fake_kubelet.pods_made(job, NS)
        pod = fake_apiserver.get("pods", NS, made[index]) if len(made) > index else None
        return bool(pod and pod["status"].get("phase") == "Running" and core.read_namespaced_pod_log(made[index], NS))

    fake_apiserver.wait_for("jobs", NS, job, running, timeout=20)
    return fake_kubelet.pods_made(job, NS)[index]


def test_eviction_marks_the_pod_and_the_failure_policy_replaces_it_once_it_stopped(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, batch: client.BatchV1Api
) -> None:
    manifest = job_manifest(
        "evicted", ["python", "-c", SLOW_TO_STOP], podFailurePolicy=IGNORE_DISRUPTIONS,
        pod={"terminationGracePeriodSeconds": 1},
    )  # fmt: skip
    batch.create_namespaced_job(NS, manifest)
    assert fake_apiserver.get("jobs", NS, "evicted")["spec"]["podReplacementPolicy"] == "Failed"  # type: ignore[index]
    first = _running_pod(fake_kubelet, fake_apiserver, "evicted", 0)
    fake_kubelet.evict(first, NS)
    evicted = fake_apiserver.get("pods", NS, first)
    assert evicted is not None and evicted["metadata"]["deletionTimestamp"]
    (condition,) = [c for c in evicted["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert (condition["status"], condition["reason"]) == ("True", "EvictionByEvictionAPI")
    second = _running_pod(fake_kubelet, fake_apiserver, "evicted", 1)
    assert fake_apiserver.get("pods", NS, first) is None  # gone before its replacement was made
    assert fake_kubelet.most_running_at_once("evicted", NS) == 1
    job = fake_apiserver.get("jobs", NS, "evicted")
    assert job is not None and not job["status"].get("failed")  # backoffLimit 0, and still running
    assert job_outcome(job) is None and fake_kubelet.pods_made("evicted", NS) == [first, second]


def test_without_a_failure_policy_an_evicted_pod_is_a_failure_and_overlaps_its_replacement(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, batch: client.BatchV1Api
) -> None:
    manifest = job_manifest(
        "overlap", ["python", "-c", SLOW_TO_STOP], backoffLimit=1, pod={"terminationGracePeriodSeconds": 30}
    )
    batch.create_namespaced_job(NS, manifest)
    first = _running_pod(fake_kubelet, fake_apiserver, "overlap", 0)
    fake_kubelet.evict(first, NS)
    _running_pod(fake_kubelet, fake_apiserver, "overlap", 1)  # TerminatingOrFailed: at once
    assert fake_apiserver.get("pods", NS, first) is not None  # the evicted pod still terminates
    assert fake_kubelet.most_running_at_once("overlap", NS) == 2
    assert fake_apiserver.get("jobs", NS, "overlap")["status"]["failed"] == 1  # type: ignore[index]
    client.CoreV1Api(fake_apiserver.client()).delete_namespaced_pod(first, NS, grace_period_seconds=0)


def test_fail_job_rule_on_an_exit_code(fake_kubelet: FakeKubelet, batch: client.BatchV1Api) -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    manifest = job_manifest("fatal", ["python", "-c", "raise SystemExit(42)"], backoffLimit=5, podFailurePolicy=policy)
    batch.create_namespaced_job(NS, manifest)
    job = fake_kubelet.wait_for_job("fatal", NS)
    assert (job["status"]["failed"], job["status"]["conditions"][-1]["reason"]) == (1, "PodFailurePolicy")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pod": {"restartPolicy": "OnFailure"}}, 'only "Never" is supported when podFailurePolicy is specified'),
        ({"podReplacementPolicy": "TerminatingOrFailed"}, 'Unsupported value: "TerminatingOrFailed"'),
    ],
)
def test_a_failure_policy_needs_restart_policy_never_and_replacement_failed(
    fake_apiserver: FakeApiServer, change: dict[str, Any], message: str
) -> None:
    manifest = job_manifest("bad", ["true"], podFailurePolicy=IGNORE_DISRUPTIONS, **change)
    status, body = post_raw(fake_apiserver, f"/apis/batch/v1/namespaces/{NS}/jobs", manifest)
    assert status == 422 and message in body["message"], body


def test_init_containers_are_accepted_and_reported_completed(
    fake_kubelet: FakeKubelet, fake_apiserver: FakeApiServer, batch: client.BatchV1Api
) -> None:
    init = {"name": "block-cloud-metadata", "image": "jupyterhub/k8s-network-tools:4.0.0", "command": ["iptables"]}
    batch.create_namespaced_job(NS, job_manifest("init", ["true"], pod={"initContainers": [init]}))
    fake_kubelet.wait_for_job("init", NS)
    (pod_name,) = fake_kubelet.pods_of("init", NS)
    pod = fake_apiserver.get("pods", NS, pod_name)
    assert pod is not None and pod["spec"]["initContainers"][0]["name"] == "block-cloud-metadata"
    (status,) = pod["status"]["initContainerStatuses"]
    assert (status["name"], status["state"]["terminated"]["reason"]) == ("block-cloud-metadata", "Completed")
    clash = job_manifest("clash", ["true"], pod={"initContainers": [{**init, "name": "driver"}]})
    code, body = post_raw(fake_apiserver, f"/apis/batch/v1/namespaces/{NS}/jobs", clash)
    assert code == 422 and 'spec.template.spec.containers[0].name: Duplicate value: "driver"' in body["message"]
