"""Which of a service job's events are mailed, each at most once (docs/service.md, "Mail").

- **At submit** :func:`submit_annotations` puts what the user asked on the Job
  (``kbatch-dask.io/mail-type``, ``kbatch-dask.io/mail-user``: ``--mail-user``,
  else the admin's ``address-template`` filled in), or refuses the submission
  in one line when the service sends no mail or knows no address.
- **BEGIN** on the driver's ``started`` event; **END** on its last ``finished``
  event (not one a retry follows), when the service fails a job that can
  never start (:mod:`.stuck`), and, through :meth:`DriverEvents.sweep
  <kbatch_dask.service.driver_events.DriverEvents.sweep>`, for a Job found
  ended without one (an OOM kill, a lost node). END is mailed when ``END`` was
  asked, or ``FAIL`` was and the job failed: one message per ending, as Slurm sends.
- **At most once**: the event is recorded on the Job
  (``kbatch-dask.io/mail-done``) before its message is sent, by one mail
  thread that handles every event in turn, so a repeated driver event, the
  sweep and a restarted service find it done.
- **Off the loop**: the driver's request only queues the event; the mail
  thread reads the Job, the end of its log and sends (:class:`~.mail.Mailer`).
  Any failure there is logged with the user and the job, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kbatch_dask.backends import Backend
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.status import job_record
from kbatch_dask.errors import BadInput, JobNotFound, KbatchError, KubeError
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.service.mail import Mailer, address, compose, tail
from kbatch_dask.spec import JobSpec
from kbatch_dask.spec.mail import MAIL_TYPES

log = logging.getLogger("kbatch_dask.service")
ANN_MAIL_TYPE = names.PREFIX + "mail-type"
ANN_MAIL_USER = names.PREFIX + "mail-user"
ANN_MAIL_DONE = names.PREFIX + "mail-done"  # the events handled (mailed, or not due), comma-separated
FAILED = frozenset({JobState.FAILED, JobState.TIMEOUT, JobState.OOM, JobState.LOST})


@dataclass(frozen=True)
class MailSetup:
    """What the service's mail needs, from the settings."""

    mailer: Mailer
    address_template: str | None
    log_lines: int
    pages: str | None  # the URL the jobs' pages are under ({pages}jobs/{id}); None: unknown, no link


def submit_annotations(setup: MailSetup | None, spec: JobSpec, user: str) -> dict[str, str]:
    """The Job's mail annotations for ``spec`` (none when it asks for no mail);
    BadInput when it asks for mail this service cannot send."""
    if not spec.mail_type:
        return {}
    asked = ",".join(spec.mail_type)
    if setup is None:
        raise BadInput(
            f"--mail-type {asked}: this service sends no mail (kbatch.service.mail.smtp-host is not set); "
            "leave --mail-type out"
        )
    to = address(spec.mail_user, setup.address_template, user)
    if to is None:
        raise BadInput(
            f"--mail-type {asked}: give --mail-user ADDRESS (this service knows no address of {user}: "
            "kbatch.service.mail.address-template is not set)"
        )
    return {ANN_MAIL_TYPE: asked, ANN_MAIL_USER: to}


def due(asked: tuple[str, ...], event: str, state: JobState) -> bool:
    """Whether ``event`` (``BEGIN`` or ``END``) of a job now in ``state`` is mailed.

    >>> due(("FAIL",), "END", JobState.OOM), due(("FAIL",), "END", JobState.SUCCEEDED)
    (True, False)
    """
    if event == "BEGIN":
        return "BEGIN" in asked
    return "END" in asked or ("FAIL" in asked and state in FAILED)


def _annotations(job: Mapping[str, Any]) -> Mapping[str, str]:
    return (job.get("metadata") or {}).get("annotations") or {}


def _listed(text: str | None) -> tuple[str, ...]:
    words = {w for w in (text or "").split(",") if w}
    return tuple(t for t in MAIL_TYPES if t in words)


class JobMail:
    """The mail of the service's jobs, sent by one thread of its own."""

    def __init__(self, setup: MailSetup, api: KubeAPI, jobs_of: Callable[[str], Backend]) -> None:
        self.setup = setup
        self.api = api
        self.jobs_of = jobs_of  # a user's jobs, for a record and its log
        # One thread: events are handled in turn, so two of one job never race to send.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbatch-mail")

    # -- what queues an event ---------------------------------------------------

    def driver_event(self, job: Mapping[str, Any], event: str, values: Mapping[str, Any], final: bool) -> None:
        """A driver's event was recorded on ``job``: queue its mail, if it has one."""
        if not _annotations(job).get(ANN_MAIL_TYPE):
            return
        if event == "started":
            self._queue(job, "BEGIN", None)
        elif event == "finished" and final:
            self.end(job, values)

    def end(self, job: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """``job`` ended as ``values`` say (``state``, ``exit_code``, ``reason``: its
        driver's report, or the service's own end of a job that can never start)."""
        if _annotations(job).get(ANN_MAIL_TYPE):
            self._queue(job, "END", values)

    def awaits_end(self, job: Mapping[str, Any]) -> bool:
        """Whether ``job`` asked for mail and its end was not handled yet."""
        ann = _annotations(job)
        return bool(ann.get(ANN_MAIL_TYPE)) and "END" not in _listed(ann.get(ANN_MAIL_DONE))

    def ended(self, job: Mapping[str, Any]) -> None:
        """``job`` is found ended (the sweep): queue its END unless it was handled."""
        if self.awaits_end(job):
            self._queue(job, "END", None)

    def _queue(self, job: Mapping[str, Any], event: str, values: Mapping[str, Any] | None) -> None:
        self._thread.submit(self._handle, job, event, values)

    # -- in the mail thread -----------------------------------------------------

    def _handle(self, job: Mapping[str, Any], event: str, values: Mapping[str, Any] | None) -> None:
        meta = job.get("metadata") or {}
        user = str(_annotations(job).get(names.ANN_USER, ""))
        job_id = str((meta.get("labels") or {}).get(names.LABEL_JOB_ID, ""))
        try:
            self._mail(job, event, values, user, job_id)
        except Exception as exc:  # a thread's error would vanish: say it; a mail never fails a job
            log.warning("%s mail not sent: %s", event, exc, exc_info=True, extra={"user": user, "job": job_id})

    def _mail(
        self, job: Mapping[str, Any], event: str, values: Mapping[str, Any] | None, user: str, job_id: str
    ) -> None:
        meta = job.get("metadata") or {}
        namespace, name = str(meta["namespace"]), str(meta["name"])
        try:
            current: Mapping[str, Any] | None = self.api.get_job(namespace, name)
        except KubeError as exc:
            if exc.status != 404:
                raise
            current = None  # deleted (a cancel): no event of it can come again
        ann = _annotations(current or job)
        done = _listed(ann.get(ANN_MAIL_DONE))
        if event in done:
            return
        record = self._record(user, job_id, current or job, values)
        if current is not None:  # recorded before it is sent: at most once, even if sending fails
            patch = {"metadata": {"annotations": {ANN_MAIL_DONE: ",".join(_listed(",".join((*done, event))))}}}
            self.api.patch_job(namespace, name, patch)
        if not due(_listed(ann.get(ANN_MAIL_TYPE)), event, record.state):
            return
        lines = self._log_tail(user, job_id) if event == "END" else []
        page = f"{self.setup.pages}jobs/{job_id}" if self.setup.pages else None
        message = compose(record, event, ann[ANN_MAIL_USER], page=page, log_tail=lines, at=now())
        self.setup.mailer.send(message, user, job_id)

    def _record(self, user: str, job_id: str, job: Mapping[str, Any], values: Mapping[str, Any] | None) -> JobRecord:
        """The job's record; with ``values``, its end as reported: the Job's status does
        not say it yet (its pod is still stopping, or is being deleted with it)."""
        try:
            record = self.jobs_of(user).get(job_id)
        except JobNotFound:
            record = job_record(job, [])
        if values is None:
            return record
        return record.replace(
            state=JobState(values["state"]),
            exit_code=values.get("exit_code"),
            reason=values.get("reason"),
            finished=record.finished or now(),
        )

    def _log_tail(self, user: str, job_id: str) -> list[str]:
        lines = self.setup.log_lines
        if lines <= 0:
            return []
        try:
            text = b"".join(self.jobs_of(user).logs(job_id, tail=lines)).decode("utf-8", errors="replace")
            return tail(text, lines)
        except KbatchError as exc:  # no pod left and no output file readable here: a mail without it
            log.info("no log for its mail (%s)", exc, extra={"user": user, "job": job_id})
            return []
