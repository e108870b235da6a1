"""Mail of the service's jobs (kbatch_dask/service/job_mail.py) through the real
service, hub and gateway, to a real SMTP server on loopback that wants a login:
an ending asked for arrives once, with its state, exit code and log tail; what
was not asked for does not; a repeated driver event sends nothing more; the
SMTP password is in no line of the service's log."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from conftest import wait_for
from fakes.kube.notebook import NAMESPACE
from smtp_server import Inbox, running

from .conftest import Service, User, run
from .test_driver_events import SLEEPER, events, job_of, secret_env
from .test_service import submit

pytestmark = pytest.mark.gateway

PASSWORD = "smtp-Pa55word-of-the-hub"
PUBLIC_URL = "https://hub.example.org/"
FAILS = "for i in range(30):\n    print('step', i, flush=True)\nraise SystemExit(3)\n"
SUCCEEDS = "print('all good', flush=True)\n"


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    with running(Inbox(username="kbatch", password=PASSWORD)) as box:
        yield box


@pytest.fixture(scope="module")
def service_settings(inbox: Inbox) -> dict[str, str]:
    return {
        "DASK_KBATCH__SERVICE__MAIL__SMTP_HOST": "127.0.0.1",
        "DASK_KBATCH__SERVICE__MAIL__SMTP_PORT": str(inbox.port),
        "DASK_KBATCH__SERVICE__MAIL__SECURITY": "plain",
        "DASK_KBATCH__SERVICE__MAIL__USERNAME": "kbatch",
        "DASK_KBATCH__SERVICE__MAIL__PASSWORD_ENV": "KBATCH_TEST_SMTP_PASSWORD",
        "KBATCH_TEST_SMTP_PASSWORD": PASSWORD,
        "DASK_KBATCH__SERVICE__MAIL__FROM_ADDRESS": "kbatch@hub.example.org",
        "DASK_KBATCH__SERVICE__MAIL__ADDRESS_TEMPLATE": "{username}@example.org",
        "DASK_KBATCH__HUB__PUBLIC_URL": PUBLIC_URL,
        "DASK_KBATCH__SERVICE__START_TIMEOUT": "2",  # a job that can never start fails soon
    }


def mails(inbox: Inbox, job_id: str, count: int = 1) -> list[EmailMessage]:
    """The job's messages, once ``count`` have arrived."""
    return list(wait_for(lambda: len(inbox.about(job_id)) >= count and inbox.about(job_id), what=f"{job_id}'s mail"))


def ended_by_kubernetes(job: dict[str, Any]) -> bool:
    return any(c["type"] == "Failed" and c["status"] == "True" for c in job.get("status", {}).get("conditions", []))


def ended(user: User, job_id: str) -> None:
    proc = run(user, "wait", job_id, timeout=180)
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr


def test_a_failed_job_asking_for_fail_is_mailed_once_with_its_end_and_log_tail(
    service: Service, alice: User, inbox: Inbox
) -> None:
    job_id = submit(alice, "fails.py", FAILS, "--mail-type", "FAIL", "--dask-workers", "0")
    ended(alice, job_id)
    (message,) = mails(inbox, job_id)
    assert message["To"] == "alice@example.org" and message["From"] == "kbatch@hub.example.org"
    assert message["Subject"].startswith(f"kbatch job {job_id} (fails.py) ended: FAILED, exit 3, 0:")
    lines = message.get_content().splitlines()
    for line in ("State:     FAILED", "Exit code: 3", f"Page:      {PUBLIC_URL}services/kbatch-dask/jobs/{job_id}"):
        assert line in lines
    tail = lines[lines.index("The last 20 line(s) of its log:") + 2 :]
    assert len(tail) == 20 and "    step 29" in tail and "    step 9" not in lines  # the last 20 only
    assert ("kbatch", PASSWORD) in inbox.logins
    done = service.server.objects("jobs", label_selector=f"kbatch-dask.io/job-id={job_id}")[0]
    assert done["metadata"]["annotations"]["kbatch-dask.io/mail-done"] == "BEGIN,END"  # handled; END mailed


def test_only_what_was_asked_is_mailed(service: Service, alice: User, bob: User, inbox: Inbox) -> None:
    quiet = submit(alice, "fine.py", SUCCEEDS, "--mail-type", "FAIL", "--dask-workers", "0")
    ended(alice, quiet)
    # Its end was queued for mail before its Job ended; one mail thread sends in turn:
    # once the next job's END has arrived, a mail of the first would have too.
    job_id = submit(bob, "fine.py", SUCCEEDS, "--mail-type", "END", "--mail-user", "bob@lab.org", "--dask-workers", "0")
    ended(bob, job_id)
    (message,) = mails(inbox, job_id)
    assert message["To"] == "bob@lab.org"
    assert message["Subject"].startswith(f"kbatch job {job_id} (fine.py) ended: SUCCEEDED, exit 0, 0:")
    assert "    all good" in message.get_content().splitlines()
    assert inbox.about(quiet) == []  # FAIL asked, and it succeeded
    assert [m for m in inbox.about(job_id) if " began" in m["Subject"]] == []  # BEGIN not asked


def test_repeated_driver_events_are_mailed_once_each(service: Service, alice: User, inbox: Inbox) -> None:
    job_id = submit(alice, "sleeper.py", SLEEPER, "--mail-type", "ALL", "--dask-workers", "0")
    (began,) = mails(inbox, job_id)
    assert began["Subject"].startswith(f"kbatch job {job_id} (sleeper.py) began, queued 0:")
    credential = "Bearer " + secret_env(service, job_id)["KBATCH_DASK_JOB_CREDENTIAL"]
    finished = {"event": "finished", "state": "FAILED", "exit_code": 1, "reason": "exit code 1"}
    for body in ({"event": "started"}, finished, {"event": "started"}, finished):
        assert events(service, job_id, credential, body) == 204
    messages = mails(inbox, job_id, 2)
    assert [m["Subject"].split(": ", 1)[-1].split(",")[0] for m in messages[1:]] == ["FAILED"]
    proc = run(alice, "cancel", job_id)
    assert proc.returncode == 0, proc.stderr
    selector = f"kbatch-dask.io/job-id={job_id}"
    wait_for(lambda: not service.server.objects("jobs", label_selector=selector), what="the cancelled Job to go")
    # Its driver reported its end before it went. The mail thread sends in turn: a
    # later job's mail arrives after any of this job's.
    later = submit(alice, "fails.py", FAILS, "--mail-type", "END", "--dask-workers", "0")
    ended(alice, later)
    mails(inbox, later)
    assert len(inbox.about(job_id)) == 2  # one BEGIN, one END: not the repeats, nor the cancel's end


def test_an_end_without_a_driver_event_is_mailed_once_after_a_restart(
    service: Service, alice: User, inbox: Inbox
) -> None:
    job_id = submit(alice, "sleeper.py", SLEEPER, "--mail-type", "FAIL", "--dask-workers", "0")
    wait_for(lambda: "sleeping" in run(alice, "logs", job_id).stdout, timeout=60, what="the job to run")
    before = len(inbox.messages)
    service.stop()
    name = job_of(service, job_id)["metadata"]["name"]
    (pod,) = service.kubelet.pods_of(name, NAMESPACE)
    service.kubelet.oom_kill(pod, NAMESPACE)  # the whole container: its driver reports nothing
    wait_for(lambda: ended_by_kubernetes(job_of(service, job_id)), what="the Job to fail")
    service.start()  # which looks for ends not yet mailed at once
    (message,) = mails(inbox, job_id)
    assert message["Subject"].startswith(f"kbatch job {job_id} (sleeper.py) ended: OOM, exit 137, 0:")
    later = submit(alice, "fails.py", FAILS, "--mail-type", "END", "--dask-workers", "0")
    ended(alice, later)
    mails(inbox, later)
    assert len(inbox.messages) == before + 2  # nothing mailed before the restart was mailed again


def test_a_job_that_can_never_start_is_mailed_its_failure(service: Service, alice: User, inbox: Inbox) -> None:
    missing = "pangeo/no-such-image:1"  # allowed by the policy (pangeo/*), in no registry
    service.kubelet.missing_image(missing)
    job_id = submit(alice, "never.py", SUCCEEDS, "--image", missing, "--mail-type", "FAIL", "--dask-workers", "0")
    (message,) = mails(inbox, job_id)
    assert message["Subject"] == f"kbatch job {job_id} (never.py) ended: FAILED"  # no exit code, never ran
    (reason,) = [line for line in message.get_content().splitlines() if line.startswith("Reason:")]
    assert missing in reason and "kbatch.service.start-timeout" in reason


def test_the_smtp_password_is_in_no_log_line(service: Service, alice: User, inbox: Inbox) -> None:
    job_id = submit(alice, "fine.py", SUCCEEDS, "--mail-type", "END", "--dask-workers", "0")
    ended(alice, job_id)
    mails(inbox, job_id)
    log = service.log.read_text(errors="replace")
    assert f"mailed alice@example.org: kbatch job {job_id} (fine.py) ended: SUCCEEDED" in log
    assert PASSWORD not in log
    shown = run(alice, "show", "-o", "json", job_id).stdout + run(alice, "queue", "-o", "json").stdout
    assert PASSWORD not in shown


def test_a_bad_mail_user_is_refused_before_anything_is_sent(alice: User) -> None:
    (alice.home / "fine.py").write_text(SUCCEEDS)
    proc = run(alice, "--mail-type", "END", "--mail-user", "not-an-address", "fine.py")
    assert (proc.returncode, proc.stderr.strip()) == (
        2,
        "Error: --mail-user 'not-an-address': expected one address like alice@example.org",
    )
