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
sees its own write.
"""

from __future__ import annotations

import builtins
import dataclasses
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime

from tornado.escape import json_encode

from kbatch_dask.backends import Detected
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes import pod_settings as session
from kbatch_dask.backends.kubernetes.backend import KubernetesBackend
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.backends.outputs import LogStream
from kbatch_dask.errors import BadInput, KubeError
from kbatch_dask.records import JobRecord, JobState
from kbatch_dask.service.cache import JobCache
from kbatch_dask.service.policy import Policy
from kbatch_dask.service.submission import Submission
from kbatch_dask.settings import Settings
from kbatch_dask.spec import JobSpec

# z2jh (kubespawner) labels of a user's server pod.
SERVER_LABELS = "component=singleuser-server,hub.jupyter.org/username={user}"


@dataclasses.dataclass(frozen=True)
class Caller:
    """Who asks: a hub user's name, and whether they administer the service."""

    name: str
    admin: bool = False


class UserJobs(KubernetesBackend):
    """The Kubernetes backend for ``user``'s jobs, run by the service."""

    def __init__(self, api: KubeAPI, user: str, config: Settings, namespace: str, script_name: str = "") -> None:
        super().__init__(api=api, user=user, config=config)
        self._service_namespace = namespace
        self._script_name = script_name

    @property
    def detected_namespace(self) -> Detected[str]:
        return Detected(self._service_namespace, "kbatch.service.namespace")

    def notebook_pod(self) -> session.NotebookPod:
        """The user's running server pod (z2jh labels), or why there is none."""
        selector = SERVER_LABELS.format(user=safe_slug(self.user, max_length=63))
        pods = [
            pod
            for pod in self.api.list_pods(self.namespace, selector)
            if (pod.get("status") or {}).get("phase") == "Running"
        ]
        if not pods:
            return session.NotebookPod(None, f"no running server of {self.user} in namespace {self.namespace}")
        return session.NotebookPod(pods[0])

    def detect_image(self, option: str | None, pod: session.NotebookPod) -> Detected[str]:
        # Never the service's own $JUPYTER_IMAGE_SPEC: --image (the policy checked it) or the server's.
        return session.detect_image(option, {}, None, pod.image)

    def manifests(
        self, spec: JobSpec, environment: Mapping[str, str], job_id: str, pod: m.PodSettings | None = None
    ) -> m.Manifests:
        objects = super().manifests(spec, environment, job_id, pod)
        if self._script_name:
            # The script was written to a folder of the service's; show the name the user gave.
            objects.job["metadata"]["annotations"][names.ANN_SCRIPT] = self._script_name
        return objects


class JobService:
    """What a caller may do with jobs, with the service's Kubernetes client."""

    def __init__(self, api: KubeAPI, config: Settings, namespace: str, policy: Policy, cache: JobCache) -> None:
        self.api = api
        self.config = config
        self.namespace = namespace
        self.policy = policy
        self.cache = cache

    def jobs_of(self, user: str, script_name: str = "") -> UserJobs:
        return UserJobs(self.api, user, self.config, self.namespace, script_name)

    def _owner(self, caller: Caller, user: str | None) -> str:
        """Whose jobs a request is about: the caller's own, or (admins only) ``user``'s."""
        if user and user != caller.name and not caller.admin:
            raise BadInput("?user= is for admins of the service; leave it out to see your own jobs")
        return user or caller.name

    # -- submit ---------------------------------------------------------------

    def submit(self, caller: Caller, submission: Submission) -> JobRecord:
        backend = self.jobs_of(caller.name, submission.script_name)
        defaults = {
            "dask_workers": self.config.dask.workers,
            "wait_for_workers": self.config.driver.wait_for_workers,
            "notebook_output": self.config.notebook_output,
        }
        with tempfile.TemporaryDirectory(prefix="kbatch-service-") as folder:
            spec = submission.spec(caller.name, folder, defaults)
            self.policy.check_job(spec)
            server = backend.notebook_pod()
            image = self.policy.image(spec.image, server.image)
            backend.check(spec)
            self.policy.check_running(self.active(caller))
            spec = dataclasses.replace(spec, image=image)
            record = backend.submit(spec, submission.environment)
        self._written(caller.name, record.id)
        return record

    def _written(self, user: str, job_id: str) -> None:
        """Put the Job as the API holds it after our write into the cache."""
        name = m.job_name(user, job_id)
        try:
            self.cache.written(name, self.api.get_job(self.namespace, name))
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
    ) -> bytes:
        """The records of the jobs listed as the API's JSON, ``{"jobs": [...]}``:
        kept until one of them changes, since most queues are asked again and
        again unchanged."""
        owner = self._list_owner(caller, everyone, user)

        def build() -> bytes:
            records = self._list(owner, states, since)
            return json_encode({"jobs": [r.to_dict() for r in records]}).encode()

        return self.cache.memo(owner, (states, since), build)

    def _list_owner(self, caller: Caller, everyone: bool, user: str | None) -> str | None:
        """Whose jobs a list is about (None: everyone's)."""
        if everyone and not caller.admin:
            raise BadInput("?all=1 is for admins of the service; leave it out to see your own jobs")
        return None if everyone and not user else self._owner(caller, user)

    def _list(
        self, owner: str | None, states: tuple[JobState, ...], since: datetime | None
    ) -> builtins.list[JobRecord]:
        return [r for r in self.cache.records(owner, since) if not states or r.state in states]

    def get(self, caller: Caller, job_id: str, user: str | None = None) -> JobRecord:
        return self.cache.record(self._owner(caller, user), job_id)

    def logs(
        self, caller: Caller, job_id: str, *, user: str | None, follow: bool, stream: LogStream, tail: int | None
    ) -> Iterator[str]:
        return self.jobs_of(self._owner(caller, user)).logs(job_id, follow=follow, stream=stream, tail=tail)

    def cancel(self, caller: Caller, job_id: str, user: str | None = None) -> JobRecord:
        owner = self._owner(caller, user)
        record = self.jobs_of(owner).cancel(job_id)
        self._written(owner, job_id)
        return record

    def result(self, caller: Caller, job_id: str, user: str | None = None) -> bytes | None:
        return self.jobs_of(self._owner(caller, user)).result(job_id)

    def active(self, caller: Caller) -> int:
        """The caller's jobs pending or running."""
        return self.cache.active(caller.name)
