"""The kbatch-dask service end to end: alice's jobs through `kbatch --backend
auto` (kbatch.service.url set), bob kept out of them, the admin's policy, and
bad HTTP input. See conftest.py for the servers."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import pytest
from conftest import wait_for

from e2e.hub.servers import http

from .conftest import MAX_CPUS, Service, User, run

pytestmark = pytest.mark.gateway

SCRIPT = """\
import dask.bag as db
from dask.distributed import get_client

get_client().wait_for_workers(1, timeout=60)
print("total", db.range(100, npartitions=4).sum().compute(), flush=True)
"""
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"


def submit(user: User, name: str, text: str, *options: str) -> str:
    (user.home / name).write_text(text)
    proc = run(user, "--parsable", *options, name)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def show(user: User, job_id: str) -> dict[str, Any]:
    proc = run(user, "show", "-o", "json", job_id)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def body(**fields: Any) -> dict[str, Any]:
    script = {"name": "hello.py", "content": base64.b64encode(b"print('hello')\n").decode()}
    return {"spec": {"dask_workers": "0", "chdir": "/tmp"}, "script": script, **fields}


def test_alice_runs_a_script_with_a_cluster_and_sees_it_in_queue_and_logs(service: Service, alice: User) -> None:
    job_id = submit(alice, "train.py", SCRIPT, "--dask-workers", "1", "-t", "10:00")
    proc = run(alice, "wait", job_id, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = show(alice, job_id)
    assert (record["state"], record["backend"], record["user"]) == ("SUCCEEDED", "hub", "alice")
    assert record["script"] == "train.py"
    assert "total 4950" in run(alice, "logs", job_id).stdout
    assert "total 4950" in (alice.home / f"kbatch-{job_id}.out").read_text()  # the pod wrote it onto her home
    queued = json.loads(run(alice, "queue", "--all", "-o", "json").stdout)
    assert job_id in [r["id"] for r in queued]
    # Built server-side: her server pod's node selector, the service's driver command, the owner's label.
    (job,) = [j for j in service.objects("jobs") if j["metadata"]["labels"]["kbatch-dask.io/job-id"] == job_id]
    assert job["metadata"]["labels"]["kbatch-dask.io/user"] == "alice"
    assert job["spec"]["template"]["spec"]["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "kbatch-dask:test"  # @server


def test_alice_cancels_a_running_job(service: Service, alice: User) -> None:
    job_id = submit(alice, "sleeper.py", SLEEPER, "--dask-workers", "0")
    wait_for(lambda: "sleeping" in run(alice, "logs", job_id).stdout, timeout=60, what="the job to run")
    proc = run(alice, "cancel", job_id)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"Job {job_id} CANCELLED"), proc.stderr
    # As with the direct backend, the Job (and its pod, ConfigMap, Secret) goes once
    # its pod has stopped (foreground deletion; tests/e2e/test_kubernetes_semantics.py).
    wait_for(
        lambda: job_id not in [j["metadata"]["labels"]["kbatch-dask.io/job-id"] for j in service.objects("jobs")],
        timeout=60,
        what="the cancelled Job to go",
    )


def test_bob_gets_404_for_alice_jobs_and_sees_none_of_them(service: Service, alice: User, bob: User) -> None:
    job_id = submit(alice, "quick.py", "print('mine')\n", "--dask-workers", "0")
    missing = bob.http("GET", service.api("/jobs/zzzzz"))
    assert missing[0] == 404
    for method, path in (("GET", ""), ("GET", "/logs"), ("GET", "/result"), ("DELETE", "")):
        answer = bob.http(method, service.api(f"/jobs/{job_id}{path}"))
        assert answer == (404, {"error": missing[1]["error"].replace("zzzzz", job_id)})
    for args in (("show", job_id), ("logs", job_id), ("cancel", job_id)):
        proc = run(bob, *args)
        assert proc.returncode != 0 and f"no job '{job_id}'" in proc.stderr, proc.stderr
    assert json.loads(run(bob, "queue", "--all", "-o", "json").stdout) == []
    assert bob.http("GET", service.api("/jobs?all=1"))[0] == 400  # not an admin
    assert show(alice, job_id)["state"] != "CANCELLED"


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        (("--image", "evil/miner:1"), "image 'evil/miner:1' is not allowed here"),
        (("--cpus", "8"), f"--cpus 8 is over the limit kbatch.service.limits.max-cpus ({MAX_CPUS})"),
        (("--dask-workers", "5"), "--dask-workers 5 is over the limit kbatch.service.limits.max-dask-workers"),
    ],
)
def test_a_policy_refusal_is_one_error_line_exit_2_and_creates_nothing(
    service: Service, alice: User, options: tuple[str, ...], refusal: str
) -> None:
    before = len(service.objects("jobs"))
    (alice.home / "hello.py").write_text("print('hello')\n")
    proc = run(alice, *options, "hello.py")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"Error: {refusal}"), line
    assert len(service.objects("jobs")) == before


def _raw(method: str, url: str, token: str | None, data: bytes) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"token {token}"} if token else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method, headers=headers)) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "the request body: expected a JSON object"),
        (json.dumps(body(spec={"cpus": [1]})).encode(), 400, "spec.cpus: expected a string or a number"),
        (json.dumps(body(spec={"memory": "4GG", "chdir": "/tmp"})).encode(), 400, "--memory '4GG': expected a size"),
        (json.dumps(body(spec={"pod_spec": {}})).encode(), 400, "unknown field spec.'pod_spec'"),
        (json.dumps(body(volumes=[])).encode(), 400, "unknown field 'volumes'"),
        (json.dumps(body(script={"name": "x.py", "content": "%%%"})).encode(), 400, "script.content: not valid base64"),
        (json.dumps(body(script={"name": "x.py", "content": "A" * 200_000})).encode(), 413, "over 100000 bytes"),
    ],
)
def test_bad_submissions_are_one_json_error_and_create_nothing(
    service: Service, alice: User, data: bytes, status: int, says: str
) -> None:
    before = len(service.objects("jobs")) + len(service.objects("secrets"))
    answer = _raw("POST", service.api("/jobs"), alice.token, data)
    assert answer[0] == status and says in answer[1]["error"], answer
    assert "\n" not in answer[1]["error"] and "Traceback" not in answer[1]["error"]
    assert len(service.objects("jobs")) + len(service.objects("secrets")) == before


def test_tokens_missing_wrong_or_without_the_scope_are_refused(service: Service, alice: User) -> None:
    assert http("GET", service.api("/jobs"))[0] == 401
    assert http("GET", service.api("/jobs"), "not-a-token")[0] == 401
    gateway_only = service.hub.new_token("alice", ["access:services!service=dask-gateway"])["token"]
    status, answer = http("GET", service.api("/jobs"), gateway_only)
    assert status == 403 and "access:services!service=kbatch-dask" in answer["error"]
    assert http("GET", service.api("/health"))[0] == 200  # no auth, no user data


@pytest.mark.parametrize("job_id", ["..", "..%2F..%2Fsecrets", "%2E%2E", "ALICE", "a" * 300, "k3x9q%00"])
def test_path_tricks_in_ids_are_404(service: Service, alice: User, job_id: str) -> None:
    status, answer = alice.http("GET", service.api(f"/jobs/{job_id}"))
    assert status == 404 and set(answer) == {"error"}, (status, answer)


def test_who_am_i(service: Service, alice: User) -> None:
    status, answer = alice.http("GET", service.api("/"))
    assert status == 200 and answer["user"] == "alice" and answer["admin"] is False
    assert answer["limits"]["max-cpus"] == float(MAX_CPUS) and "v1" in answer["api"]


def test_doctor_checks_the_service_its_version_and_policy(service: Service, alice: User) -> None:
    proc = run(alice, "doctor")
    assert "service: " in proc.stdout and "answers as hub user alice" in proc.stdout, proc.stdout + proc.stderr
    assert "service version: " in proc.stdout and "API v1" in proc.stdout
    assert f"max-cpus {float(MAX_CPUS):g}" in proc.stdout and "images @server, pangeo/*" in proc.stdout


def test_doctor_says_which_scope_a_token_without_it_needs(service: Service, alice: User) -> None:
    token = str(service.hub.new_token("alice", ["access:services!service=dask-gateway"])["token"])
    proc = run(User(alice.name, alice.home, token, {**alice.env, "JUPYTERHUB_API_TOKEN": token}), "doctor")
    assert proc.returncode != 0
    assert "refused this session's token (403)" in proc.stdout, proc.stdout + proc.stderr
    assert "fix: the token needs the scope access:services!service=kbatch-dask" in proc.stdout


def _get_jobs(user: User, url: str, etag: str | None = None) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"token {user.token}", **({"If-None-Match": etag} if etag else {})}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=15) as resp:
            return resp.status, resp.headers["ETag"], resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["ETag"], exc.read()


def test_an_unchanged_queue_is_a_304_and_a_changed_one_a_new_etag(service: Service, alice: User) -> None:
    url = service.api("/jobs")
    status, etag, listed = _get_jobs(alice, url)
    assert status == 200 and etag and json.loads(listed)["jobs"] is not None
    assert _get_jobs(alice, url, etag)[:2] == (304, etag)
    job_id = submit(alice, "tagged.py", "print('tagged')\n", "--dask-workers", "0")
    status, changed, listed = _get_jobs(alice, url, etag)
    assert status == 200 and changed != etag
    assert job_id in [j["id"] for j in json.loads(listed)["jobs"]]
