"""Resubmit through the service (``POST /jobs/{id}/resubmit``, ``kbatch resubmit``
with ``--backend hub``): a new job from the spec and script snapshot of the old
Job's own ConfigMap, or of the service's archive once the ConfigMap went with
its Job, through the same validation and policy as a submission; another
user's job is a missing one; a job whose snapshot is gone from both is a 409.
See conftest.py for the servers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import kbatch, wait_for
from fakes.kube.notebook import NAMESPACE
from fakes.kube.resources import CONFIGMAP

from kbatch_dask.backends.kubernetes import manifests as m

from .conftest import MAX_CPUS, Service, User, run

pytestmark = pytest.mark.gateway

SCRIPT = """\
import os, sys
print("version 1", sys.argv[1:], os.environ.get("FLAVOUR"), flush=True)
raise SystemExit(3)
"""


def ended(user: User, job_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record: dict[str, Any] = json.loads(run(user, "show", "-o", "json", job_id).stdout)
        return record if record["state"] not in ("PENDING", "RUNNING") else None

    return dict(wait_for(check, timeout=120, what=f"job {job_id} to end"))


def submitted(user: User, *args: str) -> str:
    proc = run(user, "--parsable", "--dask-workers", "0", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def jobs_of(service: Service, user: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in service.objects("jobs") if j["metadata"]["name"].startswith(user))


def test_kbatch_resubmit_runs_the_snapshot_again_with_its_options_as_a_new_job(service: Service, alice: User) -> None:
    script = alice.home / "flaky.py"
    script.write_text(SCRIPT)
    old = submitted(alice, "-J", "flaky", "--cpus", "1", "flaky.py", "a", "b")
    first = ended(alice, old)
    assert (first["state"], first["exit_code"]) == ("FAILED", 3)
    script.write_text("print('version 2: the file as it is now')\n")

    # The environment is the resubmitting session's (the old job's Secret is never read back).
    proc = kbatch("resubmit", old, env={**alice.env, "FLAVOUR": "mint"}, cwd=alice.home)
    assert proc.returncode == 0, proc.stderr
    new = proc.stdout.split()[2]
    assert new != old and proc.stdout.startswith(f"Submitted job {new} (flaky); output: ")
    again = ended(alice, new)
    assert (again["state"], again["exit_code"], again["name"], again["args"]) == ("FAILED", 3, "flaky", ["a", "b"])
    assert (again["backend"], again["user"], again["script"], again["cpus"]) == ("hub", "alice", "flaky.py", 1)
    assert run(alice, "logs", new).stdout.splitlines()[0] == "version 1 ['a', 'b'] mint"
    before = {k: first[k] for k in ("state", "exit_code", "submitted", "finished", "output")}
    assert {k: v for k, v in ended(alice, old).items() if k in before} == before  # the old job untouched
    assert run(alice, "logs", old).stdout.splitlines()[0] == "version 1 ['a', 'b'] None"


@pytest.fixture(scope="module")
def old_job(alice: User) -> str:
    (alice.home / "quick.py").write_text("print('quick')\n")
    job_id = submitted(alice, "quick.py")
    ended(alice, job_id)
    return job_id


def test_the_resubmit_route_answers_201_with_the_new_job(service: Service, alice: User, old_job: str) -> None:
    status, answer = alice.http("POST", service.api(f"/jobs/{old_job}/resubmit"), {"environment": {"A": "1"}})
    assert status == 201, answer
    assert answer["id"] != old_job and (answer["user"], answer["script"]) == ("alice", "quick.py")
    assert ended(alice, answer["id"])["state"] == "SUCCEEDED"


def test_another_users_job_is_404_like_a_missing_one(service: Service, alice: User, bob: User, old_job: str) -> None:
    before = jobs_of(service, "kbatch-alice")
    status, answer = bob.http("POST", service.api(f"/jobs/{old_job}/resubmit"))
    missing = bob.http("POST", service.api("/jobs/zzzzz/resubmit"))
    assert (status, answer) == (404, {"error": missing[1]["error"].replace("zzzzz", old_job)})
    assert missing[0] == 404
    assert jobs_of(service, "kbatch-alice") == before


def test_a_bad_body_is_400_and_creates_nothing(service: Service, alice: User, old_job: str) -> None:
    before = jobs_of(service, "kbatch-alice")
    status, answer = alice.http("POST", service.api(f"/jobs/{old_job}/resubmit"), {"spec": {"cpus": "9"}})
    assert (status, answer) == (400, {"error": 'the request body: expected nothing, or {"environment": {...}}'})
    status, answer = alice.http("POST", service.api(f"/jobs/{old_job}/resubmit"), {"environment": {"A": 1}})
    assert (status, answer) == (400, {"error": "environment.A: expected a string, got a number"})
    assert jobs_of(service, "kbatch-alice") == before


def test_a_snapshot_over_the_policy_is_refused_403(service: Service, alice: User) -> None:
    """What the ConfigMap holds goes through the policy again, as a submission's spec does."""
    (alice.home / "policy.py").write_text("print('policy')\n")
    job_id = submitted(alice, "policy.py")
    name = m.job_name("alice", job_id)
    config_map = service.server.get("configmaps", NAMESPACE, name)
    assert config_map is not None
    spec = json.loads(config_map["data"][m.SPEC_KEY])
    spec["cpus"] = int(MAX_CPUS) * 4
    service.server.store.patch(
        CONFIGMAP, NAMESPACE, name, "application/merge-patch+json", {"data": {m.SPEC_KEY: json.dumps(spec)}}
    )
    before = jobs_of(service, "kbatch-alice")
    status, answer = alice.http("POST", service.api(f"/jobs/{job_id}/resubmit"))
    assert status == 403 and "--cpus 8" in answer["error"], answer
    assert jobs_of(service, "kbatch-alice") == before


def test_a_cancelled_job_whose_job_and_configmap_are_gone_resubmits_from_the_archive(
    service: Service, alice: User
) -> None:
    (alice.home / "long.py").write_text("import sys, time\nprint('long', sys.argv[1:], flush=True)\ntime.sleep(600)\n")
    job_id = submitted(alice, "long.py", "first")
    assert run(alice, "cancel", job_id).returncode == 0
    name = m.job_name("alice", job_id)
    wait_for(lambda: service.server.get("configmaps", NAMESPACE, name) is None, what="the ConfigMap to go with the Job")
    assert ended(alice, job_id)["state"] == "CANCELLED"
    proc = run(alice, "resubmit", "--parsable", job_id)
    assert proc.returncode == 0, proc.stderr
    new = proc.stdout.strip()
    wait_for(lambda: "long ['first']" in run(alice, "logs", new).stdout, 120, what="the new job to run the old script")
    assert run(alice, "cancel", new).returncode == 0


def test_a_job_whose_snapshot_is_gone_is_409_in_one_line(service: Service, alice: User) -> None:
    (alice.home / "gone.py").write_text("print('gone')\n")
    job_id = submitted(alice, "gone.py")
    ended(alice, job_id)
    service.server.store.delete(CONFIGMAP, NAMESPACE, m.job_name("alice", job_id))
    (service.workdir / "kbatch-dask-archive" / f"{m.job_name('alice', job_id)}.snapshot").unlink()
    before = jobs_of(service, "kbatch-alice")
    status, answer = alice.http("POST", service.api(f"/jobs/{job_id}/resubmit"))
    assert status == 409 and set(answer) == {"error"} and "\n" not in answer["error"], answer
    assert answer["error"].startswith(f"job {job_id} cannot be resubmitted: its script snapshot is gone")
    assert jobs_of(service, "kbatch-alice") == before
    proc = run(alice, "resubmit", job_id)
    assert (proc.returncode, proc.stderr) == (2, f"Error: {answer['error']}\n")
