"""The service's jobs: the Kubernetes backend driven with the service's own
credentials on behalf of one hub user at a time.

:class:`UserJobs` is the Kubernetes backend for one user, except that what the
direct backend reads from the session it runs in (the notebook pod by
``$HOSTNAME``, the image from ``$JUPYTER_IMAGE_SPEC``) comes from the user's own
server pod, found by its z2jh labels, never from the client. :class:`JobService`
adds the policy and who may see what: a user reaches only their own jobs (the
Job's name and user label hold the owner), an admin anyone's. Lists, shows and
the policy's count of running jobs are read from the watch cache
(:mod:`.cache`), without a Kubernetes API call; after a submit or cancel the
Job as the API then holds it goes into the cache, so the caller's next read
sees its own write. A job no longer in the cache (its Job and pods gone: the
TTL) is read from the job records of the database (:mod:`.history`), which
are written at submit and from the cache's changes.
"""

from __future__ import annotations

import builtins
import collections
import dataclasses
import logging
import tempfile
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from tornado.escape import json_encode

from kbatch_dask.backends import Detected
from kbatch_dask.backends.hub.protocol import CREDENTIAL_VAR, SERVICE_URL_VAR
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes import pod_settings as session
from kbatch_dask.backends.kubernetes.backend import KubernetesBackend, job_options
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.pod_template import combine_templates
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.backends.outputs import LogStream
from kbatch_dask.errors import BackendError, BadInput, HubError, JobNotFound, KubeError, Refused
from kbatch_dask.gateway import configured_gateway
from kbatch_dask.hub.tokens import HubToken
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.service.cache import JobCache
from kbatch_dask.service.driver_events import DriverEvents, JobTokens, digest, ended, new_credential
from kbatch_dask.service.history import Recorder
from kbatch_dask.service.namespaces import Namespaces, portable_server_pod
from kbatch_dask.service.policy import Policy
from kbatch_dask.service.submission import Submission
from kbatch_dask.settings import Settings
from kbatch_dask.spec import JobSpec

log = logging.getLogger("kbatch_dask.service")

# z2jh (kubespawner) labels of a user's server pod.
SERVER_LABELS = "component=singleuser-server,hub.jupyter.org/username={user}"


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who asks: a hub user's name, and whether they administer the service."""

    name: str
    admin: bool = False


class UserJobs(KubernetesBackend):
    """The Kubernetes backend for ``user``'s jobs, run by the service: the jobs in
    ``namespace``, the user's server pod read in ``servers`` (the hub's namespace)."""

    def __init__(
        self,
        api: KubeAPI,
        user: str,
        config: Settings,
        namespace: str,
        script_name: str = "",
        servers: str | None = None,
    ) -> None:
        if servers not in (None, namespace):
            # A configured job account (kbatch.kubernetes.service-account) is in the hub's
            # namespace only: a per-user namespace's job pods run as its default one.
            config = dataclasses.replace(
                config, kubernetes=dataclasses.replace(config.kubernetes, service_account=None)
            )
        super().__init__(api=api, user=user, config=config)
        self._service_namespace = namespace
        self._servers = servers or namespace
        self._script_name = script_name
        self.annotations: dict[str, str] = {}  # the service's own on the Job, e.g. the credential's hash

    @property
    def detected_namespace(self) -> Detected[str]:
        source = "kbatch.service.namespace" if self._servers == self._service_namespace else "per-user namespace"
        return Detected(self._service_namespace, source)

    def notebook_pod(self) -> session.NotebookPod:
        """The user's running server pod (z2jh labels), or why there is none."""
        selector = SERVER_LABELS.format(user=safe_slug(self.user, max_length=63))
        pods = [
            pod
            for pod in self.api.list_pods(self._servers, selector)
            if (pod.get("status") or {}).get("phase") == "Running"
        ]
        if not pods:
            return session.NotebookPod(None, f"no running server of {self.user} in namespace {self._servers}")
        if self._servers != self._service_namespace:
            return session.NotebookPod(portable_server_pod(pods[0]))
        return session.NotebookPod(pods[0])

    def detect_image(self, option: str | None, pod: session.NotebookPod) -> Detected[str]:
        # Never the service's own $JUPYTER_IMAGE_SPEC: --image (the policy checked it) or the server's.
        return session.detect_image(option, {}, None, pod.image)

    def _pod_template(self) -> Mapping[str, Any]:
        # The admin's, merged last over everything the job took from the server pod.
        return combine_templates(self.config.kubernetes.pod_template, self.config.service.pod_template, m.CONTAINER)

    def manifests(
        self, spec: JobSpec, environment: Mapping[str, str], job_id: str, pod: m.PodSettings | None = None
    ) -> m.Manifests:
        objects = super().manifests(spec, environment, job_id, pod)
        if self._script_name:
            # The script was written to a folder of the service's; show the name the user gave.
            objects.job["metadata"]["annotations"][names.ANN_SCRIPT] = self._script_name
        objects.job["metadata"]["annotations"].update(self.annotations)
        # The driver reports to the service (driver_events): its pod holds no Kubernetes
        # credentials, whatever the server pod or the admin's pod template say.
        objects.job["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
        return objects


class JobService:
    """What a caller may do with jobs, with the service's Kubernetes client."""

    def __init__(
        self,
        api: KubeAPI,
        config: Settings,
        namespaces: Namespaces,
        policy: Policy,
        cache: JobCache,
        records: Recorder,
        driver_url: str = "",
        tokens: JobTokens | None = None,
    ) -> None:
        self.api = api
        self.config = config
        self.namespaces = namespaces
        self.namespace = namespaces.hub
        self.policy = policy
        self.driver_url = driver_url  # where the jobs' drivers reach the service
        self.tokens = tokens  # None: no hub to mint the jobs' gateway tokens with
        self.driver_events = DriverEvents(api, namespaces.all, tokens, config.kubernetes.page_size, cache.namespace_of)
        # One submission per user at a time: the running-jobs limit counts the
        # user's jobs, then creates one; two at once would both pass the count.
        self._submitting: collections.defaultdict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self.cache = cache
        self.records = records  # the database's job records, beyond the cache

    def jobs_of(self, user: str, script_name: str = "") -> UserJobs:
        return UserJobs(self.api, user, self.config, self.namespaces.of(user), script_name, self.namespace)

    def _owner(self, caller: Caller, user: str | None) -> str:
        """Whose jobs a request is about: the caller's own, or (admins only) ``user``'s."""
        if user and user != caller.name and not caller.admin:
            raise BadInput("?user= is for admins of the service; leave it out to see your own jobs")
        return user or caller.name

    # -- submit ---------------------------------------------------------------

    def submit(self, caller: Caller, submission: Submission) -> JobRecord:
        defaults = {
            "dask_workers": self.config.dask.workers,
            "wait_for_workers": self.config.driver.wait_for_workers,
            "notebook_output": self.config.notebook_output,
        }
        # The driver's credential: in the job's Secret, its hash on the Job (driver_events).
        credential = new_credential()
        environment = {**submission.environment, SERVICE_URL_VAR: self.driver_url, CREDENTIAL_VAR: credential}
        backend = self.jobs_of(caller.name, submission.script_name)
        backend.annotations[names.ANN_CREDENTIAL_HASH] = digest(credential)
        with tempfile.TemporaryDirectory(prefix="kbatch-service-") as folder:
            spec = submission.spec(caller.name, folder, defaults)
            self.policy.check_job(spec)
            server = backend.notebook_pod()
            image = self.policy.image(spec.image, server.image)
            backend.check(spec)
            spec = dataclasses.replace(spec, image=image)
            with self._submitting[caller.name]:
                self.policy.check_active([r.state for r in self.cache.records(caller.name)])
                self.namespaces.ensure(caller.name)
                token = self._gateway_token(caller.name, spec)
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

    def _gateway_token(self, user: str, spec: JobSpec) -> HubToken | None:
        """A hub token of ``user`` for the job's cluster, when it has one on a
        gateway with JupyterHub auth; a hub that refuses is a refusal (403)."""
        gateway = configured_gateway()
        if self.tokens is None or not spec.workers or gateway is None or gateway.auth_type != "jupyterhub":
            return None
        try:
            return self.tokens.mint(user, spec.name, spec.time_limit)
        except HubError as exc:
            raise Refused(
                f"JupyterHub did not create a token for the job's Dask cluster ({exc}); the service's hub role "
                "needs the scope 'tokens' and users the scopes of kbatch.hub.token-scopes"
            ) from None

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

    def list_json(
        self,
        caller: Caller,
        *,
        everyone: bool = False,
        user: str | None = None,
        states: tuple[JobState, ...] = (),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> bytes:
        """The records of the jobs listed as the API's JSON, ``{"jobs": [...]}``:
        kept until one of them changes, since most queues are asked again and
        again unchanged. Those the cache holds, then those only the database
        does (one query); none submitted after ``until``."""
        owner = self._list_owner(caller, everyone, user)

        def build() -> bytes:
            records = self._list(owner, states, since, until)
            return json_encode({"jobs": [r.to_dict() for r in records]}).encode()

        return self.cache.memo(owner, (states, since, until), build)

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
    ) -> Iterator[str]:
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

    def result(self, caller: Caller, job_id: str, user: str | None = None) -> bytes | None:
        return self._job_of(caller, job_id, user).result(job_id)

    def active(self, caller: Caller) -> int:
        """The caller's jobs pending or running."""
        return self.cache.active(caller.name)
