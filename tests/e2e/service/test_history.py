"""Issue 15's durable history, end to end on SQLite and on a real PostgreSQL
server: a job that ended and whose Job and pods the TTL controller (the fake
kubelet's) deleted still shows in ``kqueue --all``, ``kbatch show`` and
``kbatch history``, from the service's database, to its owner only, and after
a restart of the service. See conftest.py for the servers."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from conftest import wait_for

from .conftest import Service, User, run

pytestmark = pytest.mark.gateway

TTL_SECONDS = 3  # the Jobs' ttlSecondsAfterFinished (kbatch.kubernetes.ttl-days), short so that they go


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    settings = {"DASK_KBATCH__KUBERNETES__TTL_DAYS": str(TTL_SECONDS / 86400)}
    if request.param == "postgresql":
        from pg_server import new_database

        settings["DASK_KBATCH__SERVICE__DATABASE_URL"] = new_database(request.getfixturevalue("postgres"))
    return settings


def as_json(user: User, *args: str) -> Any:
    proc = run(user, *args, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_job_deleted_by_its_ttl_still_shows_and_survives_a_restart(service: Service, alice: User, bob: User) -> None:
    (alice.home / "fails.py").write_text("print('about to fail')\nraise SystemExit(3)\n")
    proc = run(alice, "--wait", "--parsable", "--dask-workers", "0", "--cpus", "1", "fails.py")
    assert proc.returncode == 3, proc.stderr
    job_id = proc.stdout.strip().splitlines()[-1]
    shown = as_json(alice, "show", job_id)
    assert (shown["state"], shown["exit_code"], shown["cpus"]) == ("FAILED", 3, 1)
    ended = {k: v for k, v in shown.items() if k != "report"}  # show adds the job's report; lists do not

    def gone() -> bool:
        return not [o for o in service.objects("jobs") + service.objects("pods") if job_id in o["metadata"]["name"]]

    wait_for(gone, timeout=60, what="the TTL controller to delete the Job and its pods")
    for _ in ("before", "after a restart"):
        assert as_json(alice, "show", job_id) == shown
        assert [j for j in as_json(alice, "queue", "--all") if j["id"] == job_id] == [ended]
        (listed,) = [j for j in as_json(alice, "history", "--since", "1h") if j["id"] == job_id]
        assert {k: v for k, v in listed.items() if k != "elapsed"} == ended and listed["elapsed"] is not None
        other = run(bob, "show", job_id)  # another user's job: as missing as one that never was
        assert other.returncode == 1 and other.stderr.strip() == run(bob, "show", "zzzzz").stderr.strip().replace(
            "zzzzz", job_id
        )
        assert job_id not in [j["id"] for j in as_json(bob, "history", "--since", "1h")]
        service.stop()
        service.start()  # nothing of the job in Kubernetes: only the database has it

    def health() -> dict[str, Any]:
        with urllib.request.urlopen(service.api("/health"), timeout=30) as answer:
            return dict(json.loads(answer.read()))

    assert health()["database"] == "ok"
    wait_for(lambda: health()["records-pending"] == 0, timeout=30, what="every noted record written")
