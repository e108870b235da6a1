"""The service's queue end to end (service/admission.py): over the running-jobs
limit jobs wait as suspended Jobs and start in submit order, through a restart
of the service; --dependency chains; hold and release. Real `kbatch` through
the real service, hub and gateway, on the fake API server and kubelet (see
conftest.py)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

from .conftest import Service, User, run

pytestmark = pytest.mark.gateway

MAX_RUNNING = 2
# Waits for its go-ahead (a file in its working directory): the test decides when each job ends.
WAITER = """\
import os, time
print("started", flush=True)
while not os.path.exists({go!r}):  # in the job's working directory, the user's home
    time.sleep(0.1)
"""


@pytest.fixture(scope="module")
def service_settings() -> dict[str, str]:
    return {"DASK_KBATCH__SERVICE__LIMITS__MAX_RUNNING_JOBS": str(MAX_RUNNING)}


def submit(user: User, text: str, *options: str) -> str:
    script = f"job-{secrets.token_hex(3)}.py"
    (user.home / script).write_text(text)
    proc = run(user, "--parsable", "--dask-workers", "0", *options, script)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def waiter(user: User, *options: str) -> tuple[str, Path]:
    go = user.home / f"go-{secrets.token_hex(3)}"
    return submit(user, WAITER.format(go=go.name), *options), go


def records(user: User) -> dict[str, dict[str, Any]]:
    proc = run(user, "queue", "--all", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return {r["id"]: r for r in json.loads(proc.stdout)}


def state(user: User, job_id: str) -> tuple[str, str | None]:
    record = records(user)[job_id]
    return record["state"], record["reason"]


def pods_of(service: Service, job_id: str) -> list[dict[str, Any]]:
    return [p for p in service.objects("pods") if p["metadata"]["labels"].get("kbatch-dask.io/job-id") == job_id]


def started(user: User, job_id: str) -> bool:
    return "started" in run(user, "logs", job_id).stdout


def test_five_submissions_run_two_at_a_time_in_submit_order_through_a_restart(service: Service, alice: User) -> None:
    jobs = [waiter(alice) for _ in range(5)]
    ids = [job_id for job_id, _ in jobs]
    for job_id in ids[:2]:
        wait_for(lambda job_id=job_id: started(alice, job_id), timeout=90, what=f"{job_id} to start")
    now = records(alice)
    assert [now[i]["state"] for i in ids[2:]] == ["PENDING"] * 3
    assert {now[i]["reason"] for i in ids[2:]} == {"waiting for quota"}
    assert all(not pods_of(service, i) for i in ids[2:])  # suspended: no pod at all
    shown = run(alice, "show", ids[2]).stdout
    assert "PENDING" in shown and "waiting for quota" in shown

    jobs[0][1].touch()  # the first ends: the third, and only it, starts
    wait_for(lambda: started(alice, ids[2]), timeout=90, what="the third job to start")
    assert state(alice, ids[0])[0] == "SUCCEEDED"
    assert [state(alice, i) for i in ids[3:]] == [("PENDING", "waiting for quota")] * 2

    service.stop()
    jobs[1][1].touch()  # the second ends while the service is down
    wait_for(lambda: _complete(service, ids[1]), timeout=90, what="the second job to end")
    service.start()  # the queue is in the Jobs' annotations: the fourth is next, not the fifth
    wait_for(lambda: started(alice, ids[3]), timeout=90, what="the fourth job to start after the restart")
    assert state(alice, ids[4]) == ("PENDING", "waiting for quota") and not pods_of(service, ids[4])

    jobs[2][1].touch()
    wait_for(lambda: started(alice, ids[4]), timeout=90, what="the fifth job to start")
    for _, go in jobs[3:]:
        go.touch()
    for job_id in ids:
        assert run(alice, "wait", job_id, timeout=120).returncode == 0
    final = records(alice)
    starts = [final[i]["started"] for i in ids]
    assert starts == sorted(starts), starts  # in submit order
    # Never more than two at once: each started only after the one two places before it finished.
    for earlier, later in zip(ids, ids[2:], strict=False):
        assert final[later]["started"] >= final[earlier]["finished"], (earlier, later, final)


def _complete(service: Service, job_id: str) -> bool:
    """Whether the Job controller has marked the Job ``Complete``."""
    (job,) = [j for j in service.objects("jobs") if j["metadata"]["labels"]["kbatch-dask.io/job-id"] == job_id]
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Complete" and c["status"] == "True" for c in conditions)


def test_an_afterok_chain_runs_in_order_and_a_failure_cancels_its_dependants(service: Service, alice: User) -> None:
    first, go = waiter(alice)
    second = submit(alice, "print('second')\n", "--dependency", f"afterok:{first}")
    third = submit(alice, "print('third')\n", "-d", f"afterok:{second}")
    assert state(alice, second) == ("PENDING", "dependency") and state(alice, third) == ("PENDING", "dependency")
    go.touch()
    assert run(alice, "wait", third, timeout=180).returncode == 0
    final = records(alice)
    assert [final[i]["state"] for i in (first, second, third)] == ["SUCCEEDED"] * 3
    assert final[first]["finished"] <= final[second]["started"] and final[second]["finished"] <= final[third]["started"]

    failing = submit(alice, "raise SystemExit(3)\n")
    after = submit(alice, "print('never')\n", "-d", f"afterok:{failing}")
    after_after = submit(alice, "print('never')\n", "-d", f"afterok:{after}")
    otherwise = submit(alice, "print('ran')\n", "-d", f"afternotok:{failing}")
    assert run(alice, "wait", after_after, timeout=180).returncode != 0
    final = records(alice)
    assert final[failing]["state"] == "FAILED"
    for job_id in (after, after_after):
        assert (final[job_id]["state"], final[job_id]["reason"]) == ("CANCELLED", "dependency never satisfied")
        assert not pods_of(service, job_id)  # it never ran
    assert run(alice, "wait", otherwise, timeout=120).returncode == 0


def test_a_dependency_on_an_unknown_or_another_users_job_is_refused_naming_it(
    service: Service, alice: User, bob: User
) -> None:
    bobs = submit(bob, "print('bob')\n")
    before = len(service.objects("jobs"))
    (alice.home / "x.py").write_text("print('x')\n")
    for job_id in ("zzzzz", bobs):
        proc = run(alice, "--dependency", f"afterok:{job_id}", "x.py")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (
            f"Error: --dependency afterok:{job_id}: no job '{job_id}' (see `kbatch queue --all` for known jobs)"
        )
    assert len(service.objects("jobs")) == before
    assert run(bob, "wait", bobs).returncode == 0


def test_hold_keeps_a_queued_job_waiting_until_release_and_refuses_a_running_one(service: Service, alice: User) -> None:
    busy = [waiter(alice) for _ in range(MAX_RUNNING)]
    queued, go = waiter(alice)
    for job_id, _ in busy:
        wait_for(lambda job_id=job_id: started(alice, job_id), timeout=90, what=f"{job_id} to start")
    proc = run(alice, "hold", queued)
    assert proc.returncode == 0 and "held" in proc.stdout, proc.stderr
    assert state(alice, queued) == ("PENDING", "held")
    proc = run(alice, "hold", busy[0][0])
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"Error: job {busy[0][0]} is RUNNING: only a job still waiting to start can be held"
    ), proc.stderr
    assert run(alice, "release", busy[0][0]).returncode == 2
    status, answer = alice.http("POST", service.api(f"/jobs/{busy[0][0]}/hold"))
    assert status == 409 and set(answer) == {"error"}, answer

    for job_id, done in busy:  # both slots free: the held job still waits
        done.touch()
        assert run(alice, "wait", job_id, timeout=120).returncode == 0
    other, other_go = waiter(alice)  # submitted later, it starts while the held one waits
    wait_for(lambda: started(alice, other), timeout=90, what="a later job to start past the held one")
    assert state(alice, queued) == ("PENDING", "held") and not pods_of(service, queued)

    proc = run(alice, "release", queued)
    assert proc.returncode == 0, proc.stderr
    wait_for(lambda: started(alice, queued), timeout=90, what="the released job to start")
    go.touch()
    other_go.touch()
    assert run(alice, "wait", queued, timeout=120).returncode == 0
    assert run(alice, "wait", other, timeout=120).returncode == 0
    assert run(alice, "release", queued).returncode == 2  # ended


CLUSTER_JOB = """\
from dask.distributed import get_client
get_client().wait_for_workers(1, timeout=60)
print("cluster total", get_client().submit(sum, [1, 2, 3]).result(), flush=True)
"""


def test_a_queued_jobs_gateway_token_is_made_when_it_starts_not_when_it_waits(service: Service, alice: User) -> None:
    ahead = [waiter(alice) for _ in range(MAX_RUNNING)]
    for job_id, _ in ahead:
        wait_for(lambda job_id=job_id: started(alice, job_id), timeout=90, what=f"{job_id} to start")
    tokens = {t["id"] for t in service.hub.tokens("alice")}
    queued = submit_with_cluster_job(alice)
    assert state(alice, queued) == ("PENDING", "waiting for quota")
    (job,) = [j for j in service.objects("jobs") if j["metadata"]["labels"]["kbatch-dask.io/job-id"] == queued]
    assert "kbatch-dask.io/hub-token-id" not in job["metadata"]["annotations"]
    assert {t["id"] for t in service.hub.tokens("alice")} == tokens  # none made while it waits

    ahead[0][1].touch()  # a place frees: the job starts, with a token made now, and its cluster works
    assert run(alice, "wait", queued, timeout=180).returncode == 0
    assert "cluster total 6" in run(alice, "logs", queued).stdout
    ahead[1][1].touch()


def submit_with_cluster_job(user: User) -> str:
    script = f"cluster-{secrets.token_hex(3)}.py"
    (user.home / script).write_text(CLUSTER_JOB)
    proc = run(user, "--parsable", "--dask-workers", "1", "--time", "10:00", script)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]
