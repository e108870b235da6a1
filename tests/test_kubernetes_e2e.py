"""The Kubernetes backend end to end: the real `kbatch` commands and the real
`kubernetes` client against the fake API server, the fake kubelet running the
driver pod as a local process, and a real embedded Dask-Gateway.

The submitting session looks like a JupyterHub notebook pod: ``HOSTNAME`` names
a notebook pod stored on the server, whose home volume (a PVC) the kubelet
backs with this test's home directory, so the job's pod writes its output file
where the test (the "notebook") reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.config
import pytest
import yaml
from conftest import ROOT, cluster_status, kbatch, wait_for
from kube.fake_apiserver import FakeApiServer
from kube.fake_kubelet import FakeKubelet
from kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
from kube.resources import POD

from kbatch_dask import gateway
from kbatch_dask.slugs import safe_slug
from kbatch_dask.spec import current_user

pytestmark = pytest.mark.gateway

NAMESPACE = "default"
IMAGE = "kbatch-dask:test"
K8S_VERSIONS = ("1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33")


@dataclass
class Session:
    """A notebook session on the fake cluster."""

    server: FakeApiServer
    kubelet: FakeKubelet
    home: Path
    env: dict[str, str]
    secret_values: tuple[str, ...]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
        return kbatch(*args, env=env or self.env, cwd=self.home, timeout=timeout)

    def submit(self, *args: str) -> str:
        proc = self.run("--backend", "kubernetes", "--parsable", *args)
        assert proc.returncode == 0, proc.stderr
        return str(proc.stdout.strip())

    def queue(self, *args: str) -> list[dict[str, Any]]:
        proc = self.run("queue", "--backend", "kubernetes", "-o", "json", *args)
        assert proc.returncode == 0, proc.stderr
        return list(json.loads(proc.stdout))

    def show(self, job_id: str) -> dict[str, Any]:
        proc = self.run("show", "--backend", "kubernetes", "-o", "json", job_id)
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    def job_name(self, job_id: str) -> str:
        return f"kbatch-{safe_slug(current_user())}-{job_id}"

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return self.server.objects(kind, NAMESPACE, "app.kubernetes.io/managed-by=kbatch-dask")


def notebook_pod(name: str, home: Path) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"component": "singleuser-server"}},
        "spec": {
            "containers": [
                {
                    "name": "notebook",
                    "image": IMAGE,
                    "volumeMounts": [
                        {"name": "home", "mountPath": str(home)},
                        {"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                    ],
                    "securityContext": {"runAsUser": os.getuid()},
                }
            ],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": "claim-user"}},
                {"name": "kube-api-access-abcde", "projected": {"sources": []}},
            ],
            "nodeSelector": {"hub.jupyter.org/node-purpose": "user"},
            "securityContext": {"fsGroup": 100},
        },
        "status": {"phase": "Running"},
    }


@pytest.fixture
def session(
    home: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kube_env: Path,  # noqa: F811
) -> Iterator[Session]:
    user_home = Path(os.environ["HOME"])
    with dask.config.set({"gateway.address": None}):  # the embedded gateway, whatever other tests configured
        settings = gateway.resolve(str(home), current_user(), start=True)
    assert settings is not None
    fake_apiserver.store.insert(POD, notebook_pod("jupyter-notebook", user_home))
    fake_kubelet.map_volume("claim-user", user_home)
    env = {
        **os.environ,
        **settings.env,
        "HOSTNAME": "jupyter-notebook",
        "JUPYTER_IMAGE_SPEC": IMAGE,
        "DASK_KBATCH__KUBERNETES__TERMINATION_GRACE": "20",
        "DASK_KBATCH__DRIVER__KILL_GRACE": "2",
    }
    secrets = (settings.env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"],)
    yield Session(fake_apiserver, fake_kubelet, user_home, env, secrets)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_hello_dask_runs_in_a_pod_with_its_own_cluster(session: Session) -> None:
    job_id = session.submit(str(ROOT / "examples" / "hello_dask.py"), "--dask-workers", "2")
    name = session.job_name(job_id)

    # Exactly one Job, with its ConfigMap and Secret owned by it.
    (job,) = session.objects("jobs")
    (config_map,) = session.objects("configmaps")
    (secret,) = session.objects("secrets")
    assert job["metadata"]["name"] == config_map["metadata"]["name"] == secret["metadata"]["name"] == name
    for owned in (config_map, secret):
        (owner,) = owned["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", name, job["metadata"]["uid"])
    text = json.dumps(job)
    assert not any(value in text for value in session.secret_values), "an env value is in the Job"
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}  # copied from the notebook pod
    assert pod_spec["containers"][0]["workingDir"] == str(session.home)

    done = session.kubelet.wait_for_job(name, timeout=120)
    annotations = done["metadata"]["annotations"]
    cluster = annotations["kbatch-dask.io/cluster"]
    assert annotations["kbatch-dask.io/dashboard"].endswith(f"/clusters/{cluster}/status")
    assert annotations["kbatch-dask.io/state"] == "SUCCEEDED"

    (record,) = session.queue()
    assert record["id"] == job_id and record["state"] == "SUCCEEDED" and record["exit_code"] == 0
    assert record["dask"]["cluster"] == cluster and record["dask"]["cluster_status"] in ("STOPPED", None)
    assert cluster_status(Path(os.environ["KBATCH_DASK_HOME"]), cluster) in (None, "STOPPED")

    output = Path(record["output"]).read_text()  # written by the pod onto the home volume
    assert "sum of squares of 0..999 = 332833500" in output
    logs = session.run("logs", "--backend", "kubernetes", job_id)
    assert logs.returncode == 0, logs.stderr
    assert "sum of squares of 0..999 = 332833500" in logs.stdout  # the pod's log
    assert f"cluster {cluster} stopped" in logs.stdout


def test_queue_shows_the_dashboard_while_running_and_cancel_removes_everything(session: Session) -> None:
    script = write(
        session.home / "forever.py",
        "import time\nfrom dask.distributed import get_client\n"
        "get_client().wait_for_workers(1, timeout=120)\nprint('ready', flush=True)\ntime.sleep(600)\n",
    )
    job_id = session.submit(script, "--dask-workers", "1")

    def running() -> dict[str, Any] | None:
        records = session.queue()
        ok = records and records[0]["state"] == "RUNNING" and (records[0]["dask"] or {}).get("dashboard")
        return records[0] if ok else None

    record = wait_for(running, timeout=120, interval=0.5, what="a running job with a dashboard")
    assert record["dask"]["cluster_status"] == "RUNNING"
    assert record["host"].startswith(session.job_name(job_id))
    cluster = record["dask"]["cluster"]

    proc = session.run("cancel", "--backend", "kubernetes", job_id)
    assert proc.returncode == 0, proc.stderr
    assert f"Job {job_id} CANCELLED" in proc.stdout
    for kind in ("jobs", "configmaps", "secrets"):
        assert session.objects(kind) == [], kind
    home = Path(os.environ["KBATCH_DASK_HOME"])
    wait_for(lambda: cluster_status(home, cluster) in (None, "STOPPED"), timeout=30, what="the cluster to stop")
    wait_for(lambda: not session.objects("pods"), timeout=30, what="the driver pod to go")


def test_a_job_over_its_time_limit_ends_timeout(session: Session) -> None:
    script = write(session.home / "slow.py", "import time\nprint('working', flush=True)\ntime.sleep(600)\n")
    job_id = session.submit(script, "--dask-workers", "0", "--time", "0:03")
    done = session.kubelet.wait_for_job(session.job_name(job_id), timeout=60)
    assert any(c["reason"] == "DeadlineExceeded" for c in done["status"]["conditions"])
    record = session.show(job_id)
    assert record["state"] == "TIMEOUT", record
    assert record["reason"] == "time limit of 3 s reached"


def test_a_driver_without_permission_to_annotate_still_runs_the_job(session: Session) -> None:
    session.server.deny("patch", "batch", "jobs", caller="pod")
    script = write(session.home / "hello.py", "print('hello from the pod')\n")
    job_id = session.submit(script, "--dask-workers", "0")
    done = session.kubelet.wait_for_job(session.job_name(job_id), timeout=60)
    assert "kbatch-dask.io/state" not in done["metadata"]["annotations"]
    assert session.show(job_id)["state"] == "SUCCEEDED"
    log = session.run("logs", "--backend", "kubernetes", job_id).stdout
    assert "hello from the pod" in log
    assert sum("cannot record progress" in line for line in log.splitlines()) == 1


def test_failed_and_oom_jobs(session: Session) -> None:
    failing = write(session.home / "fail.py", "import sys\nprint('bad', flush=True)\nsys.exit(3)\n")
    job_id = session.submit(failing, "--dask-workers", "0")
    session.kubelet.wait_for_job(session.job_name(job_id), timeout=60)
    record = session.show(job_id)
    assert (record["state"], record["exit_code"], record["reason"]) == ("FAILED", 3, "exit code 3")

    hog = write(session.home / "hog.py", "import time\nprint('eating memory', flush=True)\ntime.sleep(600)\n")
    job_id = session.submit(hog, "--dask-workers", "0")
    name = session.job_name(job_id)
    pod = wait_for(lambda: session.kubelet.pods_of(name) and session.kubelet.process(session.kubelet.pods_of(name)[0]))
    assert pod
    wait_for(lambda: "eating memory" in session.run("logs", "--backend", "kubernetes", job_id).stdout, timeout=30)
    session.kubelet.oom_kill(session.kubelet.pods_of(name)[0])
    session.kubelet.wait_for_job(name, timeout=60)
    assert session.show(job_id)["state"] == "OOM"


def test_dry_run_prints_the_exact_manifests_and_creates_nothing(session: Session) -> None:
    script = write(session.home / "train.py", "print('train')\n")
    proc = session.run("--backend", "kubernetes", "--dry-run", script, "--dask-workers", "2", "--time", "1:00:00")
    assert proc.returncode == 0, proc.stderr
    objects = list(yaml.safe_load_all(proc.stdout))
    assert [o["kind"] for o in objects] == ["Job", "ConfigMap", "Secret"]
    assert objects[0]["spec"]["activeDeadlineSeconds"] == 3600
    assert set(objects[2]["data"].values()) == {"<redacted>"}
    assert not any(value in proc.stdout for value in session.secret_values)
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for version in K8S_VERSIONS:
        for obj in objects[:2]:
            kubernetes_validate.validate(obj, version, strict=True)
    assert session.objects("jobs") == [] and session.server.requests("POST") == []


@pytest.mark.parametrize(
    ("case", "expected_code", "message"),
    [
        ("script over 1 MiB", 2, "home volume"),
        ("no image", 2, "--image"),
        ("403 on create job", 1, "refused to create jobs.batch in namespace 'default' (403 Forbidden"),
        ("403 on create secret", 1, "refused to create secrets in namespace 'default' (403 Forbidden"),
    ],
)
def test_refusals_give_one_clear_line_and_leave_nothing(
    session: Session, case: str, expected_code: int, message: str
) -> None:
    script = write(session.home / "job.py", "print('hi')\n")
    env = dict(session.env)
    if case == "script over 1 MiB":
        script = write(session.home / "big.py", "# " + "x" * (2 * 2**20) + "\nprint('hi')\n")
    elif case == "no image":
        for key in ("JUPYTER_IMAGE_SPEC", "JUPYTER_IMAGE", "HOSTNAME"):
            env.pop(key, None)
    elif case == "403 on create job":
        session.server.deny("create", "batch", "jobs")
    else:
        session.server.deny("create", "", "secrets")
    proc = session.run("--backend", "kubernetes", script, "--dask-workers", "0", env=env)
    assert proc.returncode == expected_code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], proc.stderr
    if proc.returncode == 1:
        assert "docs/kubernetes.md" in lines[0]
    for kind in ("jobs", "configmaps", "secrets", "pods"):
        assert session.objects(kind) == [], kind


def test_queue_of_a_thousand_jobs_makes_at_most_three_api_requests(session: Session) -> None:
    user = safe_slug(current_user())
    for i in range(1000):
        labels = {
            "app.kubernetes.io/managed-by": "kbatch-dask",
            "kbatch-dask.io/user": user,
            "kbatch-dask.io/job-id": f"s{i:04d}",
        }
        annotations = {"kbatch-dask.io/name": f"seeded-{i}", "kbatch-dask.io/script": "/home/x.py"}
        outcome = ("Complete", "Failed", "Running")[i % 3]
        session.server.seed_jobs(NAMESPACE, 1, labels=labels, annotations=annotations, outcome=outcome,
                                 name_prefix=f"kbatch-{user}-s{i:04d}-")  # fmt: skip
    session.server.clear_requests()
    records = session.queue("--all")
    assert len(records) == 1000
    states = {r["state"] for r in records}
    assert states == {"SUCCEEDED", "FAILED", "RUNNING"}
    api_requests = session.server.requests()
    assert len(api_requests) <= 3, [(r.method, r.path, r.query) for r in api_requests]
