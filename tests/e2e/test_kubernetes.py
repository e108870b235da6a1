"""The Kubernetes backend end to end: the real `kbatch` commands and the real
`kubernetes` client against the fake API server, the fake kubelet running the
driver pod as a local process, and a real embedded Dask-Gateway.

The submitting session looks like a JupyterHub notebook pod: ``HOSTNAME`` names
a notebook pod stored on the server, whose home volume (a PVC) the kubelet
backs with this test's home directory, so the job's pod writes its output file
where the test (the "notebook") reads it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.config
import pytest
from conftest import ROOT, assert_cluster_stopped_by_its_job, cluster_status, wait_for
from fakes.kube.fake_apiserver import FakeApiServer
from fakes.kube.fake_kubelet import FakeKubelet
from fakes.kube.fixtures import fake_apiserver, fake_kubelet, kube_env  # noqa: F401
from fakes.kube.notebook import NAMESPACE, notebook_session
from fakes.kube.resources import CONFIGMAP

from e2e import kubernetes_scenarios as scenarios
from e2e.kubernetes_scenarios import MANAGED, Session
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.backends.local.backend import LocalBackend
from kbatch_dask.spec import current_user

pytestmark = pytest.mark.gateway


class FakeSession(Session):
    """A notebook session on the fake cluster."""

    def __init__(self, server: FakeApiServer, kubelet: FakeKubelet, home: Path, env: dict[str, str],
                 secret_values: tuple[str, ...], gateway_home: Path) -> None:  # fmt: skip
        super().__init__(home, env, secret_values)
        self.server = server
        self.kubelet = kubelet
        self.gateway_home = gateway_home

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return self.server.objects(kind, NAMESPACE, MANAGED)

    def wait_done(self, job_id: str, timeout: float) -> dict[str, Any]:
        return self.kubelet.wait_for_job(self.job_name(job_id), timeout=timeout)

    def cluster_stopped(self, name: str) -> bool:
        return cluster_status(self.gateway_home, name) in (None, "STOPPED")

    def evict(self, pod: str) -> None:
        self.kubelet.evict(pod, NAMESPACE)


@pytest.fixture
def session(
    home: Path,
    fake_apiserver: FakeApiServer,  # noqa: F811
    fake_kubelet: FakeKubelet,  # noqa: F811
    kube_env: Path,  # noqa: F811
) -> Iterator[FakeSession]:
    user_home = Path(os.environ["HOME"])
    with dask.config.set({"gateway.address": None}):  # the embedded gateway, whatever other tests configured
        settings = LocalBackend(str(home)).gateway(start=True)
    assert settings is not None
    env = {**notebook_session(fake_apiserver, fake_kubelet, user_home), **settings.env}
    secrets = (settings.env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"],)
    yield FakeSession(fake_apiserver, fake_kubelet, user_home, env, secrets, Path(os.environ["KBATCH_DASK_HOME"]))


def test_resubmit_makes_a_new_job_from_the_configmap_and_refuses_once_it_is_gone(session: FakeSession) -> None:
    old, _ = scenarios.resubmitted(session)
    session.server.store.delete(CONFIGMAP, NAMESPACE, session.job_name(old))  # as the Job's TTL takes it
    jobs = len(session.objects("jobs"))
    proc = session.run("resubmit", "--backend", "kubernetes", old)
    assert proc.returncode == 2 and proc.stderr.startswith(f"Error: job {old} cannot be resubmitted: its script"), proc
    assert proc.stderr.count("\n") == 1 and len(session.objects("jobs")) == jobs


def test_hello_dask_runs_in_a_pod_with_its_own_cluster(session: FakeSession) -> None:
    record = scenarios.hello_dask(session)
    (job,) = session.objects("jobs")
    assert len(session.objects("configmaps")) == len(session.objects("secrets")) == 1
    pod_spec = job["spec"]["template"]["spec"]
    assert pod_spec["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}  # copied from the notebook pod
    assert pod_spec["containers"][0]["workingDir"] == str(session.home)  # the submit dir, on the home volume
    assert job["metadata"]["annotations"]["kbatch-dask.io/state"] == "SUCCEEDED"
    output = Path(record["output"]).read_text()  # written by the pod onto the home volume
    assert "sum of squares of 0..999 = 332833500" in output
    assert f"cluster {record['dask']['cluster']} stopped" in session.logs(record["id"])


def test_queue_shows_the_dashboard_while_running_and_cancel_removes_everything(session: FakeSession) -> None:
    scenarios.dashboard_then_cancel(session)
    wait_for(lambda: not session.objects("pods"), timeout=30, what="the driver pod to go")


def test_a_job_over_its_time_limit_ends_timeout(session: FakeSession) -> None:
    scenarios.time_limit(session)
    (job,) = session.objects("jobs")
    assert not any(c["reason"] == "DeadlineExceeded" for c in job["status"]["conditions"])  # the driver's limit


def test_a_driver_without_permission_to_annotate_still_runs_the_job(session: FakeSession) -> None:
    session.server.deny("patch", "batch", "jobs", caller="pod")
    script = session.write("hello.py", "print('hello from the pod')\n")
    job_id = session.submit(script, "--dask-workers", "0")
    done = session.kubelet.wait_for_job(session.job_name(job_id), timeout=60)
    assert "kbatch-dask.io/state" not in done["metadata"]["annotations"]
    assert session.show(job_id)["state"] == "SUCCEEDED"
    log = session.logs(job_id)
    assert "hello from the pod" in log
    assert sum("cannot record progress" in line for line in log.splitlines()) == 1


def test_failed_and_oom_jobs(session: FakeSession) -> None:
    scenarios.exit_code(session)
    hog = session.write("hog.py", "import time\nprint('eating memory', flush=True)\ntime.sleep(600)\n")
    job_id = session.submit(hog, "--dask-workers", "0")
    name = session.job_name(job_id)
    wait_for(lambda: "eating memory" in session.logs(job_id), timeout=30, what="the job to run")
    session.kubelet.oom_kill(session.kubelet.pods_of(name)[0])
    session.kubelet.wait_for_job(name, timeout=60)
    assert session.show(job_id)["state"] == "OOM"


def test_an_evicted_job_runs_again_in_one_new_pod_without_using_a_retry(session: FakeSession) -> None:
    record = scenarios.evicted_then_replaced(session)
    name = session.job_name(record["id"])
    assert len(session.kubelet.pods_made(name, NAMESPACE)) == 2
    assert session.kubelet.most_running_at_once(name, NAMESPACE) == 1  # never two drivers at a time


def test_dry_run_prints_the_exact_manifests_and_creates_nothing(session: FakeSession) -> None:
    objects = scenarios.dry_run(session)
    assert objects[0]["spec"]["template"]["spec"]["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    assert session.server.requests("POST") == []


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("script over 1 MiB", "home volume"),
        ("no image", "--image"),
        ("403 on create job", "refused to create jobs.batch in namespace 'default' (403 Forbidden"),
        ("403 on create secret", "refused to create secrets in namespace 'default' (403 Forbidden"),
    ],
)
def test_refusals_give_one_clear_line_and_leave_nothing(session: FakeSession, case: str, message: str) -> None:
    env = dict(session.env)
    if case == "no image":
        for key in ("JUPYTER_IMAGE_SPEC", "JUPYTER_IMAGE", "HOSTNAME"):
            env.pop(key, None)
    elif case == "403 on create job":
        session.server.deny("create", "batch", "jobs")
    elif case == "403 on create secret":
        session.server.deny("create", "", "secrets")
    line = scenarios.refused(session, case, env)
    assert message in line
    if case.startswith("403"):
        assert "`kbatch doctor` lists the permissions jobs need" in line
    assert session.objects("pods") == []


def test_queue_of_a_thousand_jobs_makes_at_most_three_api_requests(session: FakeSession) -> None:
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


def test_mail_asked_of_the_direct_backend_is_a_warning_not_silence(session: FakeSession) -> None:
    script = session.write("mailed.py", "print('done', flush=True)\n")
    proc = session.run("--backend", "kubernetes", "--parsable", "--mail-type", "ALL", script, "--dask-workers", "0")
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings == [
        "Warning: --mail-type BEGIN,END,FAIL: the kubernetes backend sends no mail; "
        "the kbatch-dask service does (--backend hub)"
    ]
    session.wait_done(proc.stdout.strip().splitlines()[-1], 60)


def test_logs_follow_the_pod_and_fall_back_to_the_output_file(session: FakeSession) -> None:
    script = session.write(
        "ticker.py",
        "import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.5)\n",
    )
    job_id = session.submit(script, "--dask-workers", "0")
    proc = session.run("logs", "--backend", "kubernetes", "--follow", job_id, timeout=60)
    assert proc.returncode == 0, proc.stderr
    ticks = [line for line in proc.stdout.splitlines() if line.startswith("tick")]
    assert ticks == [f"tick {i}" for i in range(4)]
    assert session.show(job_id)["state"] == "SUCCEEDED"  # -f returned because the job ended

    from kubernetes import client

    (pod,) = session.kubelet.pods_of(session.job_name(job_id))
    client.CoreV1Api(session.server.client()).delete_namespaced_pod(pod, NAMESPACE)
    wait_for(lambda: not session.objects("pods"), timeout=30, what="the pod to go")
    assert session.logs(job_id).count("tick ") == 4  # from the output file on the home volume


def test_a_notebook_runs_in_a_pod_and_wait_returns_its_exit_code(session: FakeSession) -> None:
    pytest.importorskip("papermill")
    import nbformat

    proc = session.run(
        "--backend", "kubernetes", "-p", "alpha", "0.5", "-p", "label", "nightly", "--wait",
        str(ROOT / "examples" / "analysis.ipynb"), "--dask-workers", "2", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[2]
    executed = nbformat.read(session.home / f"analysis-{job_id}.ipynb", as_version=4)
    outputs = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "label=nightly alpha=0.5 cluster=" in outputs
    assert "workers = 2" in outputs


FUNCTION_JOB = """
from kbatch_dask import submit_with_cluster


def total(n, scale=1):
    import dask.bag as db

    return db.range(n, npartitions=4).map(lambda x: x * scale).sum().compute()


def boom():
    raise ValueError("boom inside the pod")


job = submit_with_cluster(total, 100, kwargs={"scale": 2}, n_workers=1, backend="kubernetes")
print("result", job.result(timeout=120))
job = submit_with_cluster(boom, n_workers=0, backend="kubernetes")
try:
    job.result(timeout=120)
except ValueError as exc:
    print("raised", exc)
"""


def test_a_function_runs_in_a_pod_and_returns_its_result(session: FakeSession) -> None:
    script = session.write("function_job.py", FUNCTION_JOB)
    proc = subprocess.run([sys.executable, script], env=session.env, cwd=session.home, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "result 9900" in proc.stdout
    assert "raised boom inside the pod" in proc.stdout


CONNECT = (
    "from dask.distributed import get_client\n"
    "get_client().wait_for_workers(1, timeout=60)\n"
    "print('started', flush=True)\n"
)


@pytest.mark.parametrize(
    ("body", "exit_code", "reason"),
    [
        ("raise ValueError('boom')", 1, "exit code 1"),
        ("import sys; sys.exit(3)", 3, "exit code 3"),
        ("import os; os._exit(4)", 4, "exit code 4"),
        ("import ctypes; ctypes.string_at(0)", 139, "killed by signal 11 (SIGSEGV)"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137, "killed by signal 9 (SIGKILL)"),
    ],
    ids=["raise", "sys.exit", "os._exit", "segfault", "sigkill"],
)
def test_faults_in_the_pod_fail_the_job_and_stop_its_cluster(
    session: FakeSession, body: str, exit_code: int, reason: str
) -> None:
    script = session.write("fault.py", CONNECT + body + "\n")
    job_id = session.submit(script, "--dask-workers", "1")
    session.wait_done(job_id, timeout=90)
    record = session.show(job_id)
    assert (record["state"], record["exit_code"], record["reason"]) == ("FAILED", exit_code, reason), record
    assert_cluster_stopped_by_its_job(session.gateway_home, record["dask"]["cluster"])


def test_driver_killed_in_the_pod_cluster_stopped_by_the_dead_mans_switch(session: FakeSession) -> None:
    script = session.write("victim.py", CONNECT + "import time\ntime.sleep(300)\n")
    job_id = session.submit(script, "--dask-workers", "1")
    wait_for(lambda: "started" in session.logs(job_id), timeout=60, what="the script to start")
    cluster = session.show(job_id)["dask"]["cluster"]
    (pod,) = session.kubelet.pods_of(session.job_name(job_id))
    driver = session.kubelet.process(pod)
    assert driver is not None
    driver.kill()  # SIGKILL to the pod's PID 1: no cleanup code runs in the pod
    wait_for(lambda: session.cluster_stopped(cluster), timeout=15, what="the dead-man's switch to stop the cluster")
    session.wait_done(job_id, timeout=30)
    assert session.show(job_id)["state"] == "FAILED"


def test_an_oom_kill_of_the_whole_container_ends_oom_and_the_switch_stops_the_cluster(session: FakeSession) -> None:
    """cgroup v2 OOM-kills the whole container, driver included: no cleanup runs in
    the pod, yet the job ends OOM (from the pod's status) and its cluster stops."""
    script = session.write("hog.py", CONNECT + "import time\ntime.sleep(300)\n")
    job_id = session.submit("--memory", "1Gi", script, "--dask-workers", "1")
    wait_for(lambda: "started" in session.logs(job_id), timeout=60, what="the script to start")
    cluster = session.show(job_id)["dask"]["cluster"]
    (pod,) = session.kubelet.pods_of(session.job_name(job_id))
    driver = session.kubelet.process(pod)
    session.kubelet.oom_kill(pod)
    assert driver is not None and driver.wait(timeout=10) == -9  # the supervisor died with the script
    wait_for(lambda: session.cluster_stopped(cluster), timeout=15, what="the dead-man's switch to stop the cluster")
    job = session.wait_done(job_id, timeout=30)
    assert "kbatch-dask.io/state" not in job["metadata"]["annotations"]  # the driver recorded no end
    record = session.show(job_id)
    assert (record["state"], record["exit_code"], record["reason"]) == (
        "OOM", 137, "memory limit of 1Gi exceeded (OOMKilled)",
    ), record  # fmt: skip


def test_logs_tail_and_stderr_and_show_of_the_jobs_spec(session: FakeSession) -> None:
    script = session.write(
        "noisy.py",
        "import sys\nfor i in range(5):\n    print('line', i, flush=True)\n"
        "print('warning: row 7', file=sys.stderr, flush=True)\nraise ValueError('bad row 7')\n",
    )
    job_id = session.submit("-e", "noisy-%j.err", "-t", "10:00", script, "--dask-workers", "0")
    session.wait_done(job_id, timeout=60)
    record = session.show(job_id)
    assert record["state"] == "FAILED", record
    error = str(session.home / f"noisy-{job_id}.err")
    assert (record["error"], record["workdir"], record["time_limit"], record["attempt"]) == (
        error, str(session.home), 600, 1,
    )  # fmt: skip

    log = session.logs(job_id)
    assert "line 4" in log and "ValueError: bad row 7" in log  # a pod has one log: stdout and stderr
    assert session.logs(job_id, "--tail", "2") == "".join(log.splitlines(keepends=True)[-2:])
    assert session.server.requests("GET", "/log")[-1].query.get("tailLines") == "2"
    stderr = session.logs(job_id, "--stderr")
    assert "Traceback" in stderr and "ValueError: bad row 7" in stderr and "line 0" not in stderr
    assert session.logs(job_id, "--stderr", "--tail", "1") == stderr.splitlines(keepends=True)[-1]

    fields = dict(
        line.split(None, 1) for line in session.run("show", "--backend", "kubernetes", job_id).stdout.splitlines()
    )
    assert (fields["time_limit"], fields["error"], fields["attempt"]) == ("10:00", error, "1")


def test_output_naming_a_directory_fails_the_job_in_its_pod(session: FakeSession) -> None:
    # Only the pod can see its volumes: the submitting session refuses what the spec alone says.
    (session.home / "results").mkdir()
    script = session.write("s.py", "print('lost?')\n")
    job_id = session.submit("-o", "results", script, "--dask-workers", "0")
    session.wait_done(job_id, timeout=60)
    record = session.show(job_id)
    assert record["state"] == "FAILED", record
    # The reason names the file as the pod sees it (the fake kubelet roots each pod in a folder of its own).
    assert record["reason"].startswith("cannot write the output file "), record
    assert record["reason"].endswith(f"{session.home / 'results'}: Is a directory"), record
    assert "lost?" not in session.logs(job_id)  # the script never ran

    proc = session.run("--backend", "kubernetes", "-o", "results/", script, "--dask-workers", "0")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "names a directory" in proc.stderr
