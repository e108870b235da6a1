"""One hub user's jobs: the Kubernetes backend driven with the service's own
credentials, with what the direct backend reads from the session it runs in
(the notebook pod by ``$HOSTNAME``, the image from ``$JUPYTER_IMAGE_SPEC``)
taken from the user's own server pod, found by its z2jh labels, never from
the client; an ended job's result, logs and report from the service's archive
(:mod:`.archive`), which its driver filled as it ended."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from kbatch_dask.backends import Detected
from kbatch_dask.backends.kubernetes import annotations as names
from kbatch_dask.backends.kubernetes import manifests as m
from kbatch_dask.backends.kubernetes import pod_settings as session
from kbatch_dask.backends.kubernetes.backend import KubernetesBackend
from kbatch_dask.backends.kubernetes.client import KubeAPI
from kbatch_dask.backends.kubernetes.pod_logs import pod_logs
from kbatch_dask.backends.kubernetes.pod_template import combine_templates
from kbatch_dask.backends.kubernetes.slugs import safe_slug
from kbatch_dask.backends.outputs import LogStream
from kbatch_dask.errors import BackendError, Conflict
from kbatch_dask.records import JobRecord
from kbatch_dask.report import Saved
from kbatch_dask.service.archive import SNAPSHOT, Archive, archived_logs, archived_report
from kbatch_dask.service.namespaces import portable_server_pod
from kbatch_dask.settings import Settings
from kbatch_dask.spec import JobSpec

log = logging.getLogger("kbatch_dask.service")

# z2jh (kubespawner) labels of a user's server pod.
SERVER_LABELS = "component=singleuser-server,hub.jupyter.org/username={user}"


class UserJobs(KubernetesBackend):
    """The Kubernetes backend for ``user``'s jobs, run by the service: the jobs in
    ``namespace``, the user's server pod read in ``servers`` (the hub's namespace),
    their uploads in ``archive``."""

    resumes = False  # the admission resumes each Job in its turn

    def __init__(
        self,
        api: KubeAPI,
        user: str,
        config: Settings,
        namespace: str,
        archive: Archive,
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
        self.archive = archive
        self.annotations: dict[str, str] = {}  # the service's own on the Job, e.g. the credential's hash
        self._snapshot: dict[str, Any] = {}  # the ConfigMap's data of the job being submitted

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
        self,
        spec: JobSpec,
        environment: Mapping[str, str],
        job_id: str,
        pod: m.PodSettings | None = None,
        script: str | bytes | None = None,
    ) -> m.Manifests:
        objects = super().manifests(spec, environment, job_id, pod, script)
        if self._script_name:
            # The script was written to a folder of the service's; show the name the user gave.
            objects.job["metadata"]["annotations"][names.ANN_SCRIPT] = self._script_name
        objects.job["metadata"]["annotations"].update(self.annotations)
        # The driver reports to the service (driver_events): its pod holds no Kubernetes
        # credentials, whatever the server pod or the admin's pod template say.
        objects.job["spec"]["template"]["spec"]["automountServiceAccountToken"] = False
        self._snapshot = {k: objects.config_map[k] for k in ("data", "binaryData") if k in objects.config_map}
        return objects

    def submit(self, spec: JobSpec, environment: dict[str, str], script: str | bytes | None = None) -> JobRecord:
        """Submit, and keep the job's snapshot in the archive: its ConfigMap goes with
        the Job (its TTL, a cancel), and ``kbatch resubmit`` reads it after that."""
        record = super().submit(spec, environment, script)
        try:
            self.archive.put(self.user, record.id, SNAPSHOT, json.dumps(self._snapshot).encode())
        except OSError as exc:  # the job runs; only a resubmit after its ConfigMap went will fail
            log.warning("job %s: its snapshot is not archived: %s", record.id, exc)
        return record

    def logs(
        self, job_id: str, follow: bool = False, stream: LogStream = "output", tail: int | None = None
    ) -> Iterator[bytes]:
        """A running job's pod log (``follow``: until it ends); an ended job's archived
        output, else (its driver uploaded none) its pod's log while the pod lasts.
        Never a file on the user's volume: the service does not see them."""
        record = self.get(job_id)
        if record.state.is_terminal():
            return self._ended_logs(record, stream, tail)
        if stream == "error":
            raise Conflict(
                f"job {job_id} is {record.state.value}: its error file is served once it ends "
                f"(meanwhile its stderr is in its pod's log, `kbatch logs {job_id}`)"
            )
        ended = functools.partial(self._ended_logs, stream=stream, tail=tail)  # it may end as it is followed
        return pod_logs(self.api, self.namespace, record, follow, stream, tail, self.get, self._pods, ended)

    def _ended_logs(self, record: JobRecord, stream: LogStream, tail: int | None, pod: bool = True) -> Iterator[bytes]:
        parts = archived_logs(self.archive, self.user, record, stream, tail)
        if parts:
            return iter(parts)
        if not record.state.is_terminal():
            raise BackendError(f"job {record.id} is {record.state.value} and has no driver pod to read its output from")
        if pod and stream != "error":
            # Its driver was killed before it could upload (OOM, node lost): the pod's log, while it lasts.
            ended = functools.partial(self._ended_logs, stream=stream, tail=tail, pod=False)
            return pod_logs(self.api, self.namespace, record, False, stream, tail, self.get, self._pods, ended)
        what = "error file" if stream == "error" else "output"
        raise Conflict(
            f"job {record.id} ended without its {what} in the service's archive: its driver did not upload it "
            "(killed first, or the upload failed), and its pod is gone"
        )

    def report(self, record: JobRecord) -> Saved | None:
        """The report's summary as its driver uploaded it: never the file beside the output."""
        return archived_report(self.archive, self.user, record.id)

    def result(self, job_id: str) -> bytes | None:
        """A function job's pickled result as its driver uploaded it; None for other jobs."""
        data = self.archive.get(self.user, job_id, "result")
        if data is None and (self._job(job_id)["metadata"].get("annotations") or {}).get(names.ANN_RESULT):
            raise Conflict(
                f"job {job_id}'s result was not uploaded to the service by its driver: the function did not "
                f"return, or the upload failed (`kbatch logs {job_id}` says which)"
            )
        return data
