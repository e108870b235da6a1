"""The service's mail (kbatch_dask/service/mail.py, job_mail.py): messages
composed for a job's events, sent to a real SMTP server on loopback with a
login, retried while the server answers "try later", refused in one line where
the service cannot send; the password in no log line. A job through the real
service: tests/e2e/service/test_mail.py."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dask.config
import pytest
from smtp_server import Inbox, running

from kbatch_dask import settings
from kbatch_dask.errors import BadInput
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.service.job_mail import ANN_MAIL_TYPE, ANN_MAIL_USER, MailSetup, due, submit_annotations
from kbatch_dask.service.mail import MAX_LINE, Mailer, compose
from kbatch_dask.spec import JobSpec

PASSWORD = "s3cret-smtp-passw0rd"
T0 = datetime(2026, 11, 21, 21, 40, tzinfo=timezone.utc)


def record(**changes: object) -> JobRecord:
    base = JobRecord(
        "k3x9q",
        "train",
        "alice",
        "hub",
        JobState.FAILED,
        reason="exit code 1",
        exit_code=1,
        submitted=T0,
        started=T0 + timedelta(seconds=5),
        finished=T0 + timedelta(minutes=12, seconds=8),
        script="/home/alice/train.py",
        output="/home/alice/kbatch-k3x9q.out",
    )
    return base.replace(**changes)


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with running(Inbox(username="kbatch", password=PASSWORD)) as box:
        yield box


def mailer(box: Inbox, **changes: object) -> Mailer:
    base = Mailer("127.0.0.1", box.port, "plain", "kbatch@hub.example.org", "kbatch", PASSWORD, timeout=10)
    return dataclasses.replace(base, **{"backoff": 0.01, **changes})


def test_an_end_message_has_the_state_exit_code_reason_output_page_and_log_tail() -> None:
    tail = ["epoch 3 loss 0.1", "Traceback (most recent call last):", "ValueError: boom", "x" * (MAX_LINE + 50)]
    page = "https://hub.example.org/services/kbatch-dask/jobs/k3x9q"
    message = compose(record(), "END", "alice@example.org", page=page, log_tail=tail, at=T0 + timedelta(hours=1))
    assert message["Subject"] == "kbatch job k3x9q (train.py) ended: FAILED, exit 1, 0:12:03"
    text = message.get_content()
    for line in (
        "State:     FAILED",
        "Reason:    exit code 1",
        "Exit code: 1",
        "Elapsed:   0:12:03",
        "Output:    /home/alice/kbatch-k3x9q.out",
        f"Page:      {page}",
        "    ValueError: boom",
    ):
        assert line in text.splitlines()
    assert "x" * MAX_LINE + " …" in text and "x" * (MAX_LINE + 1) not in text  # a long line is cut


def test_a_begin_message_says_how_long_the_job_waited() -> None:
    running_job = record(state=JobState.RUNNING, reason=None, exit_code=None, finished=None)
    message = compose(running_job, "BEGIN", "a@b.org", page=None, log_tail=[], at=T0 + timedelta(seconds=6))
    assert message["Subject"] == "kbatch job k3x9q (train.py) began, queued 0:00:05"
    assert "Page:" not in message.get_content() and "log" not in message.get_content()


def test_a_job_that_never_ran_ends_without_an_elapsed_time() -> None:
    never = record(reason="ErrImagePull", exit_code=None, started=None, finished=T0 + timedelta(minutes=5))
    message = compose(never, "END", "a@b.org", page=None, log_tail=[], at=T0 + timedelta(minutes=5))
    assert message["Subject"] == "kbatch job k3x9q (train.py) ended: FAILED"
    assert "Elapsed:" not in message.get_content() and "Reason:    ErrImagePull" in message.get_content()


@pytest.mark.parametrize(
    ("asked", "event", "state", "mailed"),
    [
        (("END",), "END", JobState.SUCCEEDED, True),
        (("END",), "END", JobState.CANCELLED, True),
        (("FAIL",), "END", JobState.SUCCEEDED, False),
        (("FAIL",), "END", JobState.CANCELLED, False),
        (("FAIL",), "END", JobState.TIMEOUT, True),
        (("FAIL",), "END", JobState.LOST, True),
        (("END", "FAIL"), "END", JobState.FAILED, True),  # one message, not two
        (("END",), "BEGIN", JobState.RUNNING, False),
        (("BEGIN",), "BEGIN", JobState.RUNNING, True),
    ],
)
def test_which_events_are_mailed_follows_slurm(
    asked: tuple[str, ...], event: str, state: JobState, mailed: bool
) -> None:
    assert due(asked, event, state) is mailed


def test_a_message_reaches_the_smtp_server_with_the_login_and_no_password_in_the_log(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    message = compose(record(), "END", "alice@example.org", page=None, log_tail=["last line"], at=T0)
    assert mailer(inbox).send(message, "alice", "k3x9q")
    (got,) = inbox.to("alice@example.org")
    assert got["From"] == "kbatch@hub.example.org" and got["Subject"].startswith("kbatch job k3x9q (train.py) ended")
    assert "    last line" in got.get_content()
    assert inbox.logins == [("kbatch", PASSWORD)]
    (line,) = [r for r in caplog.records if "mailed alice@example.org" in r.getMessage()]
    assert (line.user, line.job) == ("alice", "k3x9q")  # type: ignore[attr-defined]
    assert PASSWORD not in caplog.text


def test_a_refused_login_is_logged_with_user_and_job_never_raised_and_without_the_password(
    inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = PASSWORD + "-wrong"
    message = compose(record(), "END", "alice@example.org", page=None, log_tail=[], at=T0)
    assert mailer(inbox, password=wrong).send(message, "alice", "k3x9q") is False
    assert inbox.messages == [] and {p for _, p in inbox.logins} == {wrong}
    (line,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "mail to alice@example.org not sent (1 attempt(s)): 535" in line.getMessage()  # 535 is not retried
    assert (line.user, line.job) == ("alice", "k3x9q")  # type: ignore[attr-defined]
    assert wrong not in caplog.text and PASSWORD not in caplog.text


def test_a_server_saying_try_later_gets_a_bounded_number_of_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with running(Inbox(refuse_first=2)) as box:
        message = compose(record(), "END", "alice@example.org", page=None, log_tail=[], at=T0)
        assert mailer(box, username=None, password=None, retries=2).send(message, "alice", "k3x9q")
        assert len(box.messages) == 1
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2
    with running(Inbox(refuse_first=5)) as box:
        message = compose(record(), "END", "alice@example.org", page=None, log_tail=[], at=T0)
        assert mailer(box, username=None, password=None, retries=1).send(message, "alice", "k3x9q") is False
        assert box.messages == [] and box.refuse_first == 3  # two attempts, no more
    assert "not sent (2 attempt(s)): 451 4.3.0 try again later" in caplog.text


def test_an_unreachable_server_is_a_logged_failure(caplog: pytest.LogCaptureFixture) -> None:
    with running(Inbox()) as box:
        port = box.port
    gone = Mailer("127.0.0.1", port, "plain", "kbatch@hub.example.org", retries=1, backoff=0.01)
    message = compose(record(), "END", "alice@example.org", page=None, log_tail=[], at=T0)
    assert gone.send(message, "alice", "k3x9q") is False
    assert "ConnectionRefusedError" in caplog.text


def mail_settings(**values: object) -> settings.ServiceMail:
    with dask.config.set({f"kbatch.service.mail.{k.replace('_', '-')}": v for k, v in values.items()}):
        return settings.load().service.mail


def test_the_settings_make_a_mailer_or_one_line_naming_the_key(tmp_path: Path) -> None:
    assert Mailer.from_settings(mail_settings(), {}) is None  # no smtp-host: no mail
    host = {"smtp_host": "smtp.example.org", "from_address": "kbatch@hub.example.org"}
    made = Mailer.from_settings(mail_settings(**host, username="k", password_env="SMTP_PW"), {"SMTP_PW": PASSWORD})
    assert made is not None and (made.port, made.security, made.password) == (587, "starttls", PASSWORD)
    assert PASSWORD not in repr(made)
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    from_file = Mailer.from_settings(mail_settings(**host, security="ssl", password_file=str(secret)), {})
    assert from_file is not None and from_file.port == 465 and from_file._password() == PASSWORD
    for values, message in [
        ({**host, "security": "tls"}, "security = 'tls': expected one of starttls, ssl, plain"),
        ({"smtp_host": "smtp.example.org"}, "from-address is needed with smtp-host"),
        ({**host, "password_env": "SMTP_PW"}, "password-env names SMTP_PW, which is not set"),
        ({**host, "password_file": str(tmp_path / "none")}, "password-file: cannot read it"),
    ]:
        with pytest.raises(BadInput, match=message):
            Mailer.from_settings(mail_settings(**values), {})


def test_a_submission_asking_for_mail_the_service_cannot_send_is_refused_in_one_line() -> None:
    spec = JobSpec("/h/train.py", "train", "alice", "/h", "o", mail_type=("END", "FAIL"))
    setup = MailSetup(Mailer("h", 25, "plain", "k@h.org"), "{username}@example.org", 20, None)
    assert submit_annotations(setup, spec, "alice") == {ANN_MAIL_TYPE: "END,FAIL", ANN_MAIL_USER: "alice@example.org"}
    given = dataclasses.replace(spec, mail_user="a@lab.org")
    assert submit_annotations(setup, given, "alice")[ANN_MAIL_USER] == "a@lab.org"
    assert submit_annotations(None, dataclasses.replace(spec, mail_type=()), "alice") == {}
    with pytest.raises(BadInput, match=r"^--mail-type END,FAIL: this service sends no mail \(kbatch.service"):
        submit_annotations(None, spec, "alice")
    no_template = dataclasses.replace(setup, address_template=None)
    with pytest.raises(BadInput, match=r"give --mail-user ADDRESS \(this service knows no address of alice"):
        submit_annotations(no_template, spec, "alice")
    with pytest.raises(BadInput, match="address-template makes no mail address of the hub name 'a b'"):
        submit_annotations(setup, spec, "a b")
