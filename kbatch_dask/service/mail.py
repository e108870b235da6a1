"""The service's mail: one short message per job event, sent through the admin's
SMTP server (``kbatch.service.mail``; docs/service.md, "Mail").

- :class:`Mailer` sends with the standard library's :mod:`smtplib` (no extra
  dependency, nothing to keep in step with tornado's loop), called from the
  mail thread of :mod:`.job_mail`, never from the loop. A message the server
  does not take is retried a bounded number of times, then logged with the user
  and the job; sending never raises, so a mail never fails a job.
- The SMTP password comes from an environment variable or a file named in the
  settings; it is in no repr and no log line.
- :func:`compose` is pure: the subject Slurm users know
  (``kbatch job k3x9q (train.py) ended: FAILED, exit 1, 0:12:03``) and a body
  with the state, elapsed time, exit code, reason, output path, the end of the
  log and the job's page.
"""

from __future__ import annotations

import logging
import posixpath
import smtplib
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage

from kbatch_dask.errors import BadInput
from kbatch_dask.records import JobRecord
from kbatch_dask.settings import ServiceMail
from kbatch_dask.spec.mail import check_address

log = logging.getLogger("kbatch_dask.service")
SECURITY_PORTS = {"starttls": 587, "ssl": 465, "plain": 25}
MAX_LINE = 500  # characters of one log line in a mail
BACKOFF = 2.0  # seconds before the first retry, doubling


@dataclass(frozen=True)
class Mailer:
    """The admin's SMTP server, and how to log in to it."""

    host: str
    port: int
    security: str
    sender: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    retries: int = 3
    timeout: float = 30.0
    backoff: float = BACKOFF

    @classmethod
    def from_settings(cls, mail: ServiceMail, environ: Mapping[str, str]) -> Mailer | None:
        """The mailer the settings describe (None without ``smtp-host``); BadInput naming the key that is wrong."""
        if not mail.smtp_host:
            return None
        where = "kbatch.service.mail"
        if mail.security not in SECURITY_PORTS:
            raise BadInput(f"config {where}.security = {mail.security!r}: expected one of {', '.join(SECURITY_PORTS)}")
        if not mail.from_address:
            raise BadInput(f"config {where}.from-address is needed with smtp-host (the From: of the service's mail)")
        check_address(mail.from_address)
        if mail.password_env and mail.password_file:
            raise BadInput(f"config {where}: give password-env or password-file, not both")
        password = None
        if mail.password_env:
            password = environ.get(mail.password_env)
            if password is None:
                raise BadInput(f"config {where}.password-env names {mail.password_env}, which is not set")
        mailer = cls(
            host=mail.smtp_host,
            port=mail.smtp_port or SECURITY_PORTS[mail.security],
            security=mail.security,
            sender=mail.from_address,
            username=mail.username,
            password=password,
            password_file=mail.password_file,
            retries=max(0, mail.retries),
            timeout=mail.timeout,
        )
        mailer._password()  # an unreadable file is an error at start, not at the first mail
        return mailer

    def _password(self) -> str | None:
        if not self.password_file:
            return self.password
        try:
            with open(self.password_file, encoding="utf-8") as f:
                return f.read().strip("\r\n")
        except OSError as exc:
            raise BadInput(f"config kbatch.service.mail.password-file: cannot read it ({exc.strerror})") from None

    def send(self, message: EmailMessage, user: str, job_id: str) -> bool:
        """Send ``message`` (retrying what may pass later); False, logged, if it was not taken."""
        del message["From"]
        message["From"] = self.sender
        delay, attempts = self.backoff, 0
        about = {"user": user, "job": job_id}  # on the line (service.logs), text or JSON
        while True:
            attempts += 1
            try:
                self._deliver(message)
            except (OSError, smtplib.SMTPException, BadInput) as exc:
                why = _describe(exc)
                if attempts > self.retries or not _transient(exc):
                    log.warning("mail to %s not sent (%d attempt(s)): %s", message["To"], attempts, why, extra=about)
                    return False
                log.info("mail to %s not sent (%s); retrying in %g s", message["To"], why, delay, extra=about)
                time.sleep(delay)
                delay *= 2
            else:
                log.info("mailed %s: %s", message["To"], message["Subject"], extra=about)
                return True

    def _deliver(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password() or "")
            smtp.send_message(message)


def _transient(exc: BaseException) -> bool:
    """Whether a later attempt may pass: no connection, or a 4xx answer."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code < 500
    return isinstance(exc, OSError | smtplib.SMTPServerDisconnected)


def _describe(exc: BaseException) -> str:
    """One line about a failure (the server's answer, never what was sent to it)."""
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{exc.smtp_code} {text}".splitlines()[0]
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "recipient refused"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def elapsed(record: JobRecord, at: datetime) -> timedelta | None:
    """How long the job ran (until ``at`` while it runs)."""
    if record.started is None:
        return None
    return max(timedelta(0), (record.finished or at) - record.started)


def clock(span: timedelta | None) -> str:
    """``H:MM:SS`` (``D-H:MM:SS`` past a day), as Slurm prints elapsed time.

    >>> clock(timedelta(minutes=12, seconds=3)), clock(timedelta(days=1, hours=2)), clock(None)
    ('0:12:03', '1-2:00:00', '-')
    """
    if span is None:
        return "-"
    seconds = int(span.total_seconds())
    days, seconds = divmod(seconds, 86400)
    text = f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{days}-{text}" if days else text


def subject(record: JobRecord, event: str, at: datetime) -> str:
    """The subject line, Slurm's way.

    >>> from kbatch_dask.records import JobState
    >>> r = JobRecord("k3x9q", "train", "alice", "hub", JobState.FAILED, exit_code=1, script="/h/train.py",
    ...     submitted=datetime(2026, 1, 1), started=datetime(2026, 1, 1), finished=datetime(2026, 1, 1, 0, 12, 3))
    >>> subject(r, "END", datetime(2026, 1, 2))
    'kbatch job k3x9q (train.py) ended: FAILED, exit 1, 0:12:03'
    """
    what = f"kbatch job {record.id} ({posixpath.basename(record.script) or record.name})"
    if event == "BEGIN":
        waited = (record.started or at) - record.submitted
        return f"{what} began, queued {clock(max(timedelta(0), waited))}"
    span = elapsed(record, at)
    parts = [record.state.value, *([f"exit {record.exit_code}"] if record.exit_code is not None else [])]
    return f"{what} ended: {', '.join([*parts, *([clock(span)] if span is not None else [])])}"


def compose(
    record: JobRecord, event: str, to: str, *, page: str | None, log_tail: Sequence[str], at: datetime
) -> EmailMessage:
    """The message about ``event`` (``BEGIN`` or ``END``) of the job (``From`` is the mailer's)."""
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject(record, event, at)
    rows = [
        ("Job", f"{record.id} ({record.name}) of {record.user}"),
        ("State", record.state.value),
        ("Reason", record.reason),
        ("Exit code", None if record.exit_code is None else str(record.exit_code)),
        ("Submitted", record.submitted.isoformat(timespec="seconds")),
        ("Started", record.started.isoformat(timespec="seconds") if record.started else None),
        ("Ended", record.finished.isoformat(timespec="seconds") if record.finished else None),
        ("Elapsed", clock(elapsed(record, at)) if record.started else None),
        ("Output", record.output),
        ("Page", page),
    ]
    lines = [f"{name + ':':<11}{value}" for name, value in rows if value is not None]
    if log_tail:
        lines += ["", f"The last {len(log_tail)} line(s) of its log:", ""]
        lines += ["    " + (line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …") for line in log_tail]
    message.set_content("\n".join(lines) + "\n")
    return message


def address(mail_user: str | None, template: str | None, user: str) -> str | None:
    """Where a user's mail goes: ``--mail-user``, else the admin's template filled in, else None.

    >>> address(None, "{username}@example.org", "alice"), address("a@b.c", None, "alice")
    ('alice@example.org', 'a@b.c')
    """
    if mail_user:
        return mail_user
    if not template:
        return None
    try:
        return check_address(template.replace("{username}", user))
    except BadInput:
        raise BadInput(
            f"kbatch.service.mail.address-template makes no mail address of the hub name {user!r}; give --mail-user"
        ) from None


def tail(text: str, lines: int) -> list[str]:
    """The last ``lines`` lines of a log (trailing blank lines dropped).

    >>> tail("a\\nb\\nc\\n\\n", 2)
    ['b', 'c']
    """
    return text.rstrip("\n").splitlines()[-lines:] if lines > 0 and text.strip() else []
