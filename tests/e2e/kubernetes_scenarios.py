"""Scenarios of the Kubernetes backend, shared by the fake-cluster tests
(``test_kubernetes.py``) and the opt-in real-cluster tests
(``test_kubernetes_cluster.py``). Each drives the real ``kbatch`` commands
through a :class:`Session` and asserts what a user would notice."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from backends.kubernetes.versions import K8S_VERSIONS
from conftest import ROOT, kbatch, wait_for

from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.spec import current_user

MANAGED = "app.kubernetes.io/managed-by=kbatch-dask"


class Session:
    """A user's session on a cluster: runs the real CLI with ``env`` from ``home``."""

    def __init__(self, home: Path, env: dict[str, str], secret_values: tuple[str, ...] = ()) -> None:
        self.home = home
        self.env = env
        self.secret_values = secret_values

    # -- what differs between the fake and a real cluster ----------------------

    def objects(self, kind: str) -> list[dict[str, Any]]:
        """This user's kbatch-dask objects of ``kind`` (jobs, configmaps, secrets, pods)."""
        raise NotImplementedError

    def wait_done(self, job_id: str, timeout: float) -> dict[str, Any]:
        """The Job once it has a Complete or Failed condition."""
        raise NotImplementedError

    def cluster_stopped(self, name: str) -> bool:
        raise NotImplementedError

    def evict(self, pod: str) -> None:
        """Evict a pod as a node drain or cluster-autoscaler scale-down does (the Eviction API)."""
        raise NotImplementedError

    # -- the CLI ----------------------------------------------------------------

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
        return kbatch(*args, env=env or self.env, cwd=self.home, timeout=timeout)

    def submit(self, *args: str) -> str:
        proc = self.run("--backend", "kubernetes", "--parsable", *args)
        assert proc.returncode == 0, proc.stderr
        return str(proc.stdout.strip().splitlines()[-1])

    def queue(self, *args: str) -> list[dict[str, Any]]:
        proc = self.run("queue", "--backend", "kubernetes", "-o", "json", *args)
        assert proc.returncode == 0, proc.stderr
        return list(json.loads(proc.stdout))

    def show(self, job_id: str) -> dict[str, Any]:
        proc = self.run("show", "--backend", "kubernetes", "-o", "json", job_id)
        assert proc.returncode == 0, proc.stderr
        return dict(json.loads(proc.stdout))

    def logs(self, job_id: str, *args: str) -> str:
        proc = self.run("logs", "--backend", "kubernetes", *args, job_id)
        assert proc.returncode == 0, proc.stderr
        return str(proc.stdout)

    def job_name(self, job_id: str) -> str:
        return f"kbatch-{safe_slug(current_user())}-{job_id}"

    def write(self, name: str, text: str) -> str:
        path = self.home / name
        path.write_text(text)
        return str(path)


def poll_done(session: Session, job_id: str, timeout: float) -> dict[str, Any]:
    """Wait for a terminal state through ``kbatch show`` (any cluster)."""
    deadline = time.monotonic() + timeout
    while True:
        record = session.show(job_id)
        if record["state"] not in ("PENDING", "RUNNING"):
            return record
        assert time.monotonic() < deadline, f"job {job_id} still {record['state']} after {timeout} s"
        time.sleep(1)


# -- scenarios -------------------------------------------------------------------


def hello_dask(session: Session, timeout: float = 120) -> dict[str, Any]:
    """``kbatch examples/hello_dask.py --dask-workers 2``: one Job with its owned
    ConfigMap and Secret, no env value in the Job, the cluster recorded on the
    Job, SUCCEEDED in the queue, output in the log, the cluster stopped."""
    job_id = session.submit(str(ROOT / "examples" / "hello_dask.py"), "--dask-workers", "2")
    name = session.job_name(job_id)
    (job,) = [j for j in session.objects("jobs") if j["metadata"]["name"] == name]
    owned = [o for kind in ("configmaps", "secrets") for o in session.objects(kind) if o["metadata"]["name"] == name]
    assert len(owned) == 2
    for obj in owned:
        (owner,) = obj["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == ("Job", name, job["metadata"]["uid"])
    text = json.dumps(job)
    assert not any(value in text for value in session.secret_values), "an environment value is in the Job"

    done = session.wait_done(job_id, timeout)
    annotations = done["metadata"]["annotations"]
    cluster = annotations["kbatch-dask.io/cluster"]
    assert annotations["kbatch-dask.io/dashboard"].endswith(f"/clusters/{cluster}/status")
    (record,) = [r for r in session.queue() if r["id"] == job_id]
    assert (record["state"], record["exit_code"]) == ("SUCCEEDED", 0), record
    assert record["dask"]["cluster"] == cluster
    assert "sum of squares of 0..999 = 332833500" in session.logs(job_id)
    wait_for(lambda: session.cluster_stopped(cluster), timeout=30, what="the cluster to stop")
    return record


def dashboard_then_cancel(session: Session, timeout: float = 120) -> None:
    """A running job shows its dashboard; cancel removes its objects and stops its cluster."""
    script = session.write(
        "forever.py",
        "import time\nfrom dask.distributed import get_client\n"
        "get_client().wait_for_workers(1, timeout=120)\nprint('ready', flush=True)\ntime.sleep(600)\n",
    )
    job_id = session.submit(script, "--dask-workers", "1")

    def running() -> dict[str, Any] | None:
        mine = [r for r in session.queue() if r["id"] == job_id]
        ok = mine and mine[0]["state"] == "RUNNING" and (mine[0]["dask"] or {}).get("dashboard")
        return mine[0] if ok else None

    record = wait_for(running, timeout=timeout, interval=0.5, what="a running job with a dashboard")
    assert record["dask"]["cluster_status"] == "RUNNING"
    assert record["host"].startswith(session.job_name(job_id))
    proc = session.run("cancel", "--backend", "kubernetes", job_id)
    assert proc.returncode == 0, proc.stderr
    assert f"Job {job_id} CANCELLED" in proc.stdout
    name = session.job_name(job_id)

    def gone() -> bool:
        return not any(
            o["metadata"]["name"] == name for k in ("jobs", "configmaps", "secrets") for o in session.objects(k)
        )

    wait_for(gone, timeout=60, what="the Job, ConfigMap and Secret to go")
    wait_for(lambda: session.cluster_stopped(record["dask"]["cluster"]), timeout=60, what="the cluster to stop")


def time_limit(session: Session, timeout: float = 60) -> None:
    script = session.write("slow.py", "import time\nprint('working', flush=True)\ntime.sleep(600)\n")
    job_id = session.submit("--time", "0:03", script, "--dask-workers", "0")
    session.wait_done(job_id, timeout)
    record = session.show(job_id)
    assert (record["state"], record["reason"]) == ("TIMEOUT", "time limit of 3 s reached"), record


def time_limit_per_attempt(session: Session, timeout: float = 60) -> dict[str, Any]:
    """``--time`` is the driver's limit, counted from its start: a pod that is slow
    to start (scheduling, image pull) still runs its script, and the job ends
    TIMEOUT by the driver, not by the Job's deadline (``DeadlineExceeded``), which
    is only a backstop of (time + start margin) x attempts. Returns the Job."""
    script = session.write("slow.py", "import time\nprint('working', flush=True)\ntime.sleep(600)\n")
    job_id = session.submit("--time", "0:03", script, "--dask-workers", "0")
    done = session.wait_done(job_id, timeout)
    assert done["spec"]["activeDeadlineSeconds"] > 3
    reasons = [c.get("reason") for c in done["status"].get("conditions") or []]
    assert "DeadlineExceeded" not in reasons, done["status"]
    record = session.show(job_id)
    assert (record["state"], record["reason"]) == ("TIMEOUT", "time limit of 3 s reached"), record
    assert "working" in session.logs(job_id)
    return done


def cancel_shows_cancelled_until_the_pod_is_gone(session: Session, timeout: float = 120) -> None:
    """``kbatch cancel`` keeps the Job (deleted in the foreground) while its pod
    stops: the job is CANCELLED in ``show`` and the queue until the pod is gone,
    then the Job, ConfigMap and Secret go. The script ignores SIGTERM, so the
    driver waits its kill grace (10 s here) before it kills the script."""
    script = session.write(
        "stubborn.py",
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(600)\n",
    )
    job_id = session.submit("--env", "DASK_KBATCH__DRIVER__KILL_GRACE=10", script, "--dask-workers", "0")
    wait_for(lambda: "ready" in session.logs(job_id), timeout=timeout, interval=0.5, what="the script to run")
    proc = session.run("cancel", "--backend", "kubernetes", job_id)
    assert proc.returncode == 0, proc.stderr
    record = session.show(job_id)  # the pod still stops the script
    assert (record["state"], record["reason"]) == ("CANCELLED", "cancelled by user"), record
    (queued,) = [r for r in session.queue() if r["id"] == job_id]
    assert queued["state"] == "CANCELLED"
    name = session.job_name(job_id)
    (job,) = [j for j in session.objects("jobs") if j["metadata"]["name"] == name]
    assert job["metadata"].get("deletionTimestamp") and "foregroundDeletion" in job["metadata"]["finalizers"]

    def gone() -> bool:
        return not any(o["metadata"]["name"].startswith(name) for k in ("jobs", "pods") for o in session.objects(k))

    wait_for(gone, timeout=timeout, interval=0.5, what="the Job and its pod to go")


def exit_code(session: Session, timeout: float = 60) -> None:
    script = session.write("fail.py", "import sys\nprint('bad', flush=True)\nsys.exit(3)\n")
    job_id = session.submit(script, "--dask-workers", "0")
    session.wait_done(job_id, timeout)
    record = session.show(job_id)
    assert (record["state"], record["exit_code"], record["reason"]) == ("FAILED", 3, "exit code 3"), record


def resubmitted(session: Session, timeout: float = 60) -> tuple[str, str]:
    """``kbatch resubmit``: a new Job from the old one's ConfigMap, running the script
    as it was submitted (not the file as it is now) with its arguments; the old
    job untouched. The old and the new job's ids."""
    script = session.write("again.py", "import sys\nprint('first', sys.argv[1:], flush=True)\nsys.exit(3)\n")
    old = session.submit(script, "--dask-workers", "0", "x")
    session.wait_done(old, timeout)
    session.write("again.py", "print('edited')\n")
    proc = session.run("resubmit", "--backend", "kubernetes", "--parsable", old)
    assert proc.returncode == 0, proc.stderr
    new = str(proc.stdout.strip())
    assert new != old
    session.wait_done(new, timeout)
    record = session.show(new)
    assert (record["state"], record["exit_code"], record["args"], record["name"]) == ("FAILED", 3, ["x"], "again")
    assert session.logs(new).splitlines()[0] == "first ['x']"
    assert (session.show(old)["exit_code"], session.logs(old).splitlines()[0]) == (3, "first ['x']")
    return old, new


def evicted_then_replaced(session: Session, timeout: float = 120) -> dict[str, Any]:
    """An evicted job (``--retries 0``) runs again in a new pod, uncounted as a
    retry: it ends SUCCEEDED as attempt 1, the first driver stopped its cluster
    and wrote its note before the second started, which ran on a new cluster."""
    marker = session.home / "evicted.marker"
    script = session.write(
        "evictable.py",
        "import pathlib, time\nfrom dask.distributed import get_client\n"
        f"marker = pathlib.Path({str(marker)!r})\n"
        "get_client().wait_for_workers(1, timeout=120)\n"
        "if marker.exists():\n    print('second run', flush=True)\n"
        "else:\n    marker.write_text('x')\n    print('first run', flush=True)\n    time.sleep(600)\n",
    )
    job_id = session.submit(script, "--dask-workers", "1")
    wait_for(lambda: "first run" in session.logs(job_id), timeout=timeout, what="the first run")
    first = session.show(job_id)
    (pod,) = [p["metadata"]["name"] for p in session.objects("pods") if p["metadata"]["name"] == first["host"]]
    session.evict(pod)
    done = session.wait_done(job_id, timeout)
    record = session.show(job_id)
    assert (record["state"], record["attempt"]) == ("SUCCEEDED", 1), record
    assert not done["status"].get("failed"), done["status"]  # the eviction used up no retry
    assert record["host"] != pod and record["dask"]["cluster"] != first["dask"]["cluster"]
    assert session.cluster_stopped(first["dask"]["cluster"])
    lines = Path(record["output"]).read_text().splitlines()
    interrupted = (
        f"kbatch: job {job_id} interrupted: pod disrupted (EvictionByEvictionAPI); a new pod runs the job again"
    )
    assert lines.index("first run") < lines.index(interrupted) < lines.index("second run"), lines
    return record


def dry_run(session: Session) -> list[dict[str, Any]]:
    """The exact manifests as YAML, valid for every supported Kubernetes; nothing created."""
    import kubernetes_validate

    before = session.objects("jobs")
    script = session.write("train.py", "print('train')\n")
    proc = session.run("--backend", "kubernetes", "--dry-run", "--time", "1:00:00", script, "--dask-workers", "2")
    assert proc.returncode == 0, proc.stderr
    objects = list(yaml.safe_load_all(proc.stdout))
    assert [o["kind"] for o in objects] == ["Job", "ConfigMap", "Secret"]
    assert objects[0]["spec"]["activeDeadlineSeconds"] == 3600 + 600  # --time + kbatch.kubernetes.start-margin
    assert set(objects[2]["data"].values()) == {"<redacted>"}
    assert not any(value in proc.stdout for value in session.secret_values)
    for version in K8S_VERSIONS:
        for obj in objects[:2]:
            kubernetes_validate.validate(obj, version, strict=True)
    assert session.objects("jobs") == before
    return objects


def refused(session: Session, case: str, env: dict[str, str] | None = None) -> str:
    """A submission refused with one line, leaving nothing behind; returns the line."""
    before = {k: len(session.objects(k)) for k in ("jobs", "configmaps", "secrets")}
    script = session.write("job.py", "print('hi')\n")
    if case == "script over 1 MiB":
        script = session.write("big.py", "# " + "x" * (2 * 2**20) + "\nprint('hi')\n")
    proc = session.run("--backend", "kubernetes", script, "--dask-workers", "0", env=env)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert proc.returncode == (2 if case in ("script over 1 MiB", "no image", "rwo-home refuse") else 1), proc.stderr
    assert {k: len(session.objects(k)) for k in before} == before
    return str(lines[0])


# -- a home volume other nodes cannot mount (ReadWriteOnce) ----------------------------


def job_pod(session: Session, job_id: str) -> dict[str, Any]:
    """The job's (last) pod."""
    pods = [p for p in session.objects("pods") if p["metadata"]["labels"].get("kbatch-dask.io/job-id") == job_id]
    assert pods, f"job {job_id} has no pod"
    return max(pods, key=lambda p: str(p["metadata"]["creationTimestamp"]))


def read_write_once_home_pinned(session: Session, notebook_node: str, timeout: float = 120) -> dict[str, Any]:
    """The notebook's home claim is ReadWriteOnce (z2jh's default): the job's pod
    is pinned to the notebook's node by a required node affinity, so it mounts the
    claim beside the notebook instead of hanging in ContainerCreating on another
    node ("Multi-Attach error"); it runs and its output is in its log."""
    script = session.write("pinned.py", "print('ran beside the notebook', flush=True)\n")
    job_id = session.submit(script, "--dask-workers", "0")
    session.wait_done(job_id, timeout)
    record = session.show(job_id)
    assert record["state"] == "SUCCEEDED", record
    pod = job_pod(session, job_id)
    assert pod["spec"]["nodeName"] == notebook_node
    required = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    for term in required["nodeSelectorTerms"]:
        assert {"key": "metadata.name", "operator": "In", "values": [notebook_node]} in term["matchFields"]
    assert "ran beside the notebook" in session.logs(job_id)
    return record


def read_write_once_home_left_out(session: Session, claim: str, timeout: float = 120) -> dict[str, Any]:
    """With ``kbatch.kubernetes.rwo-home: without`` the job runs on any node without
    the home claim, submit says so in one warning, and the output reaches the
    user through ``kbatch logs`` (the pod's log)."""
    env = {**session.env, "DASK_KBATCH__KUBERNETES__RWO_HOME": "without"}
    script = session.write("without.py", "print('ran without the home volume', flush=True)\n")
    proc = session.run("--backend", "kubernetes", "--parsable", script, "--dask-workers", "0", env=env)
    assert proc.returncode == 0, proc.stderr
    (warning,) = [line for line in proc.stderr.splitlines() if line.startswith("Warning: ")]
    assert f"your volume {claim} (ReadWriteOnce" in warning and "kbatch logs" in warning, warning
    job_id = str(proc.stdout.strip().splitlines()[-1])
    session.wait_done(job_id, timeout)
    pod = job_pod(session, job_id)
    claims = [v for v in pod["spec"].get("volumes") or [] if "persistentVolumeClaim" in v]
    assert claims == [], claims
    required = ((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    assert not any(t.get("matchFields") for t in required.get("nodeSelectorTerms") or []), required
    record = session.show(job_id)
    assert (record["state"], record["output"]) == ("SUCCEEDED", None), record
    assert "ran without the home volume" in session.logs(job_id)
    return record
