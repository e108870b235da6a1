"""`kbatch --dry-run` through the service (`POST /jobs?dry-run=1`): the
manifests a submit would create, built by the service from its policy and
alice's server pod, with nothing written to Kubernetes, no token minted and
nothing counted against her limits; a refusal is a submit's refusal. See
conftest.py for the servers; this module has a service of its own, so no other
job writes to the API server meanwhile."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml
from conftest import wait_for
from fakes.kube.notebook import NAMESPACE

from .conftest import MAX_CPUS, Service, User, run

pytestmark = pytest.mark.gateway

SECRET_VALUE = "s3cret-value-of-alice-0123456789"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"


@pytest.fixture(scope="module")
def service_settings() -> dict[str, str]:
    # One job started, none waiting: a second is refused (max-queued-jobs) rather than queued.
    return {"DASK_KBATCH__SERVICE__LIMITS__MAX_RUNNING_JOBS": "1", "DASK_KBATCH__SERVICE__LIMITS__MAX_QUEUED_JOBS": "0"}


def writes(service: Service) -> list[str]:
    return [f"{r.method} {r.path}" for r in service.server.requests() if r.method in WRITES]


def dry_run(user: User, *options: str) -> tuple[list[dict[str, Any]], str]:
    (user.home / "train.py").write_text("print('train')\n")
    proc = run(user, "--dry-run", *options, "train.py")
    assert proc.returncode == 0, proc.stderr
    return list(yaml.safe_load_all(proc.stdout)), proc.stdout


def test_a_dry_run_shows_what_the_service_would_create_and_creates_nothing(service: Service, alice: User) -> None:
    import kubernetes_validate

    alice.env["API_KEY"] = SECRET_VALUE  # exported, as every variable of her session is by default
    tokens = len(service.hub.tokens("alice"))
    before = writes(service)
    objects, out = dry_run(alice, "--dask-workers", "1", "--time", "10:00")
    assert writes(service) == before  # no create, patch or delete of anything
    assert len(service.hub.tokens("alice")) == tokens  # no hub token minted
    assert service.objects("jobs") == [] and service.objects("secrets") == []

    job, config_map, secret = objects
    assert [o["kind"] for o in objects] == ["Job", "ConfigMap", "Secret"]
    assert out.startswith("# kbatch --dry-run: the objects the kbatch-dask service would create")
    # Built by the service: its namespace, alice's server image, node selector and home claim, no token.
    assert job["metadata"]["namespace"] == secret["metadata"]["namespace"] == NAMESPACE
    assert job["metadata"]["labels"]["kbatch-dask.io/user"] == "alice"
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "kbatch-dask:test"
    assert pod["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}} in pod["volumes"]
    assert pod["automountServiceAccountToken"] is False
    assert config_map["data"]["train.py"] == "print('train')\n"  # the script as sent
    assert job["spec"]["activeDeadlineSeconds"] == 600 + 600  # --time + kbatch.kubernetes.start-margin
    assert job["spec"]["suspend"] is True
    # Keys only; the credential is not minted, and the hub token comes as the queue starts the job.
    assert {"API_KEY", "KBATCH_DASK_JOB_CREDENTIAL", "KBATCH_DASK_SERVICE_URL"} <= set(secret["data"])
    assert "JUPYTERHUB_API_TOKEN" not in secret["data"]
    assert set(secret["data"].values()) == {"<redacted>"}
    assert job["metadata"]["annotations"]["kbatch-dask.io/credential-sha256"] == "<minted at submit>"
    assert job["metadata"]["annotations"]["kbatch-dask.io/hub-token-at-start"] == "true"
    for value in (SECRET_VALUE, base64.b64encode(SECRET_VALUE.encode()).decode(), alice.token):
        assert value not in out
    for obj in objects:
        kubernetes_validate.validate(obj, "1.32", strict=True)


def test_a_dry_run_without_a_cluster_gets_no_hub_token(service: Service, alice: User) -> None:
    (job, _, secret), _ = dry_run(alice, "--dask-workers", "0")
    assert "JUPYTERHUB_API_TOKEN" not in secret["data"]
    assert "kbatch-dask.io/hub-token-at-start" not in job["metadata"]["annotations"]


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        (("--image", "evil/miner:1"), "image 'evil/miner:1' is not allowed here"),
        (("--cpus", "8"), f"--cpus 8 is over the limit kbatch.service.limits.max-cpus ({MAX_CPUS})"),
    ],
)
def test_a_refused_dry_run_is_the_same_refusal_as_a_submit(
    service: Service, alice: User, options: tuple[str, ...], refusal: str
) -> None:
    (alice.home / "hello.py").write_text("print('hello')\n")
    before = writes(service)
    dry = run(alice, "--dry-run", *options, "hello.py")
    real = run(alice, *options, "hello.py")
    assert (dry.returncode, dry.stderr) == (real.returncode, real.stderr) == (2, dry.stderr)
    (line,) = dry.stderr.strip().splitlines()
    assert line.startswith(f"Error: {refusal}"), line
    assert writes(service) == before


def test_dry_runs_count_against_no_limit_and_a_full_quota_refuses_them_alike(service: Service, alice: User) -> None:
    for _ in range(3):  # max-running-jobs is 1 and max-queued-jobs 0 here: dry runs are not jobs
        dry_run(alice, "--dask-workers", "0")
    (alice.home / "sleeper.py").write_text(SLEEPER)
    first = run(alice, "--parsable", "--dask-workers", "0", "sleeper.py")
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.strip().splitlines()[-1]
    try:
        dry = run(alice, "--dry-run", "--dask-workers", "0", "sleeper.py")
        real = run(alice, "--dask-workers", "0", "sleeper.py")
        assert dry.returncode == real.returncode == 2, dry.stderr
        assert dry.stderr == real.stderr and "max-queued-jobs (0)" in dry.stderr, dry.stderr
    finally:
        assert run(alice, "cancel", job_id).returncode == 0
    wait_for(lambda: service.objects("jobs") == [], timeout=60, what="the cancelled Job to go")


def test_the_http_answer_is_200_with_the_objects_and_notes(service: Service, alice: User) -> None:
    script = {"name": "hello.py", "content": base64.b64encode(b"print('hello')\n").decode()}
    body = {"spec": {"dask_workers": "0", "chdir": "/tmp"}, "script": script, "environment": {"K": SECRET_VALUE}}
    status, answer = alice.http("POST", service.api("/jobs?dry-run=1"), body)
    assert status == 200, answer
    assert [o["kind"] for o in answer["objects"]] == ["Job", "ConfigMap", "Secret"]
    assert answer["objects"][2]["data"]["K"] == "<redacted>"
    assert all(isinstance(line, str) and "\n" not in line for line in answer["notes"])
    assert SECRET_VALUE not in json.dumps(answer)
