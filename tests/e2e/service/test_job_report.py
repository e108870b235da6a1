"""A service job's Dask report reaches the service: its driver uploads the
report's summary with the job's own credential before it reports the end
(``PUT /jobs/{id}/report``), the service serves it to the job's owner only
(``GET /jobs/{id}/report``), and ``kbatch report`` / ``kbatch show`` on the hub
backend read it from there, after the files the pod wrote on alice's home are
gone. The web page's job page shows its line and table, and a job's
``--dependency`` with each job it waits for linked, with its state."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import wait_for

from .conftest import PREFIX, Service, User, run
from .test_archive import remove_files_of
from .test_driver_events import job_of, secret_env
from .test_service import SLEEPER, submit

pytestmark = pytest.mark.gateway

TASKS = 8
# A few tasks of busy CPU on the job's one worker: the meter counts them by prefix.
BURNER = f"""\
import time
from dask.distributed import get_client


def burn(i):
    start = time.process_time()
    while time.process_time() - start < 0.2:
        pass
    return i


client = get_client()
client.wait_for_workers(1, timeout=60)
print("sum", sum(client.gather(client.map(burn, range({TASKS})))), flush=True)
"""


@dataclass(frozen=True)
class Reported:
    job_id: str  # ended SUCCEEDED with its report uploaded, its files on alice's home deleted
    archived: bytes  # what the service's archive kept of it


@pytest.fixture(scope="module")
def reported(service: Service, alice: User) -> Iterator[Reported]:
    job_id = submit(alice, "burner.py", BURNER, "--dask-workers", "1", "-t", "10:00")
    proc = run(alice, "wait", job_id, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (alice.home / f"kbatch-{job_id}.report.json").exists()  # the driver wrote it beside the output
    kept = service.workdir / "kbatch-dask-archive" / f"{job_of(service, job_id)['metadata']['name']}.report"
    archived = kept.read_bytes()  # uploaded with PUT before the driver reported the end
    remove_files_of(alice, job_id)
    yield Reported(job_id, archived)


def get(url: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def put(service: Service, job_id: str, credential: str, data: bytes) -> int:
    headers = {"Authorization": f"Bearer {credential}"}
    request = urllib.request.Request(service.api(f"/jobs/{job_id}/report"), data, headers, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_report_arrives_by_upload_and_kbatch_report_reads_it_from_the_service(
    service: Service, alice: User, reported: Reported
) -> None:
    job_id = reported.job_id
    assert json.loads(reported.archived)["job"] == job_id
    status, served = alice.http("GET", service.api(f"/jobs/{job_id}/report"))
    assert status == 200 and served == json.loads(reported.archived)

    proc = run(alice, "report", "-o", "json", job_id)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["tasks"]["count"] == TASKS and report["workers"]["peak"] == 1
    assert [p["prefix"] for p in report["tasks"]["prefixes"]] == ["burn"]
    table = run(alice, "report", job_id).stdout
    assert f"Job {job_id}" in table and "CPU efficiency" in table and "burn" in table

    shown = run(alice, "show", "-o", "json", job_id)
    assert json.loads(shown.stdout)["report"]["tasks"]["count"] == TASKS
    assert f"worker-seconds (kbatch report {job_id})" in run(alice, "show", job_id).stdout


def test_bob_gets_the_404_of_a_missing_job_for_alices_report(
    service: Service, alice: User, bob: User, reported: Reported
) -> None:
    job_id = reported.job_id
    assert bob.http("GET", service.api(f"/jobs/{job_id}/report")) == bob.http("GET", service.api(f"/jobs/{job_id}"))
    assert bob.http("GET", service.api(f"/jobs/{job_id}"))[0] == 404
    proc = run(bob, "report", job_id)
    assert proc.returncode != 0 and f"no job '{job_id}'" in proc.stderr


def test_a_job_without_a_cluster_has_no_report_and_says_why(service: Service, alice: User) -> None:
    job_id = submit(alice, "plain.py", "print('plain')\n", "--dask-workers", "0")
    assert run(alice, "wait", job_id, timeout=180).returncode == 0
    status, answer = alice.http("GET", service.api(f"/jobs/{job_id}/report"))
    assert status == 404 and "has no report" in answer["error"]
    proc = run(alice, "report", job_id)
    assert proc.returncode != 0 and f"job {job_id} had no Dask cluster" in proc.stderr
    assert json.loads(run(alice, "show", "-o", "json", job_id).stdout)["report"] is None


def test_a_running_jobs_report_is_a_409_and_uploads_are_checked(service: Service, alice: User) -> None:
    job_id = submit(alice, "sleeper.py", SLEEPER, "--dask-workers", "0")
    try:
        wait_for(lambda: run(alice, "show", "-o", "json", job_id).stdout.count('"RUNNING"'), 120, "the job running")
        status, answer = alice.http("GET", service.api(f"/jobs/{job_id}/report"))
        assert status == 409 and "its report comes when it ends" in answer["error"]
        credential = secret_env(service, job_id)["KBATCH_DASK_JOB_CREDENTIAL"]
        assert put(service, job_id, "not-the-credential", b"{}") == 401
        assert put(service, job_id, credential, b"<html>not a summary</html>") == 400
        assert put(service, job_id, credential, b'{"workers": {}}') == 400
        assert put(service, job_id, credential, b" " * (256 * 1024 + 1)) == 413
        assert alice.http("GET", service.api(f"/jobs/{job_id}/report"))[0] == 409  # none of them was kept
    finally:
        run(alice, "cancel", job_id)


def test_the_job_page_shows_the_report_line_and_the_dependency_linked_with_its_state(
    service: Service, alice: User, bob: User, reported: Reported
) -> None:
    first = reported.job_id
    then = submit(alice, "then.py", "print('then')\n", "--dask-workers", "0", "--dependency", f"afterok:{first}")
    assert run(alice, "wait", then, timeout=180).returncode == 0

    status, page = get(f"{service.url}jobs/{first}", alice.token)
    assert status == 200, page
    assert f"worker-seconds (kbatch report {first})" in page and '<h2 id="report-title">Dask report</h2>' in page
    assert '<th scope="row">CPU efficiency</th>' in page and "burn" in page

    status, page = get(f"{service.url}jobs/{then}", alice.token)
    assert status == 200, page
    assert f"--dependency afterok:{first}</code>: starts once every job below has ended SUCCEEDED" in page
    assert f'<a href="{PREFIX}jobs/{first}"><code>{first}</code></a>' in page
    assert '<span class="state state-succeeded">SUCCEEDED</span>' in page
    assert "Dask report" not in page  # no cluster, no report

    assert get(f"{service.url}jobs/{first}", bob.token)[0] == 404
