"""The service's jobs: the Kubernetes backend driven with the service's own
credentials on behalf of one hub user at a time.

:class:`~.user_jobs.UserJobs` is the Kubernetes backend for one user, except that what the
direct backend reads from the session it runs in (the notebook pod by
``$HOSTNAME``, the image from ``$JUPYTER_IMAGE_SPEC``) comes from the user's own
server pod, found by its z2jh labels, never from the client. :class:`JobService`
adds the policy and who may see what: a user reaches only their own jobs (the
Job's name and user label hold the owner), an admin anyone's. Lists, shows and
the policy's counts are read from the watch cache (:mod:`.cache`), without a
Kubernetes API call; after a submit or cancel the Job as the API then holds it
goes into the cache, so the caller's next read sees its own write. Every job
enters the service's queue (:mod:`.admission`), suspended, and starts when its
dependency, its hold and the running-jobs limits allow. An ended job's result and logs come from the
service's archive (:mod:`.archive`), which its driver filled as it ended: the
service reads no file on a user's volume. A job no longer in the cache (its Job and pods gone: the
TTL) is read from the job records of the database (:mod:`.history`), which
are written at submit and from the cache's changes.
"""

from __future__ import annotations

import builtins
import collections
import dataclasses
import hashlib
import logging
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from tornado.escape import json_encode

from kbatch_dask.backends.hub.protocol import (
    CREDENTIAL_VAR,
    MAX_LOG_BYTES_VAR,
    MAX_RESULT_BYTES_VAR,
    SERVICE_URL_VAR,
)
from kbatch_dask.backends.ids import new_job_id
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes.backend import job_options
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.outputs import LogStream
from kbatch_dask.errors import BackendError, BadInput, JobNotFound, KubeError
from kbatch_dask.hub.tokens import HubToken
from kbatch_dask.records import JobRecord, JobState, now
from kbatch_dask.report import Saved
from kbatch_dask.service import stuck
from kbatch_dask.service.admission import Admission, queue_annotations
from kbatch_dask.service.archive import Archive, archived_report
from kbatch_dask.service.cache import JobCache
from kbatch_dask.service.driver_events import DriverEvents, JobTokens, digest, ended, new_credential
from kbatch_dask.service.dry_run import NOT_MINTED, dry_run_plan
from kbatch_dask.service.gateway_tokens import GatewayTokens
from kbatch_dask.service.history import Recorder
from kbatch_dask.service.job_mail import JobMail, MailSetup, submit_annotations
from kbatch_dask.service.namespaces import Namespaces
from kbatch_dask.service.policy import Policy
from kbatch_dask.service.submission import Submission
from kbatch_dask.service.user_jobs import UserJobs
from kbatch_dask.settings import Settings
from kbatch_dask.spec import JobSpec
from kbatch_dask.spec.dependency import Dependency

log = logging.getLogger("kbatch_dask.service")


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who asks: a hub user's name, and whether they administer the service."""

    name: str
    admin: bool = False


@dataclasses.dataclass(frozen=True)
class ListQuery:
    """Which jobs a list is of: the caller's, everyone's (admins) or ``user``'s;
    in ``states``; active in ``since``..``until``."""

    everyone: bool = False
    user: str | None = None
    states: tuple[JobState, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def kept_as(self) -> tuple[object, ...]:
        """The key its answer is kept under, beside whose jobs it is about."""
        return (self.states, self.since, self.until)


@dataclasses.dataclass(frozen=True)
class Listing:
    """A list's JSON and its ETag, both computed once per change of its jobs (the
    ETag is what lets a polling page get a 304 instead of the list again)."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Listing:
        return cls(body, f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()}"')


class JobService:
    """What a caller may do with jobs, with the service's Kubernetes client."""

    def __init__(
        self,
        api: KubeAPI,
        config: Settings,
        namespaces: Namespaces,
        policy: Policy,
        cache: JobCache,
        archive: Archive,
        records: Recorder,
        driver_url: str = "",
        tokens: JobTokens | None = None,
        mail: MailSetup | None = None,
    ) -> None:
        self.api = api
        self.archive = archive  # what the jobs' drivers uploaded as they ended
        self.config = config
        self.namespaces = namespaces
        self.namespace = namespaces.hub
        self.policy = policy
        self.driver_url = driver_url  # where the jobs' drivers reach the service
        self.tokens = tokens  # None: no hub to mint the jobs' gateway tokens with
        self.gateway_tokens = GatewayTokens(api, tokens)
        self.mail = JobMail(mail, api, self.jobs_of) if mail else None  # None: no SMTP server configured
        self.driver_events = DriverEvents(api, namespaces.all, tokens, cache.namespace_of, self.mail)
        # One submission per user at a time: the running-jobs limit counts the
        # user's jobs, then creates one; two at once would both pass the count.
        self._submitting: collections.defaultdict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self.cache = cache
        self.kueue = bool(config.kubernetes.queue_name)  # Kueue owns the Jobs' suspend: the service queues nothing
        self.admission = Admission(
            api,
            cache,
            policy.max_running_jobs,
            policy.max_running_jobs_total,
            timedelta(days=config.kubernetes.ttl_days),
            revoke=lambda job: self.driver_events.revoke_later(job, 0),
            starting=self.gateway_tokens.at_start,
        )
        self.records = records  # the database's job records, beyond the cache

    def jobs_of(self, user: str, script_name: str = "") -> UserJobs:
        namespace = self.namespaces.of(user)
        return UserJobs(self.api, user, self.config, namespace, self.archive, script_name, self.namespace)

    def _owner(self, caller: Caller, user: str | None) -> str:
        """Whose jobs a request is about: the caller's own, or (admins only) ``user``'s."""
        if user and user != caller.name and not caller.admin:
            raise BadInput("?user= is for admins of the service; leave it out to see your own jobs")
        return user or caller.name

    # -- submit ---------------------------------------------------------------

    def _prepared(self, caller: Caller, submission: Submission, folder: str) -> tuple[UserJobs, JobSpec]:
        """The caller's backend and their validated spec (its script in ``folder``), the
        per-job limits checked and the image chosen; BadInput or Refused before anything."""
        defaults = {
            "dask_workers": self.config.dask.workers,
            "wait_for_workers": self.config.driver.wait_for_workers,
            "notebook_output": self.config.notebook_output,
        }
        backend = self.jobs_of(caller.name, submission.script_name)
        spec = submission.spec(caller.name, folder, defaults)
        backend.annotations.update(submit_annotations(self.mail.setup if self.mail else None, spec, caller.name))
        self.policy.check_job(spec)
        server = backend.notebook_pod()
        image = self.policy.image(spec.image, server.image)
        backend.check(spec)
        return backend, dataclasses.replace(spec, image=image)

    def submit(self, caller: Caller, submission: Submission) -> JobRecord:
        # The driver's credential: in the job's Secret, its hash on the Job (driver_events).
        credential = new_credential()
        environment = self._driver_environment(submission, credential)
        with tempfile.TemporaryDirectory(prefix="kbatch-service-") as folder:
            backend, spec = self._prepared(caller, submission, folder)
            backend.annotations[names.ANN_CREDENTIAL_HASH] = digest(credential)
            with self._submitting[caller.name]:
                self._enqueue(caller.name, spec, backend)
                self.namespaces.ensure(caller.name)
                token = None
                if self.gateway_tokens.needed(spec) and self.kueue:  # Kueue starts the Job: its token is made now
                    token = self.gateway_tokens.mint(caller.name, spec.name, spec.time_limit)
                elif self.gateway_tokens.needed(spec):  # the queue starts it, and makes its token then
                    backend.annotations[names.ANN_TOKEN_AT_START] = "true"
                if token is not None:
                    assert self.tokens is not None
                    environment.update(self.tokens.environment(caller.name, token))
                    backend.annotations[names.ANN_HUB_TOKEN_ID] = token.id
                try:
                    record = backend.submit(spec, environment)
                except BaseException:
                    if token is not None and self.tokens is not None:
                        self.tokens.revoke(caller.name, token.id, "(not submitted)")
                    raise
                # Inside the lock: the next submission of this user counts this job.
                self._written(caller.name, record.id)
                if not self.kueue:
                    self.admission.run()  # it starts now if it may: the answer says so
                    record = self.cache.record(caller.name, record.id)
        self._remember(record, self.namespaces.of(caller.name), spec)
        return record

    def _remember(self, record: JobRecord, namespace: str, spec: JobSpec) -> None:
        """The job's first record, with its spec, in the database. The Job exists
        already: a database that fails now gets the record from the cache later."""
        options = {**spec.to_dict(), "script": record.script, "env": [k for k, _ in spec.env]}  # no values
        try:
            self.records.history.put([(record, namespace)], spec=options)
        except BackendError as exc:
            log.warning("job %s: its record is not in the database yet: %s", record.id, exc)

    def _driver_environment(self, submission: Submission, credential: str) -> dict[str, str]:
        """The job's environment: the user's, and how its driver reaches the service."""
        archive = self.config.service.archive  # the driver keeps to the service's limits, not its image's
        return {
            **submission.environment,
            SERVICE_URL_VAR: self.driver_url,
            CREDENTIAL_VAR: credential,
            MAX_LOG_BYTES_VAR: str(archive.max_log_bytes),
            MAX_RESULT_BYTES_VAR: str(archive.max_result_bytes),
        }

    def dry_run(self, caller: Caller, submission: Submission) -> dict[str, Any]:
        """What :meth:`submit` would create for ``submission`` now (``POST /jobs?dry-run=1``),
        after the same checks, refused alike; creates nothing and mints nothing (the
        credential and the hub token are placeholders), Secret values redacted."""
        environment = self._driver_environment(submission, NOT_MINTED)
        with tempfile.TemporaryDirectory(prefix="kbatch-service-") as folder:
            backend, spec = self._prepared(caller, submission, folder)
            backend.annotations[names.ANN_CREDENTIAL_HASH] = NOT_MINTED
            self._enqueue(caller.name, spec, backend)  # checked, and its queue annotations shown
            first_use = self.namespaces.planned(caller.name)
            if self.gateway_tokens.needed(spec) and self.kueue:
                assert self.tokens is not None
                environment.update(self.tokens.environment(caller.name, HubToken(NOT_MINTED, NOT_MINTED)))
                backend.annotations[names.ANN_HUB_TOKEN_ID] = NOT_MINTED
            elif self.gateway_tokens.needed(spec):  # as submit does: made when the queue starts it
                backend.annotations[names.ANN_TOKEN_AT_START] = "true"
            objects = backend.manifests(spec, environment, new_job_id()).all()
        return dry_run_plan(first_use, objects, queued=bool(self.config.kubernetes.queue_name))

    def _enqueue(self, user: str, spec: JobSpec, backend: UserJobs) -> None:
        """Check the job's dependency and the queue's bound; the Job's queue annotations."""
        if self.kueue:
            if spec.dependency:
                raise BadInput(
                    f"--dependency {spec.dependency}: Kueue queues this service's jobs "
                    "(kbatch.kubernetes.queue-name), and it has no dependencies"
                )
            return
        if spec.dependency:
            Dependency.parse(spec.dependency).check_known(lambda job_id: self._known(user, job_id))
        if spec.dependency or self.admission.would_wait(user):
            self.policy.check_queued(self.admission.queued(user))
        backend.annotations.update(queue_annotations(spec.dependency))

    def _known(self, user: str, job_id: str) -> bool:
        try:
            self.cache.record(user, job_id)
        except JobNotFound:
            return False
        return True

    def _written(self, user: str, job_id: str) -> None:
        """Put the Job as the API holds it after our write into the cache."""
        name = m.job_name(user, job_id)
        try:
            self.cache.written(name, self.api.get_job(self.namespaces.of(user), name))
        except KubeError as exc:
            if exc.status != 404:
                raise
            self.cache.written(name, None)

    # -- read and act -----------------------------------------------------------

    def list_json(self, caller: Caller, query: ListQuery = ListQuery()) -> Listing:
        """The records of the jobs listed as the API's JSON, ``{"jobs": [...]}``:
        kept until one of them changes, since most queues are asked again and
        again unchanged. Those the cache holds, then those only the database
        does (one query); none submitted after ``until``."""
        owner = self._list_owner(caller, query.everyone, query.user)

        def build() -> Listing:
            records = self._list(owner, query.states, query.since, query.until)
            return Listing.of(json_encode({"jobs": [r.to_dict() for r in records]}).encode())

        return self.cache.memo(owner, query.kept_as(), build)

    def kept_list_json(self, caller: Caller, query: ListQuery = ListQuery()) -> Listing | None:
        """:meth:`list_json`'s answer if it is kept and none of its jobs changed
        since: no query, so the event loop may ask (None: build it off the loop)."""
        kept = self.cache.kept(self._list_owner(caller, query.everyone, query.user), query.kept_as())
        return kept if isinstance(kept, Listing) else None

    def _list_owner(self, caller: Caller, everyone: bool, user: str | None) -> str | None:
        """Whose jobs a list is about (None: everyone's)."""
        if everyone and not caller.admin:
            raise BadInput("?all=1 is for admins of the service; leave it out to see your own jobs")
        return None if everyone and not user else self._owner(caller, user)

    def _list(
        self, owner: str | None, states: tuple[JobState, ...], since: datetime | None, until: datetime | None
    ) -> builtins.list[JobRecord]:
        live = [r for r in self.cache.records(owner, since) if until is None or r.submitted <= until]
        gone = self.records.records(owner, since, until, leave_out=lambda r: self.cache.holds(r.user, r.id))
        records = sorted(live + gone, key=lambda r: (r.submitted, r.id))
        return [r for r in records if not states or r.state in states]

    def count_by_state(self) -> dict[JobState, int]:
        """Every user's jobs by state (the metrics)."""
        return dict(collections.Counter(r.state for r in self.cache.records(None, None)))

    def _job_of(self, caller: Caller, job_id: str, user: str | None) -> UserJobs:
        """The backend holding the job ``job_id`` of its owner (JobNotFound unless the cache has it)."""
        owner = self._owner(caller, user)
        self.cache.record(owner, job_id)
        return self.jobs_of(owner)

    def get(self, caller: Caller, job_id: str, user: str | None = None) -> JobRecord:
        """The job from the cache, else from the database (its Job gone); JobNotFound
        for one of neither, or another user's."""
        owner = self._owner(caller, user)
        try:
            return self.cache.record(owner, job_id)
        except JobNotFound:
            stored = self.records.find(owner, job_id)
            if stored is None:
                raise
            return stored

    def logs(
        self, caller: Caller, job_id: str, *, user: str | None, follow: bool, stream: LogStream, tail: int | None
    ) -> Iterator[bytes]:
        return self._job_of(caller, job_id, user).logs(job_id, follow=follow, stream=stream, tail=tail)

    def cancel(self, caller: Caller, job_id: str, user: str | None = None) -> JobRecord:
        owner = self._owner(caller, user)
        if not self.cache.holds(owner, job_id):
            return self.get(caller, job_id, user)  # its Job is gone: it ended, there is nothing to stop
        backend = self.jobs_of(owner)
        job = backend._job(job_id)
        record = backend.cancel(job_id)
        # A running driver stops its cluster with the token as its pod stops: the token
        # goes at its finished event, or at the latest once the pod's grace is over.
        grace = job_options(self.config).termination_grace
        self.driver_events.revoke_later(job, 0 if ended(job) else grace + 5)
        self._written(owner, job_id)
        self.records.changed(record, self.namespaces.of(owner))  # the Job may be gone already
        return record

    def hold(self, caller: Caller, job_id: str, user: str | None = None) -> JobRecord:
        return self.admission.hold(self._owner(caller, user), job_id, True)

    def release(self, caller: Caller, job_id: str, user: str | None = None) -> JobRecord:
        return self.admission.hold(self._owner(caller, user), job_id, False)

    def result(self, caller: Caller, job_id: str, user: str | None = None) -> bytes | None:
        return self._job_of(caller, job_id, user).result(job_id)

    def report(self, caller: Caller, job_id: str, user: str | None = None) -> tuple[JobRecord, Saved | None]:
        """The job (as :meth:`get`, its Job may be gone) and its report's summary from the archive."""
        record = self.get(caller, job_id, user)
        return record, archived_report(self.archive, record.user, job_id)

    def active(self, caller: Caller) -> int:
        """The caller's jobs pending or running."""
        return self.cache.active(caller.name)

    def fail_stuck(self) -> int:
        """End the jobs whose pods can never start (:mod:`~kbatch_dask.service.stuck`):
        their end recorded and mailed, their hub tokens revoked; how many."""
        count = 0
        for found in stuck.find(self.cache.open_with_pods(), now(), self.config.service.start_timeout):
            if stuck.fail(self.api, found):
                self.driver_events.revoke(found.job)
                if self.mail is not None:
                    self.mail.end(found.job, {"state": JobState.FAILED.value, "reason": found.reason})
                count += 1
        return count
